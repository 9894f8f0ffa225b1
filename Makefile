# orch's developer entry points. The README's two set-up commands are `make demo`
# and `make test`; both install what a fresh Debian bookworm machine lacks.

VENV ?= /opt/orch-dev/venv
PY := $(VENV)/bin/python
ORCH := $(VENV)/bin/orch
TEST_USER ?= orch-test
# A second one: the isolation tests need a user whose sessions the first cannot reach.
TEST_USER2 ?= orch-test2
# The real agent CLIs the end-to-end tests run (npm packages), pinned.
AGENTS_DIR ?= /opt/orch-dev/npm
CLAUDE_CODE ?= @anthropic-ai/claude-code@2.1.197
AGENT_PACKAGES ?= $(CLAUDE_CODE) @openai/codex@0.171.0 @google/gemini-cli@0.61.0 \
	@github/copilot@1.0.102
# openssh-server/-client and iproute2: the remote hosts of tests/remote (sshd in boxes in
# network namespaces).
APT_PACKAGES := libsystemd-dev pkg-config python3-venv python3-dev gcc util-linux systemd dbus-user-session git \
	openssh-server openssh-client iproute2 \
	chromium chromium-driver \
	zsh fish time  # the shells whose completion the tests run; GNU time for make bench
# chromium and its chromedriver: the dashboard's tests drive a real headless browser.

.PHONY: setup system-deps deb-deps venv install test-user agents demo test unit lint box-up box-down units deb bench screenshots clean

setup: system-deps deb-deps install test-user agents

system-deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

# Debian's tooling for `make deb`, and debootstrap for the test that boots the package.
DEB_PACKAGES := debhelper dh-python pybuild-plugin-pyproject python3-all python3-setuptools \
	python3-pip python3-psutil python3-tomli-w fakeroot lintian debootstrap
deb-deps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

# Built from Debian's python3 in a world-readable place: the integration tests run orch
# as a non-root user too, who cannot reach an interpreter under /root.
$(PY):
	/usr/bin/python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

venv: $(PY)

install: venv
	$(PY) -m pip install -q ".[dev]"
	$(PY) -m pip install -q --no-deps --force-reinstall .

# Installed again unless every package is there at its pinned version.
agents:
	@command -v npm >/dev/null || (apt-get update -qq && apt-get install -y -qq nodejs npm)
	@(for p in $(AGENT_PACKAGES); do \
		name=$${p%@*}; want=$${p##*@}; \
		got=$$(node -p "require('$(AGENTS_DIR)/node_modules/$$name/package.json').version" 2>/dev/null); \
		[ "$$got" = "$$want" ] || exit 1; \
	done) || npm install --silent --no-fund --no-audit --prefix $(AGENTS_DIR) $(AGENT_PACKAGES)

test-user:
	@id -u $(TEST_USER) >/dev/null 2>&1 || useradd --create-home --shell /bin/bash $(TEST_USER)
	@id -u $(TEST_USER2) >/dev/null 2>&1 || useradd --create-home --shell /bin/bash $(TEST_USER2)

box-up: install
	@[ -d /run/systemd/system ] || $(ORCH) box up

box-down:
	@[ -d /run/systemd/system ] || $(ORCH) box down

# The main job: a demo session on a real systemd (a private one if systemd is not PID 1).
demo: setup box-up
	./scripts/demo.sh $(ORCH)

lint: install
	$(VENV)/bin/ruff check orch tests
	$(VENV)/bin/mypy

unit: install
	$(PY) -m pytest tests/unit -q

# The whole suite: unit tests, linters, and integration tests against real managers
# (the system manager as root and a non-root user's manager) inside a box.
test: setup
	$(PY) -m pytest -q -p no:cacheprovider

# orch against systemd's own tools, side by side, as the test user on its manager in a
# box: bench/results/latest.md and latest.json (bench/README.md). BENCH_QUICK=1: reduced.
bench: setup box-up
	$(PY) -m bench.run

# The README's pictures, taken by the tests' own browser and terminal runs.
screenshots: setup
	ORCH_SCREENSHOTS=$(CURDIR)/docs $(PY) -m pytest -q -p no:cacheprovider \
		tests/integration/test_dashboard.py tests/integration/test_top.py

# units/ is orch/unitfiles.py rendered for /usr/bin/orch.
units: install
	$(PY) -c 'from orch.unitfiles import write_tree; write_tree("units")'

# The Debian package, built with debhelper from a clean copy of the source (the files git
# knows, or in a tree without git such as a release tarball, all but what .gitignore
# names: packaging/copy-source.sh), checked by lintian; it lands in dist/.
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
DEB_BUILD := build/deb
deb: deb-deps
	rm -rf $(DEB_BUILD) && mkdir -p $(DEB_BUILD)/orch-$(VERSION) dist
	sh packaging/copy-source.sh $(DEB_BUILD)/orch-$(VERSION)
	cp -r packaging/debian $(DEB_BUILD)/orch-$(VERSION)/debian
	# Debian's own python3 builds it, whatever python comes first on the caller's PATH.
	cd $(DEB_BUILD)/orch-$(VERSION) && env PATH=/usr/sbin:/usr/bin:/sbin:/bin dpkg-buildpackage -us -uc -b
	mv $(DEB_BUILD)/orch_$(VERSION)_*.deb dist/
	lintian --fail-on error dist/orch_$(VERSION)_*.deb

clean:
	rm -rf build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache

"""The package test's bookworm root: the mirror read from apt's configuration, and the
cached root's mode (tests/packaging/debroot.py; the package test boots such a root)."""

from __future__ import annotations

import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.packaging import debroot

DEBIAN_SOURCES = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
# http://snapshot.debian.org/archive/debian-security/20250520T000000Z
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""

NODESOURCE = """\
Types: deb
URIs: https://deb.nodesource.com/node_20.x
Suites: nodistro
Components: main
Architectures: amd64
Signed-By: /usr/share/keyrings/nodesource.gpg
"""


def test_the_debian_stanza_of_a_deb822_file_is_the_mirror() -> None:
    files = [("/etc/apt/sources.list.d/debian.sources", DEBIAN_SOURCES),
             ("/etc/apt/sources.list.d/nodesource.sources", NODESOURCE)]
    assert debroot.debian_mirror(files) == "http://deb.debian.org/debian"


def test_security_updates_sources_disabled_stanzas_and_other_archives_are_passed_over(
        ) -> None:
    sources = """\
# Comments, before and between fields.
Types: deb-src
URIs: http://src.example.org/debian
Suites: bookworm
Components: main

Types: deb
URIs: http://security.example.org/debian-security
Suites: bookworm-security bookworm-updates
Components: main

Types: deb
URIs: http://off.example.org/debian
Suites: bookworm
Components: main
Enabled: no

Types: deb
URIs: https://packages.example.com/debian/12/prod
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/example-prod.gpg

Types: deb
URIs: https://inline.example.com/debian
Suites: bookworm
Components: main
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 mDMEZ...
 -----END PGP PUBLIC KEY BLOCK-----

types: deb
# the one that serves it
uris: cdrom:[Debian 12]/ http://mirror.example.net/debian/
suites: bookworm
components: contrib main
"""
    assert debroot.debian_mirror([("x.sources", sources)]) == "http://mirror.example.net/debian"


def test_one_line_entries_with_options_comments_and_several_lines() -> None:
    sources_list = """\
# deb http://commented.example.org/debian bookworm main
deb-src http://src.example.org/debian bookworm main
deb [arch=amd64 signed-by=/usr/share/keyrings/cloud.gpg] https://packages.cloud.google.com/apt cloud-sdk-bookworm main
deb [ arch=amd64 signed-by=/usr/share/keyrings/vendor.gpg ] http://vendor.example.com/debian bookworm main
deb http://security.debian.org/debian-security bookworm-security main
deb	[signed-by=/usr/share/keyrings/debian-archive-keyring.gpg]	http://ftp.de.debian.org/debian/ bookworm contrib main  # the mirror
deb http://later.example.org/debian bookworm main
"""  # noqa: E501
    assert debroot.debian_mirror([("/etc/apt/sources.list", sources_list)]) == \
        "http://ftp.de.debian.org/debian"


def test_nothing_that_serves_bookworm_main_is_none() -> None:
    files = [("a.sources", NODESOURCE),
             ("b.list", "deb http://deb.debian.org/debian bookworm contrib\n"),
             ("c.list", "deb http://deb.debian.org/debian trixie main\n")]
    assert debroot.debian_mirror(files) is None


def test_apt_reads_sources_list_first_and_only_list_and_sources_files(
        tmp_path: Path) -> None:
    parts = tmp_path / "sources.list.d"
    parts.mkdir()
    (parts / "zz-debian.sources").write_text(DEBIAN_SOURCES)
    (parts / "aa-mirror.list.disabled-by-farm").write_text(
        "deb http://disabled.example.org/debian bookworm main\n")
    (parts / "aa-mirror.list.save").write_text(
        "deb http://saved.example.org/debian bookworm main\n")
    assert debroot.apt_source_files(tmp_path) == [parts / "zz-debian.sources"]
    assert debroot.mirror(tmp_path) == "http://deb.debian.org/debian"
    (tmp_path / "sources.list").write_text("deb http://first.example.org/debian bookworm main\n")
    assert debroot.mirror(tmp_path) == "http://first.example.org/debian"


def test_orch_debian_mirror_overrides_apt(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_DEBIAN_MIRROR", "http://override.example.org/debian/")
    assert debroot.mirror(tmp_path) == "http://override.example.org/debian"


def test_no_source_is_one_error_naming_what_was_read(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORCH_DEBIAN_MIRROR", raising=False)
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "nodesource.sources").write_text(NODESOURCE)
    with pytest.raises(RuntimeError) as raised:
        debroot.mirror(tmp_path)
    message = str(raised.value)
    assert "\n" not in message
    assert "bookworm main" in message and "ORCH_DEBIAN_MIRROR" in message
    assert str(tmp_path / "sources.list.d" / "nodesource.sources") in message


def test_apts_proxy_is_debootstraps() -> None:
    dump = '\n'.join([
        'Acquire "";',
        'Acquire::http "";',
        'Acquire::http::Proxy "http://proxy.example.org:3128/";',
        'Acquire::http::Proxy::deb.debian.org "DIRECT";',
        'Acquire::Check-Valid-Until "false";',
    ])
    proxy = "http://proxy.example.org:3128/"
    assert debroot.apt_proxies(dump) == {"http_proxy": proxy, "https_proxy": proxy}
    both = dump + '\nAcquire::https::Proxy "http://tls-proxy.example.org:3129";'
    assert debroot.apt_proxies(both)["https_proxy"] == "http://tls-proxy.example.org:3129"
    assert debroot.apt_proxies('Acquire::http::Proxy "DIRECT";\n') == {}
    assert debroot.apt_proxies('Acquire::Check-Date "false";\n') == {}


def _fake_debootstrap(calls: list[str]) -> Callable[[Path, str], None]:
    def bootstrap(root: Path, source: str) -> None:
        calls.append(source)
        for name in ("usr/share/dbus-1/system.d", "proc", "sys", "dev", "run"):
            (root / name).mkdir(parents=True)
    return bootstrap


def test_a_new_cached_root_has_a_real_roots_mode(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_DEBIAN_MIRROR", "http://deb.example.org/debian")
    calls: list[str] = []
    root = debroot.cached_root(tmp_path, _fake_debootstrap(calls))
    assert calls == ["http://deb.example.org/debian"]
    assert stat.S_IMODE(root.stat().st_mode) == 0o755
    assert (root / "usr/share/dbus-1/system.d").is_dir()
    assert [p.name for p in tmp_path.iterdir() if p.name != ".lock"] == [root.name]
    assert debroot.cached_root(tmp_path, _fake_debootstrap(calls)) == root
    assert len(calls) == 1  # made once, then reused


def test_a_root_an_older_run_cached_with_mode_0700_is_never_booted_as_it_is(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_DEBIAN_MIRROR", "http://deb.example.org/debian")
    calls: list[str] = []
    root = debroot.cached_root(tmp_path, _fake_debootstrap(calls))
    old = Path(tempfile.mkdtemp(dir=tmp_path))  # what the old code renamed into place
    root.rename(tmp_path / "gone")
    old.rename(root)
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert debroot.cached_root(tmp_path, _fake_debootstrap(calls)) == root
    assert stat.S_IMODE(root.stat().st_mode) == 0o755
    assert len(calls) == 1

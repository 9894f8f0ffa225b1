"""The Debian packaging agrees with the project it packages (the package test boots it)."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import orch

REPO = Path(__file__).resolve().parents[2]
DEBIAN = REPO / "packaging" / "debian"


def test_one_version_everywhere() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    first_entry = (DEBIAN / "changelog").read_text().splitlines()[0]
    match = re.fullmatch(r"orch \(([^)]+)\) \S+; urgency=\w+", first_entry)
    assert match, first_entry
    assert match.group(1) == project == orch.__version__


def test_presets_enable_the_units_orch_ships_with_an_install_section() -> None:
    for preset, units in (("orch.system-preset", REPO / "units"),
                          ("orch.user-preset", REPO / "units" / "user")):
        enabled = {line.split()[1] for line in (DEBIAN / preset).read_text().splitlines()
                   if line.startswith("enable ")}
        installable = {unit.name for unit in units.iterdir()
                       if unit.is_file() and "[Install]" in unit.read_text()}
        assert enabled == installable == {"orch-recover.service", "orch-reap.timer",
                                          "orch-web.socket"}


def test_debian_dependency_floors_match_pyproject() -> None:
    # orch runs on what the package depends on: pyproject's ranges start there too.
    wanted = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    floors = dict(re.match(r"([a-z-]+)>=([0-9.]+)", spec).groups()  # type: ignore[union-attr,misc]
                  for spec in wanted)
    control = (DEBIAN / "control").read_text()
    for name in ("pystemd", "psutil", "tomli-w"):
        debian = re.search(rf"python3-{name} \(>= ([0-9.]+)\)", control)
        assert debian, name
        assert floors[name].startswith(debian.group(1)), (name, floors[name], debian.group(1))
    assert "python3-typer" not in control  # vendored: bookworm's 0.7 is too old
    pinned = (DEBIAN / "vendor-requirements.txt").read_text()
    typer = re.search(r"^typer==([0-9.]+)", pinned, re.M)
    assert typer

    def parts(version: str) -> tuple[int, ...]:
        return tuple(int(n) for n in version.split("."))

    assert parts(typer.group(1)) >= parts(floors["typer"])


COPY_SOURCE = REPO / "packaging" / "copy-source.sh"
# A developer's tree: source, and what building, testing and editing leave beside it.
SOURCE = {".gitignore", "Makefile", "orch/cli.py", "orch/sub/build.py", "docs/dist.md",
          "packaging/debian/rules"}
NOT_SOURCE = {"orch/__pycache__/cli.cpython-311.pyc", "orch/stray.pyc",
              "orch/_vendor/typer/__init__.py", "orch.egg-info/PKG-INFO", "build/deb/x",
              "dist/orch_0.1.0_amd64.deb", ".venv/pyvenv.cfg", ".mypy_cache/CACHEDIR.TAG",
              "tests/__pycache__/t.pyc"}


def _copy_source(tree: Path, dest: Path) -> set[str]:
    """What packaging/copy-source.sh copies from TREE into DEST, as relative names."""
    dest.mkdir()
    done = subprocess.run(["sh", str(COPY_SOURCE), str(dest)], cwd=tree, capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stderr
    return {str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()}


def _developer_tree(tree: Path) -> Path:
    for name in SOURCE | NOT_SOURCE:
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text("x\n")
    shutil.copy(REPO / ".gitignore", tree / ".gitignore")
    return tree


def test_a_tree_without_git_gives_its_source_and_nothing_else(tmp_path: Path) -> None:
    tree = _developer_tree(tmp_path / "orch-0.1.0")
    assert _copy_source(tree, tmp_path / "copy") == SOURCE


def test_a_git_tree_gives_what_git_knows_the_same_files(tmp_path: Path) -> None:
    tree = _developer_tree(tmp_path / "checkout")
    subprocess.run(["git", "init", "-q", str(tree)], check=True)
    (tree / "new.py").write_text("x\n")  # not yet added: git knows it all the same
    assert _copy_source(tree, tmp_path / "copy") == SOURCE | {"new.py"}

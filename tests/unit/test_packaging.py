"""The Debian packaging agrees with the project it packages (the package test boots it)."""

from __future__ import annotations

import re
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
        assert enabled == installable == {"orch-recover.service", "orch-reap.timer"}


def test_debian_dependency_floors_match_pyproject() -> None:
    # orch runs on what the package depends on: pyproject's ranges start there too.
    wanted = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    floors = dict(re.match(r"([a-z-]+)>=([0-9.]+)", spec).groups()  # type: ignore[union-attr]
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

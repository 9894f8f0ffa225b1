"""What a spawn and a listing load: no re (nor shlex, fnmatch or warnings, which load it).
Importing re, and compiling the patterns modules made at import, cost every spawn some
4 ms; their checks now load it only for a value that needs a pattern (a tag, --env, a
size). Nor contextlib (0.6-0.8 ms), nor what only a queued session or a reference needs.
Each probe runs in a fresh interpreter, with re taken out of it first (the probe's own
json loaded it)."""

from __future__ import annotations

import sys

import pytest

from tests.unit.fresh import probe

# Measured on 3.11 (Debian bookworm's): a later pathlib uses re as it loads.
pytestmark = pytest.mark.skipif(sys.version_info >= (3, 12), reason="pathlib loads re")

_UNLOAD_RE = ("for name in [m for m in sys.modules if m in ('re', 'fnmatch', 'warnings', "
              "'shlex') or m.startswith('re.')]:\n"
              "    del sys.modules[name]\n")
_LOADED = ("out['loaded'] = sorted(m for m in ('re', 'fnmatch', 'warnings', 'shlex') "
           "if m in sys.modules)\n")


def test_a_spawns_and_a_listings_modules_load_no_re() -> None:
    out = probe("import orch.cli, orch.commands, orch.fastcli, orch.request, orch.render\n"
                "import orch.usecases.spawn, orch.usecases.launching, orch.usecases.query\n"
                + _LOADED, prelude=_UNLOAD_RE)
    assert out == {"loaded": []}


def test_a_plain_spawns_checks_load_no_re() -> None:
    out = probe("from orch import spec\n"
                "s = spec.SessionSpec(argv=['/bin/echo', 'a b', \"it's\"], name='n',\n"
                "                     description='d')\n"
                "spec.validate(s)\n"
                "out['description'] = spec.description('id', spec.SessionSpec(\n"
                "    argv=['/bin/echo', 'a\\tb', \"it's\"]))\n" + _LOADED,
                prelude=_UNLOAD_RE)
    assert out == {"description": "orch session id: /bin/echo 'a b' 'it'\"'\"'s'",
                   "loaded": []}


def test_a_value_that_needs_a_pattern_loads_re_and_is_checked() -> None:
    out = probe("from orch import spec\n"
                "from orch.errors import UsageError\n"
                "try:\n"
                "    spec.validate(spec.SessionSpec(argv=['x'], env={'1BAD': 'v'}))\n"
                "except UsageError as err:\n"
                "    out['refused'] = str(err)\n" + _LOADED, prelude=_UNLOAD_RE)
    assert out == {"refused": "--env '1BAD': not a valid environment variable name",
                   "loaded": ["re"]}


def test_a_spawns_and_a_listings_modules_load_no_contextlib_and_a_listing_no_queues() -> None:
    out = probe("import orch.cli, orch.commands, orch.fastcli, orch.request, orch.render\n"
                "import orch.usecases.spawn, orch.usecases.launching, orch.usecases.query\n"
                "out['loaded'] = sorted(m for m in ('contextlib', 'orch.queues', "
                "'orch.resolve') if m in sys.modules)\n",
                # An editable install's import hook loaded it as the interpreter started.
                prelude="sys.modules.pop('contextlib', None)\n")
    assert out == {"loaded": []}

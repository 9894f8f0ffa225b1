"""orch's one import hook: dataclasses loads without inspect and pathlib without
urllib.parse, re, fnmatch or warnings, which every command would otherwise pay for, and
whoever uses them later gets the real modules. Each probe runs in a fresh interpreter:
this one has loaded them all long ago."""

from __future__ import annotations

import sys

import pytest

from tests.unit.fresh import probe


def test_orchs_modules_load_without_inspect() -> None:
    out = probe("import orch.api, orch.commands, orch.exithook, orch.recovery\n"
                "out['dataclasses'] = 'dataclasses' in sys.modules\n"
                "out['inspect'] = 'inspect' in sys.modules\n"
                "out['hook_left'] = any(type(f).__name__ == 'type' and "
                "f.__name__ == '_LighterImports' for f in sys.meta_path)")
    assert out == {"dataclasses": True, "inspect": False, "hook_left": False}


def test_dataclasses_and_inspect_work_whole_afterwards() -> None:
    out = probe("import orch.session, dataclasses\n"
                "@dataclasses.dataclass\n"
                "class Plain:\n"
                "    a: int\n"
                "import inspect\n"
                "out['doc'] = Plain.__doc__\n"  # worded by inspect.signature, loaded now
                "out['real'] = inspect.__file__.endswith('inspect.py')\n"
                "out['same'] = dataclasses.inspect.signature is inspect.signature")
    assert out == {"doc": "Plain(a: int)", "real": True, "same": True}


def test_nothing_changes_when_dataclasses_or_inspect_came_first() -> None:
    # (The hook may stay for pathlib, if that is not loaded yet: an editable install's
    # path finder loads it before any code runs, a plain install does not.)
    out = probe("import inspect, dataclasses\n"
                "import orch.session\n"
                "out['same'] = dataclasses.inspect is inspect\n"
                "out['pending'] = [name for f in sys.meta_path "
                "if getattr(f, '__name__', '') == '_LighterImports' for name in f.PENDING]")
    assert out["same"] is True and "dataclasses" not in out["pending"]
    out = probe("import inspect\n"
                "import orch.session, dataclasses\n"
                "out['same'] = dataclasses.inspect is inspect")
    assert out == {"same": True}


# An editable install's path finder loads pathlib (and urllib.parse) before any code
# runs: the probes that need pathlib unloaded take it out first.
# The probe's own json loaded re: that goes too, to see whether pathlib loads it again.
_UNLOAD_PATHLIB = ("for name in [m for m in sys.modules if m in ('pathlib', 'urllib.parse', "
                   "'ipaddress', 're', 'fnmatch', 'warnings') or m.startswith('re.')]:\n"
                   "    del sys.modules[name]\n")


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="a later pathlib loads re")
def test_pathlib_loads_without_urllib_parse_re_fnmatch_or_warnings() -> None:
    out = probe("import orch.state, orch.commands\n"
                "import pathlib\n"
                "out['pathlib'] = pathlib.Path.__module__\n"
                "out['loaded'] = sorted(m for m in ('urllib.parse', 'ipaddress', 're', "
                "'fnmatch', 'warnings') if m in sys.modules)", prelude=_UNLOAD_PATHLIB)
    assert out == {"pathlib": "pathlib", "loaded": []}


def test_pathlibs_patterns_work_whole_afterwards() -> None:
    out = probe("import orch, pathlib\n"
                "out['glob'] = [p.name for p in pathlib.Path('orch').glob('__init__.p?')]\n"
                "out['match'] = pathlib.PurePath('a/b.py').match('*.py')\n"
                "import re, fnmatch\n"
                "out['real'] = [re.__name__, fnmatch.fnmatchcase('ab', 'a?')]\n"
                "out['same'] = pathlib.re.compile is re.compile", prelude=_UNLOAD_PATHLIB)
    assert out == {"glob": ["__init__.py"], "match": True, "real": ["re", True],
                   "same": True}


def test_pathlib_and_urllib_parse_work_whole_afterwards() -> None:
    out = probe("import orch, pathlib\n"
                "out['uri'] = pathlib.Path('/a b/%').as_uri()\n"
                "import urllib.parse\n"
                "out['real'] = urllib.parse.__file__.endswith('parse.py')\n"
                "out['quote'] = urllib.parse.quote('a b')\n"
                "from urllib.parse import urlsplit\n"
                "out['split'] = urlsplit('http://h/p').netloc", prelude=_UNLOAD_PATHLIB)
    assert out == {"uri": "file:///a%20b/%25", "real": True, "quote": "a%20b", "split": "h"}


def test_nothing_changes_when_pathlib_came_first() -> None:
    out = probe("import urllib.parse, pathlib\n"
                "import orch.scope\n"
                "out['same'] = pathlib.urlquote_from_bytes is urllib.parse.quote_from_bytes",
                prelude=_UNLOAD_PATHLIB)
    assert out == {"same": True}

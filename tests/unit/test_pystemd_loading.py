"""How orch loads pystemd's D-Bus layer: dbuslib without the package's __init__, with
deferred stand-ins for the two modules it imports one name from, and the real modules
for whoever imports them later. Each probe runs in a fresh interpreter: this process
may have pystemd loaded already."""

from __future__ import annotations

from pathlib import Path

import pytest

from orch import dbus
from tests.unit import fresh

WATCHED = ("pystemd", "pystemd.utils", "pprint", "lxml", "pystemd.dbuslib",
           "pystemd.dbusexc")


def probe(code: str) -> dict[str, object]:
    """Run CODE after `from orch import dbus` in a fresh interpreter; it sets `out`."""
    return fresh.probe(code, prelude="from orch import dbus\n")


def test_dbuslib_loads_alone() -> None:
    out = probe("dbus.load_pystemd()\n"
                f"out['loaded'] = sorted(m for m in {WATCHED!r} if m in sys.modules)")
    assert out["loaded"] == ["pystemd.dbusexc", "pystemd.dbuslib"]


def test_later_imports_get_the_real_modules() -> None:
    out = probe("dbus.load_pystemd()\n"
                "import pprint, pystemd, pystemd.utils\n"
                "from pystemd.dbuslib import DBus\n"
                "out['utils'] = pystemd.utils.x2char_star is not dbus._x2char_star\n"
                "out['pprint'] = pprint.pformat is not dbus._pformat\n"
                "out['package'] = hasattr(pystemd, 'SDUnit')\n"
                "out['same_dbuslib'] = sys.modules['pystemd.dbuslib'].DBus is DBus")
    assert out == {"utils": True, "pprint": True, "package": True, "same_dbuslib": True}


def test_an_already_loaded_pprint_is_left_in_place() -> None:
    out = probe("import pprint\nmine = pprint\ndbus.load_pystemd()\n"
                "out['kept'] = sys.modules['pprint'] is mine")
    assert out == {"kept": True}


def test_a_dbuslib_wanting_more_is_loaded_plainly() -> None:
    # Stand-ins lacking the names dbuslib imports make its load fail as a newer
    # dbuslib asking for more would; the loader must then import it plainly.
    out = probe("import types\n"
                "dbus._deferred_modules = lambda make: {'pystemd.utils': "
                "types.ModuleType('pystemd.utils'), 'pprint': types.ModuleType('pprint')}\n"
                "dbus.load_pystemd()\n"
                "import pystemd.utils\n"
                "out['loaded'] = 'pystemd.dbuslib' in sys.modules\n"
                "out['real_utils'] = hasattr(sys.modules['pystemd.utils'], 'str2cmd')\n"
                "out['package_is_stand_in'] = 'pystemd' in sys.modules and "
                "not hasattr(sys.modules['pystemd'], '__file__')")
    assert out == {"loaded": True, "real_utils": True, "package_is_stand_in": False}


@pytest.mark.parametrize("value, convert_all", [
    (b"unit", False), ("unit", False), (Path("/a/b"), False), (7, False), (7, True),
    (True, True), (None, False), ("é", True),
])
def test_deferred_x2char_star_answers_as_pystemds(value: object, convert_all: bool) -> None:
    from pystemd.utils import x2char_star

    assert dbus._x2char_star(value, convert_all) == x2char_star(value, convert_all)


def test_deferred_pformat_words_as_pprint() -> None:
    from pprint import pformat

    value = [b"as", [b"x" * 40] * 4, {"k": (1, 2)}]
    assert dbus._pformat(value) == pformat(value)


def test_a_package_is_found_by_every_finder_not_only_on_sys_path(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # As importlib.util.find_spec: an editable install's finder is one of sys.meta_path.
    import importlib.machinery
    import sys

    made = importlib.machinery.ModuleSpec("pystemd_elsewhere", None)

    class Editable:
        @staticmethod
        def find_spec(name: str, path: object = None, target: object = None) -> object:
            return made if name == "pystemd_elsewhere" else None
    monkeypatch.setattr(sys, "meta_path", [*sys.meta_path, Editable])
    assert dbus._find_spec("pystemd_elsewhere") is made
    assert dbus._find_spec("no_such_package_anywhere") is None
    assert dbus._find_spec("pystemd").origin.endswith("__init__.py")

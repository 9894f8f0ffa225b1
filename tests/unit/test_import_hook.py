"""orch's one import hook: dataclasses loads without inspect, which every command would
otherwise pay for, and whoever uses inspect later gets the real module. Each probe runs
in a fresh interpreter: this one has loaded both long ago."""

from __future__ import annotations

from tests.unit.fresh import probe


def test_orchs_modules_load_without_inspect() -> None:
    out = probe("import orch.api, orch.commands, orch.exithook, orch.recovery\n"
                "out['dataclasses'] = 'dataclasses' in sys.modules\n"
                "out['inspect'] = 'inspect' in sys.modules\n"
                "out['hook_left'] = any(type(f).__name__ == 'type' and "
                "f.__name__ == '_DataclassesWithoutInspect' for f in sys.meta_path)")
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
    out = probe("import inspect, dataclasses\n"
                "import orch.session\n"
                "out['same'] = dataclasses.inspect is inspect\n"
                "out['hook'] = [type(f).__name__ for f in sys.meta_path "
                "if getattr(f, '__name__', '') == '_DataclassesWithoutInspect']")
    assert out == {"same": True, "hook": []}
    out = probe("import inspect\n"
                "import orch.session, dataclasses\n"
                "out['same'] = dataclasses.inspect is inspect")
    assert out == {"same": True}

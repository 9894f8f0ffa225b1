"""The shape of the code, read from its syntax trees: no import cycles among orch's
modules, no module much over 500 lines, and each kind of outside I/O through its one
choke point (ssh in orch.ssh, journalctl in orch.journal, renames of whole files in
orch.files, pystemd in orch.systemd and orch.dbus)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "orch"
MAX_LINES = 520

# Modules still over MAX_LINES while the restructure is under way, with their length when
# this list was written. Empty it as they are split: the test fails for a module over the
# limit that is not listed, and for a listed one that no longer is (remove it then).
OVER_LIMIT: dict[str, int] = {}

# The programs run only by their choke point.
CHOKE_POINTS = {"ssh": "orch/ssh.py", "journalctl": "orch/journal.py"}
# The names of orch.ssh that build a command line for a process to run.
SSH_ARGV_BUILDERS = frozenset({"base_argv", "command_argv"})
FILES_MODULE = "orch/files.py"
PYSTEMD_MODULES = frozenset({"orch/systemd.py", "orch/dbus.py"})
# Calls that start a program or rename a file, by module and function.
RUNNERS = {"subprocess": None, "os": ("exec", "spawn", "posix_spawn"), "pty": ("spawn",)}
RENAMES = {("os", "replace"), ("os", "rename"), ("os", "renames"), ("shutil", "move")}


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _name(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _dotted(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _module_level(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """The statements run when the module is imported: not those in functions, nor
    under `if TYPE_CHECKING:` (its else branch runs)."""
    for node in body:
        yield node
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _module_level(node.orelse)
            continue
        for field in ("body", "orelse", "finalbody", "handlers"):
            children = getattr(node, field, None)
            if isinstance(children, list):
                yield from _module_level([c for c in children if isinstance(c, ast.stmt)])
        for handler in getattr(node, "handlers", ()):
            yield from _module_level(handler.body)


def _imported(path: Path, node: ast.stmt, known: set[str]) -> Iterator[str]:
    """The orch modules NODE imports (an import of a package's name that is not a
    submodule is an import of the package)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            package = _dotted(path).split(".")
            if path.name != "__init__.py":
                package = package[:-1]
            package = package[:len(package) - (node.level - 1)]
            base = ".".join([*package, *([base] if base else [])])
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                 for alias in node.names]
    else:
        return
    for name in names:
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name:
            yield name


def _import_graph() -> dict[str, set[str]]:
    paths = {_dotted(path): path for path in _modules()}
    known = set(paths)
    return {name: {target for node in _module_level(_tree(path).body)
                   for target in _imported(path, node, known) if target != name}
            for name, path in paths.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of GRAPH, as the modules along it, or None."""
    done: set[str] = set()

    def visit(name: str, trail: list[str]) -> list[str] | None:
        if name in trail:
            return [*trail[trail.index(name):], name]
        if name in done:
            return None
        for target in sorted(graph.get(name, ())):
            found = visit(target, [*trail, name])
            if found:
                return found
        done.add(name)
        return None

    for name in sorted(graph):
        found = visit(name, [])
        if found:
            return found
    return None


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_module_level_imports_skip_functions_and_type_checking() -> None:
    tree = ast.parse("import a\nif TYPE_CHECKING:\n    import b\nelse:\n    import c\n"
                     "def f():\n    import d\ntry:\n    import e\nexcept E:\n    import g\n"
                     "class K:\n    import h\n")
    found = {alias.name for node in _module_level(tree.body)
             if isinstance(node, ast.Import) for alias in node.names}
    assert found == {"a", "c", "e", "g", "h"}


def test_no_import_cycles_among_orch_modules() -> None:
    graph = _import_graph()
    assert {"orch.systemd", "orch.journal", "orch.ssh"} <= set(graph)
    assert "orch.connection" in graph["orch.systemd"]  # the graph sees from-imports
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_module_is_over_the_limit_unless_listed() -> None:
    lengths = {_name(path): len(path.read_text().splitlines()) for path in _modules()}
    over = {name: n for name, n in lengths.items() if n > MAX_LINES}
    unlisted = {name: n - MAX_LINES for name, n in over.items() if name not in OVER_LIMIT}
    assert not unlisted, f"over {MAX_LINES} lines by: {unlisted}"
    stale = sorted(set(OVER_LIMIT) - set(over))
    assert not stale, f"no longer over {MAX_LINES} lines: remove {stale} from OVER_LIMIT"


def _call_target(call: ast.Call) -> tuple[str, str] | None:
    """(module, function) of a call such as subprocess.run(...) or os.execvp(...)."""
    func = call.func
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        return func.value.id, func.attr
    return None


def _runs_programs(tree: ast.Module) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            modules = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                       else [node.module or ""])
            if "subprocess" in modules:
                return True
        if isinstance(node, ast.Call) and (target := _call_target(node)):
            module, function = target
            prefixes = RUNNERS.get(module, ())
            if prefixes and function.startswith(prefixes):
                return True
    return False


def _argv_programs(tree: ast.Module) -> Iterator[str]:
    """The programs command lines in TREE start with: the first word of a list, or of a
    tuple of words only."""
    for node in ast.walk(tree):
        if isinstance(node, ast.List | ast.Tuple) and node.elts:
            first = node.elts[0]
            if isinstance(node, ast.Tuple) and not all(
                    isinstance(e, ast.Starred)
                    or (isinstance(e, ast.Constant) and isinstance(e.value, str))
                    for e in node.elts):
                continue
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                yield first.value


def test_argv_programs_are_found_in_lists_and_word_tuples() -> None:
    tree = ast.parse('a = ["ssh", "-x"]\nb = ("journalctl", "--sync")\nc = ("journalctl", 1)\n'
                     'subprocess.run(["ls", *args])\n')
    assert list(_argv_programs(tree)) == ["ssh", "journalctl", "ls"]
    assert _runs_programs(ast.parse("import subprocess\n"))
    assert _runs_programs(ast.parse("os.execvp(a[0], a)\n"))
    assert not _runs_programs(ast.parse("import os\nos.path.join(a)\n"))


@pytest.mark.parametrize(("program", "owner"), sorted(CHOKE_POINTS.items()))
def test_a_program_is_run_only_by_its_choke_point(program: str, owner: str) -> None:
    assert program in _argv_programs(_tree(ROOT / owner))
    offenders = [_name(path) for path in _modules()
                 if _name(path) != owner and program in _argv_programs(_tree(path))]
    assert not offenders, f"{program} command lines outside {owner}: {offenders}"


def test_only_orch_ssh_runs_the_command_lines_it_builds() -> None:
    offenders = []
    for path in _modules():
        tree = _tree(path)
        if _name(path) == CHOKE_POINTS["ssh"] or not _runs_programs(tree):
            continue
        names = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
        names |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                  for alias in node.names}
        if names & SSH_ARGV_BUILDERS:
            offenders.append(_name(path))
    assert not offenders, f"modules running ssh's command lines themselves: {offenders}"


def test_files_are_renamed_only_by_orch_files() -> None:
    offenders = []
    for path in _modules():
        for node in ast.walk(_tree(path)):
            renames = (isinstance(node, ast.Call) and _call_target(node) in RENAMES) or (
                isinstance(node, ast.ImportFrom) and any(
                    (node.module, alias.name) in RENAMES for alias in node.names))
            if renames and _name(path) != FILES_MODULE:
                offenders.append(f"{_name(path)}:{getattr(node, 'lineno', '?')}")
    assert not offenders, f"files renamed outside {FILES_MODULE}: {offenders}"
    assert any(_call_target(n) == ("os", "replace") for n in ast.walk(_tree(ROOT / FILES_MODULE))
               if isinstance(n, ast.Call))


def _importers(top: str) -> set[str]:
    """The modules of orch that import TOP or one of its submodules, anywhere in them."""
    found = set()
    for path in _modules():
        for node in ast.walk(_tree(path)):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(name.split(".")[0] == top for name in names):
                found.add(_name(path))
    return found


def test_only_orch_jsontext_imports_json() -> None:
    # Loading json costs each command some 5 ms (its import compiles regexes).
    assert _importers("json") == {"orch/jsontext.py"}


def test_only_the_systemd_adapter_imports_pystemd() -> None:
    assert _importers("pystemd") - PYSTEMD_MODULES == set()

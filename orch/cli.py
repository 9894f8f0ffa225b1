"""The `orch` command's entry point: parse, run, and turn expected failures into one
line on stderr and an exit status.

Both parsers read the one definition of the command line (orch.commandline). A
well-formed command line goes through orch.fastcli straight to its body in
orch.commands, without loading typer (whose import and parameter building cost some
100 ms a call). Everything else (help, completion, usage errors, the rarer option forms)
goes to typer's command tree in orch.app, built from the same definition.
"""

from __future__ import annotations

import gc
import os
import sys

from orch import __version__
from orch.errors import OrchError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn


def _forward_into_box(args: list[str]) -> None:
    """On a host whose PID 1 is not systemd, run session commands inside the box."""
    if not args or args[0] in ("box", "--help", "--version", "-h"):
        return
    if os.environ.get("ORCH_IN_BOX") or os.geteuid() != 0:
        return
    from orch import box

    if box.systemd_is_pid1():
        return
    running = box.running_box()
    if running is None or running.root != "/":  # a box over another OS tree lacks this orch
        return
    os.environ["ORCH_IN_BOX"] = "1"
    box.exec_inside([sys.executable, "-m", "orch", *args])


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def _fail(message: str, code: int) -> NoReturn:
    from orch.visible import visible

    # What the message quotes (a path, a program, a value given) may hold an escape
    # sequence: shown, never handed to the terminal.
    _say(f"orch: {visible(message)}")
    sys.exit(code)


def _with_typer(args: list[str], debug: bool) -> int:
    """Parse and run ARGS through typer's command tree."""
    import traceback

    from orch import vendor

    vendor.activate()  # a package's vendored typer must win
    import typer

    from orch.app import app

    try:
        code = app(args=args, prog_name="orch", standalone_mode=False)
    except typer.Exit as done:
        code = done.exit_code
    except typer.TyperException as err:  # click's usage errors, vendored by typer
        if debug:
            traceback.print_exc()
        if type(err).__name__ == "NoArgsIsHelpError":  # `orch`, `orch config`: the help,
            _say(err.format_message())  # as it reads, where a command was wanted
            return 2
        ctx = getattr(err, "ctx", None)
        path = ctx.command_path.split(" ", 1)[-1] if ctx and " " in ctx.command_path else ""
        hint = f"see `orch {path} --help`" if path else "see `orch --help`"
        name = str(getattr(err, "option_name", ""))
        if name[1:].replace(".", "", 1).isdigit():  # `orch config set spawn.nice -5`
            hint = f"a negative value goes after --: `-- {name}`"
        _fail(f"{err.format_message()} ({hint})".replace("\n", " "), err.exit_code)
    except typer.Abort:
        _fail("interrupted", 130)
    return code if isinstance(code, int) else 0


def _run(args: list[str], debug: bool) -> int:
    from orch import fastcli

    parsed = fastcli.parse(args)
    if parsed is None:
        return _with_typer(args, debug)
    if parsed.command is None:
        print(f"orch {__version__}")
        return 0
    from orch.commandline import call

    return call(parsed.command, parsed.values)


def _leave(code: int) -> NoReturn:
    """End the process with CODE, skipping the interpreter's teardown (freeing every
    module and object one by one: some 8 ms of a spawn's 80). Nothing is left to it:
    state files are written, synced and closed by the commands themselves, idle
    connections need no goodbye, and the standard streams are flushed here; if they
    cannot be (a reader gone), the ordinary exit reports it as Python always did."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        if not _reader_left():
            sys.exit(code)
    except BaseException:
        sys.exit(code)
    os._exit(code)


def _reader_left() -> bool:
    """Whether stdout's reader has left (`orch ps --json | head`): then stdout is pointed
    at /dev/null and the command ends quietly, as journalctl and systemctl do, not as
    an internal error: with status 0 if the write failed in its midst, else its own."""
    from orch import pager

    if not pager.reader_gone(sys.stdout):
        return False
    pager.quiet_stdout()
    return True


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning expected failures into one line and an exit code.
    Run as the process's own entry (ARGV None) it ends the process when done."""
    if argv is None:
        # A command allocates in one burst and ends: a collection every 700 new objects
        # (the default) costs `orch ps --json` some 4 ms at a thousand sessions. A long
        # one (wait, logs -f) still collects, every 100,000.
        gc.set_threshold(100_000)
    try:
        code = _main(argv)
    except SystemExit as done:
        if argv is not None or not isinstance(done.code, int | None):
            raise
        code = done.code or 0
    if argv is not None:
        sys.exit(code)
    _leave(code)


def _main(argv: list[str] | None) -> int:
    if os.environ.get("_ORCH_COMPLETE"):  # a shell's completion script: answer, nothing else
        from orch import completion

        return completion.answer()
    args = list(sys.argv[1:] if argv is None else argv)
    debug = _debug_asked(args) or bool(os.environ.get("ORCH_DEBUG"))
    try:
        from orch import hostcli

        remote_code = hostcli.run(args)
        if remote_code is not None:
            return remote_code
        _forward_into_box(args)
        code = _run(args, debug)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except OrchError as err:
        if debug:
            import traceback

            traceback.print_exc()
        _fail(err.message + (f"; {err.hint}" if err.hint else ""), err.exit_code)
    except BrokenPipeError as err:
        if not _reader_left():
            _internal(err, debug)
        return 0
    except Exception as err:
        _internal(err, debug)
    return code


def _debug_asked(args: list[str]) -> bool:
    """Whether --debug is among the root's options, before the command: after it, it is
    no option of the command's (the usage error says so, with no trace)."""
    from orch.commandline import HOST_OPTIONS

    at = 0
    while at < len(args) and args[at].startswith("-") and args[at] != "--":
        if args[at] == "--debug":
            return True
        at += 2 if args[at] in HOST_OPTIONS else 1  # --host H: H is no command
    return False


def _internal(err: Exception, debug: bool) -> NoReturn:
    if debug:
        import traceback

        traceback.print_exc()
    _fail(f"internal error: {err!r} (run with --debug for the trace)", 70)


__all__ = ["__version__", "main"]

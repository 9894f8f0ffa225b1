"""Shell completion for `orch`: the scripts bash, zsh and fish source, and the answers
to the requests those scripts make, both from typer's own completion machinery.

A script runs `orch` with _ORCH_COMPLETE=complete_SHELL (and the words typed so far) in
the environment; `main()` hands that request to `answer()` before anything else, so a
completion never forwards into a box nor contacts systemd. `python -m orch.completion
SHELL` prints the script (the Debian package build installs its output).
"""

from __future__ import annotations

import argparse
import os
import sys
from enum import StrEnum

from orch import vendor

# The package build runs this with typer vendored: that copy must win, as in orch.cli.
vendor.activate()
import typer  # noqa: E402
import typer.main  # noqa: E402
from typer._completion_classes import completion_init  # noqa: E402
from typer._completion_shared import get_completion_script  # noqa: E402
from typer.completion import shell_complete  # noqa: E402

PROG_NAME = "orch"
COMPLETE_VAR = "_ORCH_COMPLETE"


class Shell(StrEnum):
    """The shells orch ships completion for."""

    BASH = "bash"
    ZSH = "zsh"
    FISH = "fish"


def script(shell: str) -> str:
    """The script SHELL sources to complete `orch` (ValueError for another shell)."""
    try:
        name = Shell(shell)
    except ValueError:
        raise ValueError(f"no completion for {shell!r}; shells: "
                         f"{', '.join(Shell)}") from None
    text = get_completion_script(prog_name=PROG_NAME, complete_var=COMPLETE_VAR,
                                 shell=name.value) + "\n"
    if name is Shell.ZSH:
        # Installed in an fpath directory, this file is autoloaded as the body of
        # `_orch` on the first Tab; typer's script only defines its function there, so
        # that first Tab would complete nothing. Answer it too (cobra's idiom).
        text += f'\nif [ "$funcstack[1]" = "_{PROG_NAME}" ]; then\n' \
                f'  _{PROG_NAME}_completion "$@"\nfi\n'
    return text


def answer(cli: typer.Typer) -> int:
    """Print the completions the request in the environment asks for, from CLI's command
    tree (the parser only: no command runs); the exit status."""
    # The app is made with add_completion=False (no --install-completion option), and
    # only the code behind that option registers typer's shell classes; without them
    # every request fails with "Shell bash not supported".
    completion_init()
    return shell_complete(typer.main.get_command(cli), {}, PROG_NAME, COMPLETE_VAR,
                          os.environ[COMPLETE_VAR])


def main(argv: list[str] | None = None) -> int:
    """`python -m orch.completion SHELL`: print SHELL's completion script."""
    parser = argparse.ArgumentParser(prog="python -m orch.completion",
                                     description="Print the completion script of a shell.")
    parser.add_argument("shell", choices=[str(s) for s in Shell])
    sys.stdout.write(script(parser.parse_args(argv).shell))
    return 0


if __name__ == "__main__":
    sys.exit(main())

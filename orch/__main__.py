"""`python -m orch` runs the CLI."""

from orch.cli import main

main()

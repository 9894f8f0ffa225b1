"""Words as a POSIX shell reads them back: shlex.quote's and shlex.join's very text,
without loading re (which shlex does, at a cost above this module's): every spawn
writes a command line into its unit's description, and `ps` one a session."""

from __future__ import annotations

from collections.abc import Iterable

# What shlex.quote leaves bare: its pattern's \w under re.ASCII, and @%+=:,./-
_BARE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_@%+=:,./-")


def quote(word: str) -> str:
    """WORD as one shell word (shlex.quote)."""
    if word and _BARE.issuperset(word):
        return word
    return "'" + word.replace("'", "'\"'\"'") + "'"


def join(words: Iterable[str]) -> str:
    """WORDS as one shell command line (shlex.join)."""
    return " ".join(map(quote, words))

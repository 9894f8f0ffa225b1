"""orch.shellwords writes what shlex writes, word for word."""

from __future__ import annotations

import shlex

from hypothesis import given
from hypothesis import strategies as st

from orch import shellwords

# Every kind of character the two tell apart, often: shlex's bare set, quotes, blanks,
# controls, non-ASCII letters and digits (\w without re.ASCII would take them).
_CHARS = st.sampled_from([*"aZ09_@%+=:,./-'\" \t\n\\$`!*?[]{}()<>|&;#~^\x00\x7féß٣",
                          "\u200b", "\U0001f600"])


@given(words=st.lists(st.text(_CHARS, max_size=8) | st.text(max_size=8), max_size=5))
def test_quote_and_join_are_shlexs(words: list[str]) -> None:
    assert [shellwords.quote(w) for w in words] == [shlex.quote(w) for w in words]
    assert shellwords.join(words) == shlex.join(words)


def test_quoted_words_read_back_as_they_were() -> None:
    words = ["", "it's", "a b", "$HOME", "--flag=x", "tab\there"]
    assert shlex.split(shellwords.join(words)) == words

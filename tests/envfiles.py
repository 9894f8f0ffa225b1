"""Environment files for the tests of --env-file: hand-picked hard cases with what a
program under systemd's EnvironmentFile= sees (the integration tests check each against
systemd itself), files orch refuses, and a generator of many more."""

from __future__ import annotations

from hypothesis import strategies as st

# (file text, the variables a program gets)
CASES: list[tuple[str, dict[str, str]]] = [
    ('EF="x\\"y"\n', {"EF": 'x"y'}),
    ('EF="line1\nline2"\n', {"EF": "line1\nline2"}),
    ("EF='a\n b'\nEG=2\n", {"EF": "a\n b", "EG": "2"}),
    ("EF='$x \\n \\\\ \"'\n", {"EF": '$x \\n \\\\ "'}),
    ('EF="\\$HOME \\` \\\\ \\n \\a \'"\n', {"EF": "$HOME ` \\ \\n \\a '"}),
    ('EF="one\\\ntwo"\n', {"EF": "onetwo"}),
    ("EF=one\\\ntwo\n", {"EF": "onetwo"}),
    ('EF=a\\ b\\"c\\\\d\\$e\n', {"EF": 'a b"c\\d$e'}),
    ("  EF  =   spaced   value   \n", {"EF": "spaced   value"}),
    ("EF=x\\ \n", {"EF": "x "}),
    ("EF=x \\ \n", {"EF": "x  "}),
    ("# c\n; d\n  # indented\nEF=1 # not a comment\n", {"EF": "1 # not a comment"}),
    ('EF="#x" ;y\n', {"EF": "#x;y"}),
    ("EF=\"a\"'b'c\n", {"EF": "abc"}),
    ('EF="a" "b"\n', {"EF": "ab"}),
    ("EF=it's \"so\"\n", {"EF": "it's \"so\""}),
    ("EF=\nEG=\"\"\nEH=''\nEI=   \n", {"EF": "", "EG": "", "EH": "", "EI": ""}),
    ("EF=1\nEF=2\n", {"EF": "2"}),
    ('EF=1\r\nEG="x"\r\n', {"EF": "1", "EG": "x"}),
    ("EF=1", {"EF": "1"}),
    ("EF=x  ", {"EF": "x"}),
    ("EF=b=c\n", {"EF": "b=c"}),
    ("EF=h\u00e9llo \u2713\n", {"EF": "h\u00e9llo \u2713"}),
    ("EF=$HOME ${X} `id`\n", {"EF": "$HOME ${X} `id`"}),
    ("EF=x\\", {"EF": "x"}),
    ('EF="a\rb"\n', {"EF": "a\rb"}),
    ("EF=\tx\t\n", {"EF": "x"}),
    ('EF = "  padded  "  \n', {"EF": "  padded  "}),
    ("# c \\\n# d\nEF=1\n", {"EF": "1"}),
    ("# c \\\n\nEF=1\n", {"EF": "1"}),
    ("# c \\\\\nEF=1\n", {"EF": "1"}),
    ('EF="trailing  \n  "\n', {"EF": "trailing  \n  "}),
    ("_EF9=ok\n", {"_EF9": "ok"}),
]

# (file text, the line orch names, a piece of its reason)
REFUSED: list[tuple[str, int, str]] = [
    ("export EF=1\n", 1, "'export EF' is not a variable name"),
    ("EF=1\nEG\n", 2, "expected KEY=VALUE"),
    ("EF=1\nEG", 2, "expected KEY=VALUE"),
    ("1EF=x\n", 1, "'1EF' is not a variable name"),
    ("E-F=x\n", 1, "'E-F' is not a variable name"),
    ("E F=x\n", 1, "'E F' is not a variable name"),
    ('EF=1\nEG="open\nEH=1\n', 2, "a quote opened here is never closed"),
    ("EF='open", 1, "a quote opened here is never closed"),
    ("# c \\\nEF=2\n", 1, "a comment ending in a backslash"),
    ("EF=1\nEG=a\x00b\n", 2, "holds a NUL byte"),
    ("=x\n", 1, "expected KEY=VALUE"),
]

_NAME = st.from_regex(r"E[A-Z0-9_]{0,3}", fullmatch=True)
_TEXT = "ab $`\\\"'#;= \t\n\r\u00e9\u03bc"
_UNQUOTED = st.text(alphabet="ab $`\\\"#;= \t\u00e9", max_size=8)
_SINGLE = st.text(alphabet=_TEXT.replace("'", ""), max_size=8).map(lambda s: f"'{s}'")
_DOUBLE = st.lists(st.one_of(st.text(alphabet="ab $#;' \t\n\r\u00e9", max_size=4),
                             st.sampled_from(["\\\\", '\\"', "\\$", "\\`", "\\n", "\\a",
                                              "\\\n"])),
                   max_size=4).map(lambda parts: '"' + "".join(parts) + '"')
_VALUE = st.lists(st.one_of(_UNQUOTED, _SINGLE, _DOUBLE), max_size=3).map("".join)
_LINE = st.one_of(
    st.tuples(st.sampled_from(["", " ", "\t "]), _NAME, st.sampled_from(["", " "]),
              st.sampled_from(["", " ", "  "]), _VALUE)
    .map(lambda t: f"{t[0]}{t[1]}{t[2]}={t[3]}{t[4]}"),
    st.tuples(st.sampled_from(["#", ";", " #"]), st.text(alphabet="ab =\"'\\", max_size=6))
    .map("".join),
    st.sampled_from(["", "  "]),
)
# Lines as people write them, and anything at all made of the characters that matter.
ENV_FILES = st.one_of(
    st.tuples(st.lists(_LINE, min_size=1, max_size=5), st.sampled_from(["\n", "\r\n"]),
              st.booleans())
    .map(lambda t: t[1].join(t[0]) + (t[1] if t[2] else "")),
    st.text(alphabet="EF_1= \t\n\r#;'\"\\$x", max_size=30),
)

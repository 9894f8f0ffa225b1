"""The argv templates of agent providers (orch.providers).

Templates. An item is one argv word (a string) or a GROUP of words (a tuple; in TOML an
array of strings) kept or dropped together. Words may hold placeholders:

- `{binary}`, `{prompt}`, `{model}`, `{system_prompt}`, `{max_turns}`,
  `{provider_session_id}`: scalars. An item using one that is unset (None or empty) is
  dropped whole: `"--model={model}"` or `("--model", "{model}")` vanishes without a model.
  With a `!` (`{model!}`) the value is required instead: building the argv without it
  fails ("ollama needs --model").
- `{add_dir*}`: a list; the item is repeated once per value, and dropped if there is none.
- `{auto_approve?}`: a flag; the item is kept only when it is true, and the token itself
  is removed from it (a word that was only the token disappears).

Values are substituted in one pass, as whole values, into words that go to the program
as they are: no shell, no re-splitting, and braces inside a value are never expanded
again. Any other identifier in braces is refused as an unknown placeholder; other braces
(`{"a": 1}`) are literal text. argv[0] is always the provider's binary and is not part of
the template (`{binary}` is there for a template that must pass it on).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from orch.errors import UsageError

Item = str | tuple[str, ...]

# Compiled (and cached by re) when first used: a plain spawn loads this module too.
_TOKEN = r"\{([A-Za-z_][A-Za-z0-9_]*)([!*?]?)\}"
SCALARS = ("binary", "prompt", "model", "system_prompt", "max_turns", "provider_session_id")
LIST = "add_dir"
FLAG = "auto_approve"
_KNOWN = ", ".join([*(f"{{{name}}}" for name in SCALARS), f"{{{LIST}*}}", f"{{{FLAG}?}}"])

def _group(item: Item) -> tuple[str, ...]:
    return (item,) if isinstance(item, str) else tuple(item)


def _check_token(name: str, suffix: str) -> None:
    """Refuse a placeholder outside the template language."""
    if (suffix in ("", "!") and name in SCALARS) or (name, suffix) in (
            (LIST, "*"), (FLAG, "?")):
        return
    raise UsageError(f"unknown placeholder {{{name}{suffix}}} (known: {_KNOWN})")


def placeholders(template: Sequence[Item]) -> dict[str, set[str]]:
    """The placeholders TEMPLATE uses, by name, each with the suffixes it carries
    ('' or '!' for scalars); UsageError for an unknown one."""
    import re  # an agent's spawn's alone: a plain one loads none

    used: dict[str, set[str]] = {}
    for item in template:
        for word in _group(item):
            for match in re.finditer(_TOKEN, word):
                _check_token(match[1], match[2])
                used.setdefault(match[1], set()).add(match[2])
    return used


def _scalar(name: str, value: object) -> str | None:
    """A scalar value as its word, None when unset."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise TypeError(f"{{{name}}}: expected a string or an integer, got {type(value).__name__}")


def _values(value: object) -> list[str]:
    """The list placeholder's values; empty strings count as unset."""
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise TypeError(f"{{{LIST}*}}: expected a sequence of strings, "
                        f"got {type(value).__name__}")
    values = list(value)
    if not all(isinstance(v, str) for v in values):
        raise TypeError(f"{{{LIST}*}}: expected a sequence of strings")
    return [v for v in values if v]


def _render_group(group: tuple[str, ...], values: Mapping[str, object]) -> list[str]:
    import re  # see placeholders

    tokens = [(m[1], m[2]) for word in group for m in re.finditer(_TOKEN, word)]
    for name, suffix in tokens:
        _check_token(name, suffix)
    names = {name for name, _ in tokens}
    if FLAG in names:
        flag = values.get(FLAG)
        if flag is not None and not isinstance(flag, bool):
            raise TypeError(f"{{{FLAG}?}}: expected a bool, got {type(flag).__name__}")
        if not flag:
            return []
    scalars = {name: _scalar(name, values.get(name)) for name in names if name in SCALARS}
    for name, suffix in tokens:
        if suffix == "!" and scalars[name] is None:
            raise UsageError(f"{{{name}!}} is required but has no value")
    if any(value is None for value in scalars.values()):
        return []
    repeats: list[str | None] = [None]
    if LIST in names:
        repeats = [*_values(values.get(LIST))]

    words: list[str] = []
    for each in repeats:
        def substitute(match: re.Match[str], each: str | None = each) -> str:
            name = match[1]
            if name == FLAG:
                return ""
            if name == LIST:
                return each or ""
            return scalars[name] or ""

        for word in group:
            rendered = re.sub(_TOKEN, substitute, word)
            # Only removing the flag token can empty a word: that word goes too.
            if rendered or not word:
                words.append(rendered)
    return words


def render(template: Sequence[Item], values: Mapping[str, object]) -> list[str]:
    """TEMPLATE's words with VALUES (keyed by placeholder name: "model", "add_dir",
    "auto_approve", ...) substituted, unset groups dropped and list groups repeated.
    A name missing from VALUES is unset."""
    words: list[str] = []
    for item in template:
        words.extend(_render_group(_group(item), values))
    return words

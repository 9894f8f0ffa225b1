"""JSON text in and out, through json's C accelerator (_json) without loading json.

Loading json costs each command some 5 ms, a tenth of `orch ps` or `orch spawn`: its
decoder and encoder compile regular expressions at import, for the pure-Python paths
that its C scanner and encoder replace. orch calls those two directly; what they do is
what json.loads and json.dumps do with them. json itself is loaded only to word what
was not read (json's own error), to indent, or where Python has no _json.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

try:
    import _json
except ImportError:  # a Python without json's speedups: json's own functions
    _json = None  # type: ignore[assignment]

_WHITESPACE = " \t\n\r"  # JSON's, as json skips it around a document


class _Rules:
    """json.JSONDecoder's defaults, as its C scanner reads them."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"),
                      "NaN": float("nan")}.__getitem__


_scan: Callable[[str, int], tuple[Any, int]] | None = \
    None if _json is None else _json.make_scanner(_Rules())  # type: ignore[arg-type]


def loads(text: str | bytes | bytearray) -> Any:
    """json.loads(TEXT): the value, or ValueError (json.JSONDecodeError, or
    UnicodeDecodeError) saying why not (TypeError if TEXT is no text)."""
    if _scan is not None and isinstance(text, (str, bytes, bytearray)):
        try:
            document = text if isinstance(text, str) else text.decode("utf-8")
            start = len(document) - len(document.lstrip(_WHITESPACE))
            value, end = _scan(document, start)
            if end == len(document) or not document[end:].strip(_WHITESPACE):
                return value
        except (StopIteration, ValueError, SystemError):
            # json tells why, in its words (or reads UTF-16, as it may). The scanner words
            # an error with json.decoder's class only once json is loaded; before, its
            # error is a SystemError (returned NULL without setting an exception).
            pass
    import json

    return json.loads(text)


def raw_decode(text: str, index: int) -> tuple[Any, int]:
    """The value whose text starts at INDEX of TEXT, and where it ends (as
    json.JSONDecoder().raw_decode); ValueError if none does."""
    if _scan is not None:
        try:
            return _scan(text, index)
        except (StopIteration, SystemError):  # json words it (see loads)
            pass
    import json

    value: tuple[Any, int] = json.JSONDecoder().raw_decode(text, index)
    return value


def _unencodable(value: object) -> object:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def encoder(*, ascii: bool = True, compact: bool = False) -> Callable[[Any], str]:
    """json.dumps with ensure_ascii=ASCII, and separators=(",", ":") if COMPACT, made
    once for many values. Values are plain data, never circular (no check is made)."""
    items, keys = (",", ":") if compact else (", ", ": ")
    if _json is None:
        import json

        return json.JSONEncoder(ensure_ascii=ascii, check_circular=False,
                                separators=(items, keys)).encode
    escape = _json.encode_basestring_ascii if ascii else _json.encode_basestring
    encode = _json.make_encoder(None, _unencodable, escape, None, keys, items, False,
                                False, True)

    def text(value: Any) -> str:
        return "".join(encode(value, 0))
    return text


_PLAIN = encoder()
_PLAIN_TEXT = encoder(ascii=False)


def dumps(value: Any, *, ascii: bool = True) -> str:
    """json.dumps(VALUE, ensure_ascii=ASCII)."""
    return _PLAIN(value) if ascii else _PLAIN_TEXT(value)


def pretty(value: Any) -> str:
    """VALUE indented by two, its text as it is (json's indenting encoder is pure
    Python: for one object, not a thousand)."""
    import json

    return json.dumps(value, ensure_ascii=False, indent=2)


def item(value: Any) -> str:
    """dumps(VALUE, ascii=False) for the many items of a listing: first encoded to ASCII,
    a fifth faster; where that wrote no \\u escape, the text is the same as the other's,
    and where it did, VALUE is encoded again, keeping its non-ASCII text."""
    text = _PLAIN(value)
    return text if "\\u" not in text else _PLAIN_TEXT(value)



def test_a_cursor_is_told_from_what_journalctl_would_refuse() -> None:
    import re

    from orch.journal_entries import CURSOR_PATTERN

    def is_cursor(text: str) -> bool:
        return re.fullmatch(CURSOR_PATTERN, text) is not None

    real = ("s=bac37397919f4bb0a5f08462c821f339;i=9e4f6;b=a0b3741585714d38a8c66734a39ea473;"
            "m=6dd806d24;t=66205eb4aee09;x=835c6636574c30b0")
    assert is_cursor(real)
    for garbage in ("", "garbage", "s=zz", "s=1;q=2", "s=1;", "s", "=1", real + ";"):
        assert not is_cursor(garbage), garbage

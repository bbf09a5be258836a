"""Text that devices send, made safe to put in a log line."""

from __future__ import annotations

_NAMED = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escaped(text: str) -> str:
    """`text` on one line with nothing a terminal acts on: every character Python does not
    call printable (control characters such as newline and ESC, line and paragraph
    separators, bidirectional overrides, lone surrogates) becomes an escape like \\n or
    \\x1b, as in a Python literal, and a backslash becomes \\\\ so an escape in the log
    always stands for the character it names.
    """
    if text.isprintable() and "\\" not in text:
        return text  # nearly always: one C-speed scan
    return "".join(_escape(char) for char in text)


def _escape(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    if char.isprintable():
        return char
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"

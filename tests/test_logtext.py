"""Device text in log lines: one line, nothing a terminal acts on."""

from __future__ import annotations

import pytest

from passes.logtext import escaped


@pytest.mark.parametrize(
    ("text", "logged"),
    [
        ("GET", "GET"),
        ("Ünïcödé 🎟 text", "Ünïcödé 🎟 text"),
        ("a\nb\r\tc", "a\\nb\\r\\tc"),
        ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
        ("nul\x00 del\x7f next-line\x85", "nul\\x00 del\\x7f next-line\\x85"),
        ("line\u2028paragraph\u2029", "line\\u2028paragraph\\u2029"),
        ("\u202eright-to-left override", "\\u202eright-to-left override"),
        ("lone \ud800 surrogate", "lone \\ud800 surrogate"),
        ("tag \U000e0041", "tag \\U000e0041"),
        # A backslash is doubled: "\n" in the log is always a newline that was escaped.
        ("C:\\new", "C:\\\\new"),
    ],
)
def test_escaped_keeps_device_text_on_one_printable_line(text: str, logged: str) -> None:
    assert escaped(text) == logged
    assert escaped(text).isprintable()

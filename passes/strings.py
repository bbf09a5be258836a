"""Reading `pass.strings`, Apple's "strings file" format for localized text.

The format is the old-style property-list dictionary body: `"key" = "value";` entries with C and
C++ comments, backslash escapes (including `\\U` and `\\u` with four hex digits, which name
UTF-16 units), and unquoted words made of letters, digits and `_$+/:.-`. Apple's tools write it
as UTF-16 with a byte-order mark; Wallet also reads UTF-8. Apple's loader accepts a property-list
dictionary (XML or binary) in a `.strings` file too, so those are read as well.
"""

from __future__ import annotations

import codecs
import plistlib
from collections.abc import Callable

# Characters allowed in an unquoted word of an old-style property list.
_WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_$+/:.-")
_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    '"': '"',
    "'": "'",
    "\\": "\\",
}


class StringsSyntaxError(ValueError):
    """A malformed strings file; `line` is 1-based."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.reason = message


def parse_strings(data: bytes) -> dict[str, str]:
    """The entries of a strings file; StringsSyntaxError (a ValueError) names the bad line."""
    if data.startswith((b"bplist00", b"<?xml", b"\xef\xbb\xbf<?xml")):
        return _parse_plist(data)
    text = _decode(data)
    return _Parser(text).parse()


def _parse_plist(data: bytes) -> dict[str, str]:
    try:
        loaded = plistlib.loads(data)
    except Exception as exc:  # plistlib raises several unrelated types for bad input
        raise StringsSyntaxError(1, f"unreadable property list: {exc}") from None
    if not isinstance(loaded, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in loaded.items()
    ):
        raise StringsSyntaxError(1, "the property list is not a dictionary of strings")
    return loaded


def _decode(data: bytes) -> str:
    if data.startswith(codecs.BOM_UTF8):
        encoding, body = "utf-8", data[3:]
    elif data.startswith(codecs.BOM_UTF16_LE):
        encoding, body = "utf-16-le", data[2:]
    elif data.startswith(codecs.BOM_UTF16_BE):
        encoding, body = "utf-16-be", data[2:]
    elif len(data) >= 2 and data[0] == 0 and data[1] != 0:
        # UTF-16 without a byte-order mark: the first character is ASCII, so one byte is 0.
        encoding, body = "utf-16-be", data
    elif len(data) >= 2 and data[0] != 0 and data[1] == 0:
        encoding, body = "utf-16-le", data
    else:
        encoding, body = "utf-8", data
    try:
        return body.decode(encoding)
    except UnicodeDecodeError as exc:
        unit = 1 if encoding == "utf-8" else 2
        newline = "\n".encode(encoding)
        # Count newlines in whole code units before the bad byte.
        before = body[: exc.start - exc.start % unit]
        line = sum(
            1 for i in range(0, len(before) - unit + 1, unit) if before[i : i + unit] == newline
        )
        raise StringsSyntaxError(line + 1, f"the file is not valid {encoding.upper()}") from None


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def parse(self) -> dict[str, str]:
        entries: dict[str, str] = {}
        self._skip_blank()
        while self.pos < len(self.text):
            key = self._string("a key")
            self._skip_blank()
            if self._peek() == ";":
                # `"key";` is shorthand for `"key" = "key";`.
                value = key
            else:
                self._expect("=", f"'=' after the key {key!r}")
                self._skip_blank()
                value = self._string(f"a value for the key {key!r}")
                self._skip_blank()
            self._expect(";", f"';' after the entry for {key!r}")
            # A repeated key replaces the earlier one, as in a dictionary.
            entries[key] = value
            self._skip_blank()
        return entries

    def _error(self, message: str, pos: int | None = None) -> StringsSyntaxError:
        at = self.pos if pos is None else pos
        return StringsSyntaxError(self.text.count("\n", 0, at) + 1, message)

    def _peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def _expect(self, char: str, what: str) -> None:
        if self._peek() != char:
            found = repr(self._peek()) if self._peek() else "the end of the file"
            raise self._error(f"expected {what}, found {found}")
        self.pos += 1

    def _skip_blank(self) -> None:
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char.isspace() or char == "\ufeff":
                self.pos += 1
            elif text.startswith("/*", self.pos):
                end = text.find("*/", self.pos + 2)
                if end < 0:
                    raise self._error("a /* comment is never closed")
                self.pos = end + 2
            elif text.startswith("//", self.pos):
                end = text.find("\n", self.pos)
                self.pos = len(text) if end < 0 else end + 1
            else:
                return

    def _string(self, what: str) -> str:
        char = self._peek()
        if char == '"':
            return self._quoted()
        if char in _WORD_CHARS:
            start = self.pos
            while self._peek() in _WORD_CHARS:
                self.pos += 1
            return self.text[start : self.pos]
        found = repr(char) if char else "the end of the file"
        raise self._error(f"expected {what} in double quotes, found {found}")

    def _quoted(self) -> str:
        start = self.pos
        self.pos += 1
        units: list[str] = []
        text = self.text
        while True:
            if self.pos >= len(text):
                raise self._error("a quoted string is never closed", start)
            char = text[self.pos]
            if char == '"':
                self.pos += 1
                return _join_surrogates(units, lambda: self._error("unpaired surrogate", start))
            if char != "\\":
                units.append(char)
                self.pos += 1
                continue
            self.pos += 1
            if self.pos >= len(text):
                raise self._error("a quoted string ends in a lone backslash", start)
            escape = text[self.pos]
            if escape in "Uu":
                digits = text[self.pos + 1 : self.pos + 5]
                if len(digits) != 4 or any(d not in "0123456789abcdefABCDEF" for d in digits):
                    raise self._error(f"\\{escape} must be followed by four hex digits")
                units.append(chr(int(digits, 16)))
                self.pos += 5
            elif escape in "01234567":
                end = self.pos
                while end < self.pos + 3 and end < len(text) and text[end] in "01234567":
                    end += 1
                # Octal escapes name NeXTSTEP-encoded bytes; below 128 that is ASCII, which is
                # all a hand-written file uses them for.
                units.append(chr(int(text[self.pos : end], 8)))
                self.pos = end
            else:
                # Apple's parser keeps the character of an unknown escape (`\q` is `q`).
                units.append(_SIMPLE_ESCAPES.get(escape, escape))
                self.pos += 1


def _join_surrogates(units: list[str], error: Callable[[], StringsSyntaxError]) -> str:
    """\\U escapes name UTF-16 units, so an emoji arrives as two surrogates to combine."""
    out = []
    i = 0
    while i < len(units):
        code = ord(units[i])
        low = ord(units[i + 1]) if i + 1 < len(units) else 0
        if 0xD800 <= code <= 0xDBFF and 0xDC00 <= low <= 0xDFFF:
            out.append(chr(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)))
            i += 2
            continue
        if 0xD800 <= code <= 0xDFFF:
            raise error()
        out.append(units[i])
        i += 1
    return "".join(out)

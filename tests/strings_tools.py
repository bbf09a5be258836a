"""Writing `pass.strings` files for tests (the service only reads them: passes/strings.py)."""

from __future__ import annotations

from collections.abc import Mapping

_ENCODE_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def encode_strings(mapping: Mapping[str, str]) -> bytes:
    """A UTF-8 `pass.strings` with one `"key" = "value";` line per entry, in mapping order."""
    lines = []
    for key, value in mapping.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"pass.strings keys and values must be strings, not {key!r}")
        lines.append(f'"{_escape(key)}" = "{_escape(value)}";\n')
    return "".join(lines).encode("utf-8")


def _escape(text: str) -> str:
    out = []
    for char in text:
        code = ord(char)
        if char in _ENCODE_ESCAPES:
            out.append(_ENCODE_ESCAPES[char])
        elif code < 0x20 or code == 0x7F:
            # Other control characters would survive as raw bytes, but editors and diff tools
            # mangle them; the \U escape keeps the file plain text.
            out.append(f"\\U{code:04X}")
        elif 0xD800 <= code <= 0xDFFF:
            raise ValueError(f"cannot encode an unpaired surrogate U+{code:04X}")
        else:
            out.append(char)
    return "".join(out)

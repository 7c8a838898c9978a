"""YAML for `--output yaml`: a small emitter of JSON-like values (dicts, lists, strings,
numbers, booleans, None), so the client does not depend on PyYAML.

A string that could read as anything but itself (a number, `true`, `null`, one holding
`: ` or `#`, leading or trailing spaces, control characters) is written JSON-quoted:
a JSON string is a valid YAML double-quoted scalar.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import msgspec

_PLAIN = re.compile(r"[A-Za-z_/][A-Za-z0-9 _./@+-]*")
_RESERVED = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~", ".inf", ".nan"}


def dumps(value: Any) -> str:
    """The value as a YAML document (ending with a newline)."""
    return "\n".join(_lines(msgspec.to_builtins(value), 0)) + "\n"


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        # YAML 1.1 readers (PyYAML) take 1e-05 for a string: they want 1.0e-05.
        text = repr(value)
        return text.replace("e", ".0e") if "e" in text and "." not in text else text
    text = str(value)
    if _PLAIN.fullmatch(text) and text.lower() not in _RESERVED and not text.endswith(" "):
        return text
    return _quoted(text)


def _quoted(text: str) -> str:
    """Double-quoted: JSON's escapes, and YAML's own for what it may not hold raw
    (JSON's surrogate pairs for characters past U+FFFF would read as two characters)."""
    quoted = json.dumps(text, ensure_ascii=False)
    return "".join(c if c.isprintable() else _escape(c) for c in quoted)


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _lines(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    if isinstance(value, dict):
        if not value:
            return [pad + "{}"]
        out: list[str] = []
        for key, item in value.items():
            head = f"{pad}{_scalar(str(key))}:"
            if isinstance(item, dict | list) and item:
                out.append(head)
                out.extend(_lines(item, indent + 2))
            else:
                out.append(f"{head} {_lines(item, 0)[0]}")
        return out
    if isinstance(value, list):
        if not value:
            return [pad + "[]"]
        out = []
        for item in value:
            inner = _lines(item, indent + 2)
            # The first line of the item goes after the dash, the rest stay indented.
            out.append(f"{pad}- {inner[0].lstrip()}")
            out.extend(inner[1:])
        return out
    return [pad + _scalar(value)]

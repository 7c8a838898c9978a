"""What Sluice shows operators: log lines that cannot be forged, URLs without passwords.

Anything logged may carry input from outside (worker ids, function names, error
messages). A control character in it could end the line and forge the next record,
drive the terminal (ANSI escapes), or, as a Unicode bidi control, show text in another
order than it was written. `SafeFormatter` escapes all of them, and masks the secrets it
is given wherever they turn up, third-party tracebacks included.

The layout of a record: its first line (time, level, logger, message) holds no line
break: one in the message is shown as `\\x0a`. A traceback or stack that follows keeps its
line breaks, to stay readable, and every line of it is indented, so that a line break
inside an exception's message cannot start a line that looks like a record. Backslashes
are not escaped (paths stay readable): a literal `\\x1b` in a message is only text.
"""

from __future__ import annotations

import logging
import re
import textwrap
import urllib.parse
from collections.abc import Iterable

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
MASK = "***"
PASSWORD_PARAMETERS = frozenset({"password", "sslpassword"})  # libpq URLs may carry these

_CONTROLS = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]  # C0, DEL, C1
_BIDI = [0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_SEPARATORS = [0x2028, 0x2029]  # line and paragraph separators end lines in some viewers


def _escaped(code: int) -> str:
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


_ONE_LINE = str.maketrans({c: _escaped(c) for c in [*_CONTROLS, *_BIDI, *_SEPARATORS]})
_BLOCK = str.maketrans({c: _escaped(c) for c in [*_CONTROLS, *_BIDI, *_SEPARATORS] if c != 0x0A})


def escape(text: str, *, keep_newlines: bool = False) -> str:
    """`text` with every control character shown as an escape (`\\x00`, `\\u202e`)."""
    return text.translate(_BLOCK if keep_newlines else _ONE_LINE)


class SafeFormatter(logging.Formatter):
    """The formatter of every sluice process (server, dev, worker); see the module."""

    def __init__(
        self, fmt: str = FORMAT, datefmt: str | None = None, *, secrets: Iterable[str] = ()
    ) -> None:
        super().__init__(fmt, datefmt)
        # Longest first, so a secret containing another is masked whole.
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        line = escape(self._mask(self.formatMessage(record)))
        # Formatted here rather than through the cached `record.exc_text`: another
        # handler's formatter may have cached it raw.
        parts = [
            self.formatException(record.exc_info) if record.exc_info else record.exc_text,
            self.formatStack(record.stack_info) if record.stack_info else None,
        ]
        block = "\n".join(p.rstrip("\n") for p in parts if p)
        if not block:
            return line
        return line + "\n" + textwrap.indent(escape(self._mask(block), keep_newlines=True), "  ")

    def _mask(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text


# RFC 3986, appendix B: scheme, "//" authority, path, "?" query, "#" fragment. It splits
# any string, and joining the groups gives the string back unchanged.
_URL = re.compile(r"^([^:/?#]+:)?(//[^/?#]*)?([^?#]*)(\?[^#]*)?(#.*)?$", re.DOTALL)


def _url_parts(url: str) -> list[str]:
    match = _URL.match(url)
    assert match is not None  # every group is optional
    return [g or "" for g in match.groups()]


def _parameters(query: str) -> list[tuple[str, str, str]]:
    return [p.partition("=") for p in query.removeprefix("?").split("&")] if query else []


def redacted_url(url: str) -> str:
    """`url` (an HTTP URL or a database URL) with its password, in the user info or in a
    `password=` parameter, replaced by `***`: the form to show in logs and errors."""
    scheme, authority, path, query, fragment = _url_parts(url)
    userinfo, at, hosts = authority.rpartition("@")
    if at and ":" in userinfo:
        authority = f"{userinfo.partition(':')[0]}:{MASK}@{hosts}"
    if query:
        query = "?" + "&".join(
            f"{name}={MASK}" if name.lower() in PASSWORD_PARAMETERS else name + eq + value
            for name, eq, value in _parameters(query)
        )
    return scheme + authority + path + query + fragment


def url_secrets(url: str) -> list[str]:
    """The passwords in `url`, as written and decoded, for `SafeFormatter` to mask."""
    _, authority, _, query, _ = _url_parts(url)
    userinfo, at, _ = authority.rpartition("@")
    written = [userinfo.partition(":")[2]] if at and ":" in userinfo else []
    written += [v for name, _, v in _parameters(query) if name.lower() in PASSWORD_PARAMETERS]
    found = [*written, *(urllib.parse.unquote_plus(s) for s in written)]
    return [s for s in dict.fromkeys(found) if s]

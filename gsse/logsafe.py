"""Client data made safe for a log line: control characters escaped.

A request line or header may carry CR, LF or ESC; written to a log as they
are, they start a forged log line or drive the operator's terminal. Every
log line that carries client data passes it through :func:`escape` (the
access log, the refused-request lines).
"""

from __future__ import annotations

import re

__all__ = ["escape"]

#: C0 controls, DEL, C1 controls, the backslash (so an escape cannot be
#: forged either), the double quote (the access log quotes the request
#: line; ``/" 200 1 "x`` would forge its fields, so nginx escapes it too)
#: and Unicode's own line and paragraph separators.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\\\"\u2028\u2029]")
#: Longest client text a log line carries, after escaping.
MAX_LOGGED = 512


def _escape_one(match: re.Match[str]) -> str:
    char = match.group()
    if char == "\\":
        return "\\\\"
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape(data: str | bytes, limit: int = MAX_LOGGED) -> str:
    """``data`` with control characters as ``\\xNN``, cut to ``limit`` chars.

    Bytes are read as latin-1, as HTTP/1.1 reads a request; a cut text ends
    in ``...``.
    """
    text = data.decode("latin-1") if isinstance(data, bytes) else data
    cut = len(text) > limit
    if cut:
        text = text[:limit]
    text = _UNSAFE.sub(_escape_one, text)
    return text + "..." if cut else text

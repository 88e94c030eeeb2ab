"""The access log: pywsgi's line format, and a stream's line when it ends.

``CLIENT - - [TIME] "REQUEST LINE" STATUS BYTES SECONDS``, as gevent's
pywsgi writes it (``BYTES`` counts everything sent, head included), the
request line escaped (:func:`gsse.logsafe.escape`). A stream is logged
when it ends, with its real length and duration (as gunicorn does), and
why it ended.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

from ..logsafe import escape
from ..streams import Stream

__all__ = ["access_logger", "access_line", "log_stream_end"]

access_logger = logging.getLogger("gsse.access")


def access_line(
    client: str, requestline: str, status: str, length: int | None, started: float
) -> str:
    """One access line; without its ``BYTES SECONDS`` when ``length`` is ``None``."""
    now = datetime.now().replace(microsecond=0)
    code = status.split(" ", 1)[0] if status else "000"
    text = f'{client} - - [{now}] "{escape(requestline)}" {code}'
    if length is None:
        return text
    return f"{text} {length or '-'} {time.time() - started:.6f}"


class _Writer:
    """A ``write()`` that logs to the access logger."""

    @staticmethod
    def write(line: str) -> None:
        access_logger.info(line.rstrip("\n"))


ACCESS_WRITER = _Writer()


def log_stream_end(
    stream: Stream, log: Any, head: str, head_bytes: int, started: float
) -> None:
    """Write a stream's access line once it ends: bytes, seconds, reason."""

    def write(stream: Stream) -> None:
        seconds = time.time() - started
        sent = head_bytes + stream.written
        log.write(f"{head} {sent} {seconds:.6f} ({stream.close_text})\n")

    stream.on_close(write)

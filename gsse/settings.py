"""Per-stream knobs and where they come from.

Settings are laid in layers, one mechanism for every host: the host (the
gsse server's ``--ping``) sets the base, ``SSEMiddleware(...)`` and
``App(...)`` lay their values over it for the requests that pass through
them (see :class:`gsse.host.HostView`), and ``start_sse(ping=...)`` /
``gsse.stream(ping=...)`` have the last word. ``None`` means "not set here".
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import fields
from typing import Any

DEFAULT_PING = 15.0
DEFAULT_SEND_TIMEOUT = 30.0
DEFAULT_BUFFER_SIZE = 64 * 1024


def check_seconds(name: str, value: Any) -> float | None:
    """Validate a duration option: ``None`` or a number of seconds >= 0."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, not {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0 seconds (0 turns it off), got {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """How one stream behaves; ``None`` fields fall back to the level below.

    :param ping: seconds of idleness before a keep-alive comment; ``0`` = off.
    :param send_timeout: seconds a stream's buffer may stay full before the
        stream is closed (the client stopped reading).
    :param buffer_size: bytes a stream may hold unsent before writers wait.
    """

    ping: float | None = None
    send_timeout: float | None = None
    buffer_size: int | None = None

    def __post_init__(self) -> None:
        check_seconds("ping", self.ping)
        check_seconds("send_timeout", self.send_timeout)
        size = self.buffer_size
        if size is not None and (
            isinstance(size, bool) or not isinstance(size, int) or size < 1
        ):
            raise ValueError(
                f"buffer_size must be a positive int of bytes, got {size!r}"
            )

    def over(self, base: StreamSettings | None) -> StreamSettings:
        """These settings, with ``base`` filling every field left ``None``."""
        if base is None:
            return self
        # Every request of an App passes here: no new object when nothing
        # is laid over (the common case), and no dataclass introspection.
        mine = [getattr(self, name) for name in _FIELD_NAMES]
        if all(value is None for value in mine):
            return base
        return StreamSettings(
            *(
                value if value is not None else getattr(base, name)
                for name, value in zip(_FIELD_NAMES, mine, strict=True)
            )
        )

    def resolved(self) -> ResolvedSettings:
        """Fill what is still unset with the documented defaults."""
        return ResolvedSettings(
            ping=DEFAULT_PING if self.ping is None else self.ping,
            send_timeout=(
                DEFAULT_SEND_TIMEOUT if self.send_timeout is None else self.send_timeout
            ),
            buffer_size=(
                DEFAULT_BUFFER_SIZE if self.buffer_size is None else self.buffer_size
            ),
        )


#: Settings with nothing set (they are immutable: one serves everyone).
UNSET = StreamSettings()
#: The fields of :class:`StreamSettings`, in order.
_FIELD_NAMES = tuple(f.name for f in fields(StreamSettings))


@dataclass(frozen=True, slots=True)
class ResolvedSettings:
    """:class:`StreamSettings` with every field decided."""

    ping: float
    send_timeout: float
    buffer_size: int

"""What an option is: its kind, how its text is read, how its value is checked.

One :class:`Option` per setting, declared once in :mod:`gsse.config`
(``OPTIONS``). The ``gsse run`` parser, :class:`gsse.config.Config`,
:func:`gsse.run` and the checks of :class:`gsse.Server` and
:class:`gsse.SSEMiddleware` are derived from those records, so a default,
a flag or an environment variable is written in one place only.

A value from the command line or a ``GSSE_*`` variable is read by
:meth:`Option.parse` (``ValueError`` saying what to type); a value given in
Python is checked by :meth:`Option.check` (``TypeError`` or ``ValueError``
showing the value). Unknown keyword arguments are a ``TypeError`` with a
"did you mean" (:func:`reject_unknown`).
"""

from __future__ import annotations

import difflib
import socket
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from typing import Literal

from .binding import check_host

#: The prefix of every option's environment variable (``GSSE_PORT``).
ENV_PREFIX = "GSSE_"

#: What an option's value is; decides how its text is read and its value checked.
Kind = Literal[
    "int", "port", "seconds", "choice", "text", "switch", "host", "bind", "socket"
]
#: Where an option applies: ``server`` is a keyword of :class:`gsse.Server`
#: and :func:`gsse.run` (and a flag, if it has one); ``run`` is a keyword of
#: :func:`gsse.run` and a flag; ``cli`` is a flag of ``gsse run`` only.
Scope = Literal["server", "run", "cli"]

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


@dataclass(frozen=True)
class Option:
    """One setting: its name, default, flag, environment variable and help.

    :param name: the keyword argument, and the :class:`~gsse.config.Config`
        field; the flag is ``--`` and the name with ``-`` for ``_``.
    :param default: the value when nothing sets it (``None``: the option is
        off, or the level below decides, as the help says).
    :param help: one sentence for ``gsse run --help``, with the default.
    :param kind: what the value is (see :data:`Kind`).
    :param scope: where it applies (see :data:`Scope`).
    :param minimum: the least ``int`` accepted.
    :param nullable: ``None`` is a value a caller may pass.
    :param above_zero: a duration that must be more than 0 seconds.
    :param zero_is_none: on the command line ``0`` means ``None`` (no limit).
    :param choices: the accepted strings of a ``choice``.
    :param cli: ``False`` when the option has no flag; ``no_cli`` says why.
    :param short: a one-letter flag as well (``-w``).
    :param metavar: the placeholder in ``--help``.
    :param cli_unset: the parser leaves it ``None`` when neither the command
        line nor the environment sets it (its default depends on others).
    :param not_in_middleware: why :class:`gsse.SSEMiddleware` cannot take
        this server option (``None``: it takes it under the same name).
    """

    name: str
    default: Any
    help: str
    kind: Kind = "int"
    scope: Scope = "server"
    minimum: int = 1
    nullable: bool = False
    above_zero: bool = False
    zero_is_none: bool = False
    choices: tuple[str, ...] = ()
    cli: bool = True
    no_cli: str = ""
    short: str | None = None
    metavar: str | None = None
    cli_unset: bool = False
    not_in_middleware: str | None = None

    @property
    def flag(self) -> str | None:
        """The long flag, ``--send-timeout``; ``None`` when there is none."""
        return "--" + self.name.replace("_", "-") if self.cli else None

    @property
    def env(self) -> str | None:
        """The environment variable, ``GSSE_SEND_TIMEOUT``; ``None`` without a flag."""
        return ENV_PREFIX + self.name.upper() if self.cli else None

    def parse(self, text: str) -> Any:
        """The value of ``text`` from the command line or the environment.

        :raises ValueError: says what to type instead.
        """
        kind = self.kind
        if kind in ("int", "port"):
            try:
                number = int(text)
            except ValueError:
                raise ValueError(f"expected a whole number, got {text!r}") from None
            minimum = 0 if kind == "port" else self.minimum
            if number < minimum:
                raise ValueError(f"must be at least {minimum}, got {number}")
            if kind == "port" and number > 65535:
                raise ValueError(f"a port is 0-65535, got {number}")
            return None if self.zero_is_none and number == 0 else number
        if kind == "seconds":
            try:
                seconds = float(text)
            except ValueError:
                raise ValueError(
                    f"expected a number of seconds, got {text!r}"
                ) from None
            if not seconds >= 0 or seconds == float("inf"):
                raise ValueError(f"must be >= 0 seconds, got {text!r}")
            return None if self.zero_is_none and seconds == 0 else seconds
        if kind == "choice":
            if text.lower() not in self.choices:
                raise ValueError(f"choose from {', '.join(self.choices)}; got {text!r}")
            return text.lower()
        if kind == "switch":
            value = text.strip().lower()
            if value in _TRUE + _FALSE:
                return value in _TRUE
            raise ValueError(f"expected 1/0, true/false, yes/no; got {text!r}")
        if kind == "host":
            return check_host(text)
        return text

    def check(self, value: Any, owner: str = "Server") -> None:
        """Refuse a value given in Python, saying what is wrong with it.

        :raises TypeError: a value of the wrong type.
        :raises ValueError: a value out of range.
        """
        name, kind = self.name, self.kind
        if value is None and self.nullable:
            return
        if kind in ("int", "port"):
            low, high = (0, 65535) if kind == "port" else (self.minimum, None)
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or value < low
                or (high is not None and value > high)
            ):
                span = (
                    f"from {low} to {high}"
                    if high is not None
                    else f"of at least {low}"
                )
                none = " (or None)" if self.nullable else ""
                raise ValueError(f"{name} must be an int {span}{none}, got {value!r}")
        elif kind == "seconds":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{name} must be a number of seconds, not {value!r}")
            if self.above_zero and not value > 0:
                none = " (or None)" if self.nullable else ""
                raise ValueError(
                    f"{name} must be a number of seconds > 0{none}, got {value!r}"
                )
            if not value >= 0:
                raise ValueError(
                    f"{name} must be >= 0 seconds (0 turns it off), got {value!r}"
                )
        elif kind == "choice":
            if value not in self.choices:
                raise ValueError(
                    f"{name} must be one of {', '.join(self.choices)}, got {value!r}"
                )
        elif kind in ("text", "host"):
            if not isinstance(value, str):
                raise TypeError(f"{name} must be a str, not {value!r}")
        elif kind == "switch":
            if not isinstance(value, bool):
                raise TypeError(f"{name} must be True or False, not {value!r}")
        elif kind == "socket" and not isinstance(value, socket.socket):
            raise TypeError(f"{owner}: {name} must be a socket, not {value!r}")

    def to_text(self, value: Any) -> str | None:
        """``value`` as this option's command-line text; ``None``: inexpressible."""
        if value is None:
            return "0" if self.zero_is_none else None
        return repr(value) if isinstance(value, float) else str(value)


def suggest(name: str, known: Iterable[str]) -> str:
    """`` (did you mean 'ping'?)`` for a near miss, else ``""``."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def reject_unknown(owner: str, given: Iterable[str], known: Iterable[str]) -> None:
    """Raise ``TypeError`` naming the first of ``given`` that is not ``known``."""
    known = list(known)
    for name in given:
        if name not in known:
            raise TypeError(
                f"{owner} got an unknown option {name!r}{suggest(name, known)}"
            )


def check_all(
    options: Iterable[Option], values: Mapping[str, Any], owner: str = "Server"
) -> None:
    """Check each of ``options`` found in ``values`` (see :meth:`Option.check`)."""
    for option in options:
        if option.name in values:
            option.check(values[option.name], owner)

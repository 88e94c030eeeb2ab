"""Where ``gsse run`` listens: ``--host``/``--port``, or ``-b`` addresses.

``-b``/``--bind`` takes gunicorn's forms: ``HOST:PORT``, ``[IPv6]:PORT``,
``HOST`` alone (port 8000) and ``unix:PATH`` for a Unix domain socket (the
usual way to sit behind nginx on the same machine). Hosts are checked
here, before anything binds, so that a typo such as ``--host
localhost:18030`` says that the host is wrong instead of failing later as
a port that cannot be used.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import stat
from collections.abc import Sequence
from dataclasses import dataclass

#: Port of a ``-b HOST`` that names none (gunicorn's default too).
DEFAULT_PORT = 8000
UNIX_PREFIX = "unix:"
#: A DNS name: labels of letters, digits and inner hyphens, dot-separated.
_HOSTNAME = re.compile(
    r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?"
)


@dataclass(frozen=True)
class Address:
    """One address to listen on: a TCP host and port, or a Unix socket path."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    path: str | None = None

    @property
    def is_unix(self) -> bool:
        return self.path is not None

    def __str__(self) -> str:
        """The ``-b`` form, which gunicorn's ``bind`` setting takes as well."""
        if self.path is not None:
            return UNIX_PREFIX + self.path
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def check_host(text: str) -> str:
    """``text`` as a host to listen on (IPv6 brackets removed).

    :raises ValueError: not an IP address or host name; says what to use.
    """
    host = text.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if ":" in host:
        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            pass
        else:
            return host
    elif _HOSTNAME.fullmatch(host):
        return host
    hint = "an IP address or host name, e.g. 127.0.0.1, 0.0.0.0, ::1 or localhost"
    name, colon, port = host.rpartition(":")
    if colon and port.isdigit() and name and "//" not in name:
        hint += f"; for a host and a port use --host {name} --port {port}"
        hint += f" or -b {text.strip()}"
    raise ValueError(f"invalid host {text!r}: use {hint}")


def _check_port(text: str, bind: str) -> int:
    # isascii: str.isdigit() is true of "²" and "٣" too, which int() refuses.
    if not (text.isascii() and text.isdigit()) or int(text) > 65535:
        raise ValueError(f"invalid port in {bind!r}: a port is a number 0-65535")
    return int(text)


def parse_bind(text: str) -> Address:
    """A ``-b`` value as an :class:`Address`.

    :raises ValueError: says which part is wrong and what the forms are.
    """
    forms = "use HOST:PORT, [IPv6]:PORT, HOST or unix:PATH"
    value = text.strip()
    if value.startswith(UNIX_PREFIX):
        path = value[len(UNIX_PREFIX) :]
        if path.startswith("//"):
            path = path[2:]  # unix://PATH, as gunicorn also accepts
        if not path or "\0" in path:
            raise ValueError(f"invalid address {text!r}: unix: needs a socket path")
        return Address(path=os.path.abspath(path))
    if not value:
        raise ValueError(f"invalid address {text!r}: {forms}")
    if value.startswith("["):
        host, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"invalid address {text!r}: {forms}")
        port = _check_port(rest[1:], text) if rest else DEFAULT_PORT
        return Address(check_host(host), port)
    if value.count(":") > 1:
        # An IPv6 address without brackets cannot have a port.
        return Address(check_host(value), DEFAULT_PORT)
    host, colon, port_text = value.partition(":")
    if colon and not host:
        raise ValueError(
            f"invalid address {text!r}: name the host, e.g. 127.0.0.1{value} or"
            f" 0.0.0.0{value} for every interface"
        )
    try:
        host = check_host(host)
    except ValueError as exc:
        raise ValueError(f"invalid address {text!r}: {forms} ({exc})") from None
    return Address(host, _check_port(port_text, text) if colon else DEFAULT_PORT)


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None  # a host name: where it resolves is not known here


def check_distinct(addresses: Sequence[Address]) -> None:
    """Each address once: a second listener on the same one can only fail.

    Port 0 (any free port) may repeat. A wildcard (``0.0.0.0``, ``::``)
    already covers every address of its family on its port.

    :raises ValueError: names the address given twice, or the two that overlap.
    """
    seen: list[Address] = []
    for address in addresses:
        for other in seen:
            if address.is_unix or other.is_unix:
                if address.path == other.path:
                    raise ValueError(
                        f"{address} is given twice: give each address once"
                    )
                continue
            if address.port != other.port or address.port == 0:
                continue
            if address.host == other.host:
                raise ValueError(f"{address} is given twice: give each address once")
            mine, theirs = _ip(address.host), _ip(other.host)
            if mine is None or theirs is None or mine.version != theirs.version:
                continue
            wild = mine if mine.is_unspecified else theirs
            if wild.is_unspecified:
                raise ValueError(
                    f"{other} and {address} overlap: {wild} already listens on"
                    f" every IPv{wild.version} address of this machine; give"
                    " one of them"
                )
        seen.append(address)


def _in_use(path: str) -> bool:
    """Whether a server accepts connections on the Unix socket ``path``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except OSError:
            return False
    return True


def unix_listener(path: str, backlog: int) -> socket.socket:
    """A listening Unix socket at ``path``; a stale socket file is replaced.

    A socket some server still listens on, and anything at ``path`` that is
    not a socket, are left alone (``OSError`` "Address already in use"), so
    neither a second ``gsse`` nor a typo takes over what is there.
    """
    try:
        if stat.S_ISSOCK(os.stat(path).st_mode) and not _in_use(path):
            os.unlink(path)
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock


def remove_unix_socket(path: str) -> None:
    """Remove the socket file ``gsse`` made (only if it is still a socket)."""
    try:
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.unlink(path)
    except OSError:
        pass

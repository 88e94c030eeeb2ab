"""Where a Redis broker's data lives, and what its keys are called.

Three shapes, one broker semantics (see docs/channels.md):

- ``redis://`` (``rediss://``, ``unix://``): one Redis.
- ``redis+sentinel://host:port,host:port/<service>[/db]``: a primary that
  Sentinel watches; a failover is survived as a Redis restart is.
- ``redis+cluster://host:port,host:port``: Redis Cluster; each channel's keys
  share one hash slot (``{...}`` hash tags), so channels spread across shards
  and no command ever names keys of two slots.

:class:`KeyNames` is the one place that names a channel's keys: every
per-channel key (the Stream, the publish token, the notify channel, and any
key a feature adds) goes through :meth:`KeyNames.key`, so that in a Cluster
all of them land in the channel's slot and one Lua script may touch them.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from urllib.parse import unquote
from urllib.parse import urlsplit

#: Schemes naming many hosts (the rest are ``redis.Redis.from_url`` URLs).
CLUSTER_SCHEME = "redis+cluster"
SENTINEL_SCHEME = "redis+sentinel"
DEFAULT_PORTS = {CLUSTER_SCHEME: 6379, SENTINEL_SCHEME: 26379}


def hash_tag(channel: str) -> str:
    """``{channel}``: Redis Cluster hashes only what is inside the braces.

    Redis takes the text between the first ``{`` and the next ``}``, so a
    channel containing ``}`` is tagged with a digest of its name instead
    (followed by the name itself, which keeps key names distinct).
    """
    if "}" not in channel:
        return "{" + channel + "}"
    digest = hashlib.sha1(channel.encode()).hexdigest()
    return "{~" + digest + "}" + channel


class KeyNames:
    """The Redis key names of one broker (``prefix``; hash tags in a Cluster).

    On one Redis the names are those gsse always used
    (``gsse:stream:<channel>``), so upgrading keeps every channel's history.
    """

    def __init__(self, prefix: str, *, hash_tags: bool) -> None:
        if hash_tags and ("{" in prefix or "}" in prefix):
            raise ValueError(
                f"a Redis Cluster key prefix must not contain '{{' or '}}': {prefix!r}"
            )
        self.prefix = prefix
        self.hash_tags = hash_tags

    def key(self, kind: str, channel: str) -> bytes:
        """The key of ``kind`` (``stream``, ...) for ``channel``: THE naming rule."""
        name = hash_tag(channel) if self.hash_tags else channel
        return f"{self.prefix}:{kind}:{name}".encode()

    def token(self, channel: str) -> bytes:
        """A fresh key that makes one publish idempotent (in the channel's slot)."""
        random = os.urandom(12).hex()
        if self.hash_tags:
            return self.key("published", channel) + f":{random}".encode()
        return f"{self.prefix}:published:{random}".encode()

    def notify(self, channel: str) -> bytes:
        """The pub/sub channel a publish to ``channel`` is announced on.

        One Redis: one ``<prefix>:notify`` for all. A Cluster: one sharded
        channel per channel, in its slot (see redis_cluster_reader.py).
        """
        if self.hash_tags:
            return self.key("notify", channel)
        return f"{self.prefix}:notify".encode()


@dataclass(frozen=True)
class Hosts:
    """What a ``redis+cluster://`` or ``redis+sentinel://`` URL names."""

    scheme: str
    nodes: list[tuple[str, int]]
    username: str | None
    password: str | None
    #: The path's parts: ``[service]`` or ``[service, db]`` for Sentinel.
    path: list[str]


def parse_hosts(url: str) -> Hosts:
    """Read ``scheme://[user:password@]host:port,host:port[/path]``.

    :raises ValueError: no host, a bad port, or a query (no option is read
        from these URLs' queries, so none is silently ignored).
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    netloc = parts.netloc
    userinfo, _, hostlist = netloc.rpartition("@")
    username = password = None
    if userinfo:
        user, has_password, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if has_password else None
    if parts.query or parts.fragment:
        raise ValueError(
            f"{scheme}:// URLs take no query or fragment; got {where_of(url)!r}"
        )
    nodes = []
    for item in hostlist.split(","):
        host, _, port = item.strip().rpartition(":") if ":" in item else (item, "", "")
        host = host.strip("[]") or "localhost"
        try:
            number = int(port) if port else DEFAULT_PORTS[scheme]
        except ValueError:
            raise ValueError(
                f"bad port {port!r} in {scheme}:// URL {where_of(url)!r}: write"
                " host:port,host:port"
            ) from None
        if not item.strip() or not 0 < number < 65536:
            raise ValueError(
                f"{scheme}:// URL {where_of(url)!r} needs host:port[,host:port...]"
            )
        nodes.append((host, number))
    path = [unquote(p) for p in parts.path.split("/") if p]
    return Hosts(scheme, nodes, username, password, path)


def where_of(url: str) -> str:
    """The URL without credentials or query, for log lines and errors."""
    parts = urlsplit(url)
    hosts = parts.netloc.rpartition("@")[2]
    if parts.scheme.lower() not in DEFAULT_PORTS:
        try:
            port = f":{parts.port}" if parts.port else ""
        except ValueError:
            port = ""
        hosts = (parts.hostname or "localhost") + port
    return f"{parts.scheme}://{hosts}{parts.path}"

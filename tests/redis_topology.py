"""A real Redis Cluster and a real Sentinel setup for tests, on free ports.

Both are made of ``redis-server`` processes (see tests/redis_server.py) and
torn down by their PIDs. Without persistence, as there: a killed node loses
its data, and only what reached a replica survives a failover.

- :class:`ClusterServers`: ``primaries`` nodes started with
  ``--cluster-enabled yes`` (plus ``replicas`` per primary), joined by
  ``redis-cli --cluster create ... --cluster-yes``; each node's bus port is
  a free port of its own (``--cluster-port``), not ``port + 10000``.
- :class:`SentinelServers`: one primary, one replica and ``sentinels``
  ``redis-server --sentinel`` processes watching them as ``mymaster``.

Every wait is bounded; a setup that does not come up in time raises.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from tests.procs import free_port
from tests.procs import port_open
from tests.redis_server import RedisServer

#: Seconds a cluster or a failover may take on a loaded machine.
PATIENCE = 90.0
SERVICE = "mymaster"


def wait_for(check: Callable[[], bool], what: str, timeout: float = PATIENCE) -> None:
    """Poll ``check`` until it holds (errors count as not yet), or raise."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.1)


class Node(RedisServer):
    """A ``redis-server`` started with a config file and extra arguments."""

    def __init__(
        self, directory: Path, extra: list[str], config: Path | None = None
    ) -> None:
        self.extra = extra
        self.config = config
        self.paused = False
        super().__init__(directory)

    def start(self) -> None:
        """Start (again) on the same port; wait until it accepts connections."""
        log = open(self.directory / f"redis-{self.port}.log", "ab")  # noqa: SIM115
        args = [self.binary, *([str(self.config)] if self.config else [])]
        args += ["--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--dir", str(self.directory), *self.extra]
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 60
        while not port_open(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5, socket_connect_timeout=2)

    def pause(self) -> None:
        """SIGSTOP: the server neither answers nor reads its sockets."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a paused server cannot stop
        super().stop()


def replicated(primary: Node) -> None:
    """Wait until a replica has every write ``primary`` took so far."""
    with primary.client() as client:
        if client.execute_command("WAIT", 1, int(PATIENCE * 1000)) < 1:
            raise RuntimeError(f"no replica of port {primary.port} caught up")


def lose_next_writes(primary: Node, replica: Node) -> None:
    """Stop ``replica`` and cut its link: ``primary``'s next writes reach no one.

    (Pausing alone is not enough: what the primary sends still lands in the
    paused replica's socket buffer, and is applied once it resumes.)
    """
    replica.pause()
    with primary.client() as client:
        client.execute_command("CLIENT", "KILL", "TYPE", "replica")


def _cli() -> str:
    cli = shutil.which("redis-cli")
    if cli is None:
        why = "needs redis-cli (apt-get install redis-tools)"
        if os.environ.get("CI") == "true":  # CI installs it: never skip there
            pytest.fail(why)
        pytest.skip(why)
    return cli


class ClusterServers:
    """A Redis Cluster of ``primaries`` shards, each with ``replicas`` replicas."""

    def __init__(self, directory: Path, primaries: int = 3, replicas: int = 0) -> None:
        self.nodes: list[Node] = []
        try:
            for i in range(primaries * (1 + replicas)):
                home = directory / f"node{i}"
                home.mkdir(parents=True, exist_ok=True)
                extra = ["--cluster-enabled", "yes", "--cluster-port"]
                extra += [str(free_port()), "--cluster-node-timeout", "2000"]
                extra += ["--cluster-config-file", str(home / "nodes.conf")]
                self.nodes.append(Node(home, extra))
            addresses = [f"127.0.0.1:{n.port}" for n in self.nodes]
            create = [_cli(), "--cluster", "create", *addresses]
            create += ["--cluster-replicas", str(replicas), "--cluster-yes"]
            subprocess.run(create, check=True, capture_output=True, timeout=PATIENCE)
            for node in self.nodes:
                wait_for(lambda n=node: self.state_ok(n), "cluster_state:ok")
            if replicas:
                wait_for(self.replicas_in_sync, "replicas to sync")
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{n.port}" for n in self.nodes[:3])
        return f"redis+cluster://{hosts}"

    @staticmethod
    def state_ok(node: Node) -> bool:
        with node.client() as client:
            info = client.execute_command("CLUSTER", "INFO")
        text = info.decode() if isinstance(info, bytes) else str(info)
        return "cluster_state:ok" in text

    def alive(self) -> list[Node]:
        """The nodes running and not paused (those that answer)."""
        return [n for n in self.nodes if n.proc is not None and not n.paused]

    def role(self, node: Node) -> str:
        with node.client() as client:
            return str(client.info("replication")["role"])

    def replicas_in_sync(self) -> bool:
        for node in self.alive():
            if self.role(node) == "slave":
                with node.client() as client:
                    if client.info("replication")["master_link_status"] != "up":
                        return False
        return True

    def primary_of(self, key: str) -> Node:
        """The node serving ``key``'s slot now."""
        with self.alive()[0].client() as client:
            slot = client.execute_command("CLUSTER", "KEYSLOT", key)
            for start, end, primary, *_ in client.execute_command("CLUSTER", "SLOTS"):
                if start <= slot <= end:
                    port = int(primary[1])
                    return next(n for n in self.nodes if n.port == port)
        raise RuntimeError(f"no node serves {key!r}")

    def replica_of(self, primary: Node) -> Node:
        for node in self.alive():
            with node.client() as client:
                info = client.info("replication")
            if info["role"] == "slave" and int(info["master_port"]) == primary.port:
                return node
        raise RuntimeError(f"port {primary.port} has no replica")

    def failed_over(self, old: Node, key: str) -> bool:
        """``key``'s slot is served by another primary, and the cluster is ok."""
        if self.primary_of(key) is old:
            return False
        return all(self.state_ok(n) for n in self.alive())

    def move_slot(self, key: str, target: Node) -> None:
        """Reshard: move ``key``'s slot, with its keys, to ``target``."""
        source = self.primary_of(key)
        with source.client() as src, target.client() as dst:
            slot = src.execute_command("CLUSTER", "KEYSLOT", key)
            src_id = src.execute_command("CLUSTER", "MYID").decode()
            dst_id = dst.execute_command("CLUSTER", "MYID").decode()
            dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
            src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
            keys = src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1000)
            if keys:
                src.execute_command(
                    "MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys
                )
            for node in (target, source):
                with node.client() as client:
                    client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
        wait_for(lambda: self.primary_of(key) is target, "the slot to move")

    def flush(self) -> None:
        for node in self.alive():
            if self.role(node) == "master":
                with node.client() as client:
                    client.flushall()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


class SentinelServers:
    """One primary, one replica and ``sentinels`` Sentinels (``mymaster``)."""

    def __init__(self, directory: Path, sentinels: int = 3) -> None:
        self.directory = directory
        self.servers: list[Node] = []
        self.sentinels: list[Node] = []
        try:
            primary = Node(self._home("primary"), [])
            replica_args = ["--replicaof", "127.0.0.1", str(primary.port)]
            self.servers = [primary, Node(self._home("replica"), replica_args)]
            wait_for(self.replica_in_sync, "the replica to sync")
            quorum = sentinels // 2 + 1
            for i in range(sentinels):
                home = self._home(f"sentinel{i}")
                conf = home / "sentinel.conf"
                conf.write_text(
                    f"sentinel monitor {SERVICE} 127.0.0.1 {primary.port} {quorum}\n"
                    f"sentinel down-after-milliseconds {SERVICE} 1000\n"
                    f"sentinel failover-timeout {SERVICE} 10000\n"
                )
                self.sentinels.append(Node(home, ["--sentinel"], config=conf))
            wait_for(self.sentinels_agree, "the sentinels to see every node")
        except BaseException:
            self.stop()
            raise

    def _home(self, name: str) -> Path:
        home = self.directory / name
        home.mkdir(parents=True, exist_ok=True)
        return home

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{SERVICE}"

    def primary_port(self) -> int:
        with self.sentinels[0].client() as client:
            host, port = client.execute_command(
                "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE
            )
        return int(port)

    def primary(self) -> Node:
        port = self.primary_port()
        return next(s for s in self.servers if s.port == port)

    def replica(self) -> Node:
        port = self.primary_port()
        return next(s for s in self.servers if s.port != port)

    def replica_in_sync(self) -> bool:
        with self.servers[1].client() as client:
            return bool(client.info("replication")["master_link_status"] == "up")

    def sentinels_agree(self) -> bool:
        for sentinel in self.sentinels:
            with sentinel.client() as client:
                master = client.sentinel_master(SERVICE)
                if int(master["num-slaves"]) < 1:
                    return False
                if int(master["num-other-sentinels"]) < len(self.sentinels) - 1:
                    return False
        return True

    def stop(self) -> None:
        for node in [*self.sentinels, *self.servers]:
            node.stop()

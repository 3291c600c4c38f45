"""Every Redis stream, group and key name, declared once.

`{p}` in a stream name is a Redis Cluster hash tag: each partition lives whole on one shard, with the seq
marks of its runs (one Lua call touches a stream and its marks). The dead-letter stream has a tag of its own
(`{dlq}`): it sits whole on one shard too, whichever partition its letters came from; what moves between it
and a partition goes in ordered, non-transactional pipelines (never a MULTI across slots). The drain queue,
drain locks and drain metrics live on the queue broker (`EPOCHSTREAM_QUEUE_URL`), a standalone Redis.
A run always maps to the same partition (a stable hash, not Python's salted `hash`), so its events stay
ordered.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

INGEST_GROUP = "ingest"
DEFAULT_NAMESPACE = "epochstream"
PAYLOAD_FIELD = b"e"  # the one field of a stream entry: the encoded event
ATTEMPT_SEPARATOR = "#"  # between a run's mark and an attempt's start in a dedupe key


def partition_of(run_id: str, partitions: int) -> int:
    """The partition a run's events go to: stable across processes, hosts and Python versions."""
    return zlib.crc32(run_id.encode("utf-8")) % partitions


@dataclass(frozen=True)
class Keys:
    namespace: str = DEFAULT_NAMESPACE
    partitions: int = 8

    def stream(self, partition: int) -> str:
        return f"{self.namespace}:events:{{{partition}}}"

    def stream_for_run(self, run_id: str) -> str:
        return self.stream(partition_of(run_id, self.partitions))

    def all_streams(self) -> list[str]:
        return [self.stream(p) for p in range(self.partitions)]

    def run_seq(self, run_id: str) -> str:
        """The highest `seq` of a run already in its stream: producers skip anything at or below it, so a
        retried or replayed batch lands exactly once. Same hash tag as the run's stream (one Lua call)."""
        return f"{self.namespace}:seq:{{{partition_of(run_id, self.partitions)}}}:{run_id}"

    def attempt_seq(self, run_id: str, start: int) -> str:
        """The dedupe mark of a run's attempt whose first event has seq `start + 1` (`producer.attempts`):
        the run's mark, `#`, the start (`#` never occurs in a run id). Same hash tag as the run's stream."""
        return f"{self.run_seq(run_id)}{ATTEMPT_SEPARATOR}{start}"

    @staticmethod
    def run_seq_of(seq_key: str) -> str:
        """The run's mark for a record's dedupe key (records spooled by older producers carry the run's mark)."""
        return seq_key.split(ATTEMPT_SEPARATOR, 1)[0]

    @staticmethod
    def run_id_of(seq_key: str) -> str:
        """The run id in a dedupe key (`run_seq` or `attempt_seq`): run ids hold no `}`, so it follows the
        hash tag's `}:`."""
        return Keys.run_seq_of(seq_key).split("}:", 1)[-1]

    def rerouted(self, stream: str, seq_key: str) -> tuple[str, str]:
        """(stream, dedupe key) of a record routed by a process of this namespace with another partition
        count, as this one routes it (a spooled record is delivered where the deployment reads it)."""
        run_id = self.run_id_of(seq_key)
        home = self.stream_for_run(run_id)
        if home == stream or not seq_key.startswith(f"{self.namespace}:seq:{{"):
            return stream, seq_key
        _, _, start = seq_key.partition(ATTEMPT_SEPARATOR)
        return home, self.attempt_seq(run_id, int(start)) if start else self.run_seq(run_id)

    @property
    def config(self) -> str:
        """A hash: the deployment's partition count (and namespace), recorded by whoever used it first
        (`epochstream.agreement`)."""
        return f"{self.namespace}:config"

    @property
    def dlq(self) -> str:
        return f"{self.namespace}:{{dlq}}"

    @property
    def group(self) -> str:
        return INGEST_GROUP

    @property
    def drain_queue(self) -> str:
        """The RQ queue drain jobs go to."""
        return f"{self.namespace}-drain"

    def fence(self, partition: int) -> str:
        """A counter: every drain of this partition takes the next value as its fence token (the read model
        refuses commits from a token older than the newest it has seen)."""
        return f"{self.namespace}:fence:{{{partition}}}"

    def drain_lock(self, partition: int) -> str:
        """Held while a drain job for this partition is queued or running: never two at once."""
        return f"{self.namespace}:drain-lock:{{{partition}}}"

    def health(self, partition: int) -> str:
        """A hash, present while this partition's drain is held up by its infrastructure (disk full, read model
        locked): what, where, since when, how many attempts. `epochstream status` shows it."""
        return f"{self.namespace}:health:{{{partition}}}"

    def solo_attempts(self, partition: int) -> str:
        """A hash stream id -> drains begun on that entry alone (workers died on its batch again and again):
        the evidence that an entry kills whoever processes it, kept apart from its delivery count."""
        return f"{self.namespace}:solo:{{{partition}}}"

    @property
    def pause_wanted(self) -> str:
        """Set while `epochstream rebuild` waits to take every partition's lock: no new drain is queued
        meanwhile, or drains queueing their next turn as they end could keep a busy partition from it."""
        return f"{self.namespace}:pause-wanted"

    @property
    def compaction_due(self) -> str:
        """Set (with a TTL of the compaction period) by the scheduler that queued the period's compaction, so
        that of several schedulers only one queues it."""
        return f"{self.namespace}:compaction-due"

    @property
    def maintenance(self) -> str:
        """Held by a `compact`, `rebuild` or `migrate` of a deployment whose hosts share the log or the read
        model (`workers.maintenance_lock`): the data directory's flock only excludes one host's processes."""
        return f"{self.namespace}:maintenance"

    @property
    def drain_metrics(self) -> str:
        """A hash on the queue broker: drain batch durations as histogram counters (`workers.drain_metrics`)."""
        return f"{self.namespace}:drain-metrics"

    @property
    def stack_lock(self) -> str:
        return f"{self.namespace}:stack"

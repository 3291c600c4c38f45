"""Configuration agreement: every process of a deployment uses the partition count recorded in the broker.

A run's partition is `crc32(run_id) % partitions`; a producer and the workers that count partitions
differently strand events in streams nobody drains (or interleave one run over two streams). So the first
process to use a namespace on a broker (producer, worker or stack, whoever comes first) records its count
in the hash `Keys.config` with HSETNX; everyone after it compares. A process with another count refuses:
the producer keeps its events in its spool (and delivers them, re-routed, once its count matches), a
drain refuses to drain, `epochstream up` refuses to start. To change the count of a deployment for good:
drain everything, then delete the key (`redis-cli DEL <namespace>:config`).
"""

from __future__ import annotations

from typing import Any

from epochstream.errors import ConfigurationError
from schemas.keys import Keys

PARTITIONS_FIELD = "partitions"
NAMESPACE_FIELD = "namespace"


class PartitionMismatch(ConfigurationError):
    """This process counts partitions differently from the deployment recorded in the broker."""

    def __init__(self, namespace: str, recorded: int, ours: int):
        self.namespace, self.recorded, self.ours = namespace, recorded, ours
        super().__init__(
            f"partition count mismatch: the broker records {recorded} partitions for namespace {namespace!r}, "
            f"this process has EPOCHSTREAM_PARTITIONS={ours}; a run's events would go to partitions the others "
            f"do not read. Set EPOCHSTREAM_PARTITIONS={recorded} (or, to change the count for good, drain "
            f"everything and delete the key {Keys(namespace).config!r})")


def agree(client: Any, keys: Keys) -> int:
    """Record `keys.partitions` for this namespace if nobody has (one round trip), else check it against
    the recorded count. Returns the recorded count; raises `PartitionMismatch` when it differs. Broker
    errors (connection, timeout) propagate as they are: the caller's own handling applies."""
    pipe = client.pipeline(transaction=False)  # one key: also fine on a Redis Cluster
    pipe.hsetnx(keys.config, PARTITIONS_FIELD, keys.partitions)
    pipe.hsetnx(keys.config, NAMESPACE_FIELD, keys.namespace)
    pipe.hget(keys.config, PARTITIONS_FIELD)
    *_, raw = pipe.execute()
    recorded = int(raw)
    if recorded != keys.partitions:
        raise PartitionMismatch(keys.namespace, recorded, keys.partitions)
    return recorded

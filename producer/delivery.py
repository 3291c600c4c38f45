"""Putting records into the broker exactly once, and telling a broker that cannot take them now from a
record that can never be taken.

Each attempt's records go in one Lua call per chunk (`ADD_ONCE`): an XADD for every record whose `seq` is
above the attempt's high-water mark, then the attempt's mark moves up, and the run's mark (`Keys.run_seq`)
to the highest seq of all its attempts (see `producer.attempts`). A batch retried after a lost reply, or
replayed from the spool by this or another process, adds nothing twice, so every retry is safe. Marks
expire `SEQ_TTL_S` after an attempt's last delivery. The script is a `#!lua` script without flags: the
broker refuses it as a whole, before it writes anything, when it is out of memory or a replica.

Errors (`is_permanent`): only a reply that proves the records can never be accepted drops them —
`WRONGTYPE`, a key of ours holding another type, which no retry changes. Every other reply (`MOVED`,
`ASK`, `TRYAGAIN`, `CLUSTERDOWN`, `READONLY`, `OOM`, `LOADING`, `BUSY`, `NOPERM`, `NOSCRIPT`, `MASTERDOWN`,
an unknown one), every connection error or timeout, and a broker recording another partition count
(`PARTITIONS`, `epochstream.agreement`) keep them: the publisher spools and retries with
back-off. Whether a reply is permanent is decided by its error code, the first word of the reply (the
protocol's own classification, `epochstream.broker_errors.error_code`), never by its prose.

On a Redis Cluster (`redis+cluster://`) the client (`redis.cluster.RedisCluster`) follows `MOVED` (and
refreshes its slot map) and `ASK` itself, and waits out `TRYAGAIN`; what still fails (`CLUSTERDOWN`, a
master that does not answer, a slot no node serves) is kept like any transient error, and the publisher's
next attempt builds a fresh client, which reads the slot map anew. A batch's Lua calls go in one
non-transactional pipeline, each call's keys within one slot (the run's partition tag), each sent as
`EVAL` by name: `ClusterPipeline` has no `eval` method of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from epochstream.broker import connect
from epochstream.broker_errors import error_code
from producer.spool import Record
from schemas.keys import PAYLOAD_FIELD, Keys

SEQ_TTL_S = 7 * 24 * 3600
CHUNK = 500  # records per Lua call

# KEYS: stream, the attempt's mark, the run's mark (the same key for records of older producers).
# ARGV: ttl, payload field, then seq, payload pairs in seq order. Marks are stored as the seq's own text:
# a Lua number would be written back in floating-point notation. Returns {added, attempt mark before,
# run mark before}.
ADD_ONCE = """#!lua
local function mark(key)
  local raw = redis.call('GET', key)
  return tonumber(raw or '0') or 0, raw
end
local last = mark(KEYS[2])
local run, run_raw = mark(KEYS[3])
local before_attempt, before_run = last, run
local top = nil
local added = 0
for i = 3, #ARGV, 2 do
  local seq = tonumber(ARGV[i])
  if seq > last then
    redis.call('XADD', KEYS[1], '*', ARGV[2], ARGV[i + 1])
    last = seq
    top = ARGV[i]
    added = added + 1
  end
end
if top then
  redis.call('SET', KEYS[2], top, 'EX', ARGV[1])
  if KEYS[3] ~= KEYS[2] then
    if last > run then
      redis.call('SET', KEYS[3], top, 'EX', ARGV[1])
    elseif run_raw then
      redis.call('SET', KEYS[3], run_raw, 'EX', ARGV[1])
    end
  end
end
return {added, before_attempt, before_run}
"""

PERMANENT_CODES = frozenset({"WRONGTYPE"})

def is_permanent(exc: BaseException) -> bool:
    """True only for a reply proving the records can never be accepted; anything else is worth a retry."""
    return isinstance(exc, redis.ResponseError) and error_code(exc) in PERMANENT_CODES


def client_for(url: str, timeout_s: float) -> redis.Redis | redis.cluster.RedisCluster:
    """A client that fails fast: the publisher does its own retrying (and spooling meanwhile)."""
    return connect(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, retry=Retry(NoBackoff(), 0))


def read_mark(client: redis.Redis, key: str) -> int | None:
    """A seq mark as an int, None when there is none."""
    raw = client.get(key)
    if raw is None:
        return None
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    try:
        return int(text)
    except ValueError:
        return int(float(text))


@dataclass
class SendResult:
    """What one `send` did. With `retry` set, some chunk met a transient error: send the whole batch again
    later (what did go in is skipped then). `rejected` holds (dedupe key, records, reason) of chunks refused
    for good. `before` holds, per dedupe key, (attempt mark, run mark) as the first chunk found them."""

    added: int = 0
    skipped: int = 0
    rejected: list[tuple[str, int, str]] = field(default_factory=list)
    retry: BaseException | None = None
    before: dict[str, tuple[int, int]] = field(default_factory=dict)


def send(client: redis.Redis, records: list[Record]) -> SendResult:
    """Add `records` (in seq order per attempt) to their streams, each exactly once, in one round trip.

    Raises on a connection failure or timeout: then nothing is known and the whole batch may be retried.
    """
    groups: dict[tuple[str, str], list[Record]] = {}
    for record in records:
        groups.setdefault((record.stream, record.seq_key), []).append(record)
    calls = []
    for (stream, seq_key), group in groups.items():
        for start in range(0, len(group), CHUNK):
            chunk = group[start:start + CHUNK]
            args: list[object] = [ADD_ONCE, 3, stream, seq_key, Keys.run_seq_of(seq_key), SEQ_TTL_S, PAYLOAD_FIELD]
            for record in chunk:
                args += (record.seq, record.payload)
            calls.append((seq_key, len(chunk), args))
    if len(calls) == 1:  # one run, one chunk (an epoch at a time): a plain call costs a third less CPU
        try:
            results = [client.eval(*calls[0][2])]
        except redis.ResponseError as exc:
            results = [exc]
    else:
        pipe = client.pipeline(transaction=False)
        for _, _, args in calls:
            pipe.execute_command("EVAL", *args)
        results = pipe.execute(raise_on_error=False)
    out = SendResult()
    for (seq_key, size, _), result in zip(calls, results, strict=True):
        if isinstance(result, Exception):
            if is_permanent(result):
                out.rejected.append((seq_key, size, str(result)))
            elif out.retry is None:
                out.retry = result
            continue
        added, before_attempt, before_run = (int(x) for x in result)
        out.added += added
        out.skipped += size - added
        out.before.setdefault(seq_key, (before_attempt, before_run))
    return out


def away_reason(code: str, exc: BaseException) -> str:
    """Why the broker did not take events, in words that say what is going on."""
    if code in ("CONNECTION", "TIMEOUT", "NO_BROKER"):
        return f"broker unavailable ({exc})"
    if code == "PARTITIONS":
        return str(exc)
    if code in ("MOVED", "ASK"):
        return (f"the broker answered {code} ({exc}): EPOCHSTREAM_REDIS_URL points at one node of a Redis Cluster, "
                "which holds only some partitions; write it as redis+cluster://host:port[,host:port...]")
    if code in ("CLUSTERDOWN", "TRYAGAIN", "CLUSTER"):
        return f"the Redis Cluster cannot take writes for some slots now ({code}: {exc}); its slot map is read again"
    return f"the broker refuses writes for now ({code}: {exc})"

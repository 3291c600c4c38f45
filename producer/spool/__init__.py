"""The on-disk spool: where events wait, in order, while the broker is away.

Layout, under `<spool_dir>/<namespace>/`:

    <owner>.lock         flock-ed for its whole life by the process that writes <owner>'s segments
    <owner>-<n>.seg      append-only segments of records, n = 1, 2, ... in write order
    <owner>-<n>.seg.ack  how many bytes of that segment are delivered (an optimisation, see below)

A record is `length (4 bytes, big-endian) | crc32 of body (4 bytes) | body`, and a body is the header line
`stream \\t seq_key \\t seq \\n` followed by the encoded event. A process killed mid-write (SIGKILL, OOM)
leaves a torn last record: its length or checksum does not match, and the reader stops there. Nothing
follows a torn record, because only its owner ever appends to a segment, and the owner is dead.

An owner whose lock can be taken is dead: any process using the same spool directory adopts its
segments, delivers them and deletes them. The lock is what keeps two live processes from replaying the
same segment. Delivering a record twice is harmless anyway: the broker side skips any `seq` at or below
the run's high-water mark (see `producer.delivery`), so the `.ack` files only save work.

Modules: `framing` (the record format, pure), `backlog` (reading an owner's segments), `adoption`
(owners' locks, adopting the dead's segments), `writer` (this process's own spool), `status` (what waits,
for `epochstream spool status`).

Writes happen on the publisher's background thread only; the training loop never touches the disk.
Bytes are fsynced at most every `spool_fsync_s` (a killed process loses nothing that was written: the
page cache outlives it; the fsync is for power loss).
"""

from producer.spool.adoption import adopt_orphans, has_segments
from producer.spool.backlog import SEGMENT, Backlog, read_ack, segment_number
from producer.spool.framing import HEADER, MAX_RECORD_BYTES, Parsed, Record, frame, parse
from producer.spool.writer import Spool, safe_name

__all__ = ["HEADER", "MAX_RECORD_BYTES", "SEGMENT", "Backlog", "Parsed", "Record", "Spool", "adopt_orphans",
           "frame", "has_segments", "parse", "read_ack", "safe_name", "segment_number"]

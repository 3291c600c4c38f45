"""Moving a deployment's log from the local data directory to S3 (`epochstream migrate`), then rebuilding its
read model from there, without losing an event and safe to run again.

1. under the maintenance lock (no compaction deletes a part meanwhile), every live segment of the local log,
   and the seeds, is copied to the same name under the bucket's prefix; a name already there with the same
   size is skipped (names are unique and segments immutable: same name, same file), so a rerun after a
   crash copies only what is missing;
2. the copy is verified: every (run_id, event_id) of the local log (every stream entry of its dead letters)
   must be read back from the bucket, else `MigrationIncomplete` says which are missing and nothing else
   happens (the local log is never touched);
3. the read model is rebuilt from the bucket into where it will live (`EPOCHSTREAM_READ_MODEL_URL`, or the
   local SQLite) and swapped in (`workers.rebuild`); the catalog remakes its views for the new log by itself.
Run it with the workers, the scheduler and the API stopped; start them afterwards with the new settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from epochstream.errors import TerminalError
from epochstream.layout import DataLayout
from epochstream.settings import Settings
from workers.catalog import SEED
from workers.log_reader import identity, read_files, segments
from workers.log_schema import LOG_SCHEMAS
from workers.log_store import LogFile, log_store
from workers.maintenance_lock import maintenance_lock, shared_lock_for


class MigrationIncomplete(TerminalError):
    """Events of the local log could not be read back from the target: nothing was switched over."""


@dataclass
class MigrationResult:
    copied: int = 0
    already_there: int = 0
    events: int = 0  # distinct events (and dead letters) verified in the target
    runs: int | None = None  # in the rebuilt read model
    per_type: dict[str, int] = field(default_factory=dict)


def to_copy(local: list[LogFile], remote: list[LogFile]) -> tuple[list[LogFile], int]:
    """(the local files the target lacks, how many it has already) by name and size (pure)."""
    there = {f.name: f.size for f in remote}
    missing = [f for f in local if there.get(f.name) != f.size]
    return missing, len(local) - len(missing)


def _keys(layout: DataLayout, event_type: str) -> set[tuple]:
    table = read_files(layout, segments(layout, event_type), event_type)
    columns = [table.column(c).to_pylist() for c in identity(event_type)]
    return set(zip(*columns, strict=True))


def copy_log(source: DataLayout, target: DataLayout, result: MigrationResult) -> None:
    """Steps 1 and 2 of the module docstring."""
    src, dst = log_store(source), log_store(target)
    for event_type in LOG_SCHEMAS:
        live = set(segments(source, event_type))
        local = [f for f in src.files(event_type, "*.parquet") if f.path in live or f.name == SEED]
        missing, there = to_copy(local, dst.files(event_type, "*.parquet"))
        for f in missing:  # byte for byte: stamps, compression and size stay what they were
            dst.write_bytes(target.log_dir(event_type) / f.name, src.read_bytes(f.path))
        result.copied += len(missing)
        result.already_there += there
        wanted, got = _keys(source, event_type), _keys(target, event_type)
        lost = wanted - got
        if lost:
            raise MigrationIncomplete(
                f"{len(lost)} {event_type} event(s) of the local log were not read back from {dst.url} (e.g. "
                f"{sorted(lost)[:3]}); nothing was switched over and the local log is untouched: run "
                "`epochstream migrate` again")
        result.per_type[event_type] = len(wanted)
        result.events += len(wanted)


def migrate(settings: Settings, log_url: str, read_model_url: str | None = None,
            wait_s: float = 0.0) -> MigrationResult:
    """Copy the local log of `settings.data_dir` to `log_url`, verify it, and rebuild the read model (at
    `read_model_url`, default: where `settings` has it) from the copy. Returns what was done."""
    from workers.rebuild import rebuild

    source = DataLayout(settings.data_dir)  # the local log, whatever EPOCHSTREAM_LOG_URL says
    target = DataLayout(settings.data_dir, log_url)
    result = MigrationResult()
    with maintenance_lock(source, "migrate", wait_s, shared_lock_for(settings)):
        copy_log(source, target, result)
    moved = settings.model_copy(update={"log_url": log_url, **(
        {"read_model_url": read_model_url} if read_model_url is not None else {})})
    result.runs = rebuild(moved, wait_s=wait_s)
    return result

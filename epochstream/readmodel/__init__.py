"""The read model: what the workers derive from the log, in a transactional database the API reads.

Workers write it (`ReadModelWriter`: one transaction per drained batch with the partition's tracking
record and fence token); the API and the CLI read it (`ReadModelReader`, read-only by construction);
`epochstream rebuild` replays the log into a fresh one and swaps it in. The embedded default is SQLite in
WAL mode under `<data_dir>/readmodel/` (`location`); `Settings.read_model_url=postgresql://...` puts it in
PostgreSQL for many hosts (`postgres`). Both are *stores* (`stores`) running the same statements
(`dialect` says what differs).
"""

from epochstream.readmodel.errors import ReadModelBusy, ReadModelError, ReadModelMissing, StaleFence
from epochstream.readmodel.writer import ApplyResult, ReadModelWriter, Tracking

__all__ = ["ApplyResult", "ReadModelBusy", "ReadModelError", "ReadModelMissing", "ReadModelWriter", "StaleFence",
           "Tracking"]

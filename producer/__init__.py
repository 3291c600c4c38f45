"""What training code imports: `start_run`, `Run`, `EpochAccumulator`."""

from producer.publisher import Publisher
from producer.run import Run, start_run

__all__ = ["Publisher", "Run", "start_run"]

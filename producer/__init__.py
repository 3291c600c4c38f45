"""What training code imports: `start_run`, `Run`, `EpochAccumulator` (and `Publisher` to share one).

    from producer import EpochAccumulator, start_run

    with start_run(project="resnet-sweep", config={"lr": 3e-4}) as run:
        for epoch in range(epochs):
            acc = EpochAccumulator()
            for x, y in loader:
                ...
                acc.add_batch("train/loss", loss.item(), len(y))
            run.log_epoch(epoch, acc.compute(), samples=acc.samples)

Nothing here blocks or raises into training code; see `producer.publisher` for what happens when the
broker is away, and `producer.testing` for testing training code without a broker.
"""

from producer.accumulator import EpochAccumulator
from producer.publisher import Publisher
from producer.run import Run, start_run

__all__ = ["EpochAccumulator", "Publisher", "Run", "start_run"]

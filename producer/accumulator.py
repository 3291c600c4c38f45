"""Epoch aggregates that are right on uneven batches: sample-weighted means of per-batch means.

The bug this exists for: a batch loss is already a *mean* over the batch. Summing `batch_mean` and dividing
by the number of batches over-weights a short last batch; summing `batch_mean * batch_size` and then
dividing by the number of batches (or storing the sum in an integer) gives a loss batch-size times too
large, or zero. The right epoch value is `sum(batch_mean * batch_size) / sum(batch_size)`, which is the
mean over every individual sample; accuracy is `sum(correct) / sum(total)`.

    acc = EpochAccumulator()
    for x, y in loader:
        ...
        acc.add_batch("train/loss", loss, len(y))        # loss: a float or a 0-d tensor
        acc.add_correct("train/accuracy", (pred == y).sum(), len(y))
    run.log_epoch(epoch, acc.compute(), samples=acc.samples)
    acc.reset()

Values may be Python numbers or 0-d tensors / NumPy scalars (`.item()` is called only on those; torch is
never imported here). Passing a tensor makes `.item()` wait for the GPU: pass floats if you already have
them. A value that cannot be used (not a number, a negative or fractional count, correct > total) is
skipped and logged once; nothing here raises into the training loop.
"""

from __future__ import annotations

from producer.notices import Notices


class EpochAccumulator:
    def __init__(self) -> None:
        self._weighted: dict[str, list] = {}  # name -> [sum of batch_mean * batch_size, samples]
        self._counts: dict[str, list[int]] = {}  # name -> [correct, total]
        self._notices = Notices()

    def add_batch(self, name: str, batch_mean: float, batch_size: int) -> None:
        """One batch's mean of a per-sample quantity (a loss), over `batch_size` samples."""
        mean, size = batch_mean, batch_size
        if type(mean) is not float or type(size) is not int or size < 0:  # else: the common case, as is
            try:
                mean, size = _number(batch_mean), _count(batch_size)
            except (TypeError, ValueError, OverflowError) as exc:
                self._notices.warn(f"batch-{name}", f"EpochAccumulator: a batch of {name!r} was skipped: {exc}")
                return
        if size == 0:
            return
        entry = self._weighted.get(name)
        if entry is None:
            self._weighted[name] = [mean * size, size]
        else:
            entry[0] += mean * size
            entry[1] += size

    def add_correct(self, name: str, correct: int, total: int) -> None:
        """`correct` right out of `total` in one batch (an accuracy's numerator and denominator)."""
        right, out_of = correct, total
        try:
            if type(right) is not int or type(out_of) is not int or right < 0:  # else: the common case, as is
                right, out_of = _count(correct), _count(total)
            if right > out_of:
                raise ValueError(f"correct ({right}) is more than total ({out_of})")
        except (TypeError, ValueError, OverflowError) as exc:
            self._notices.warn(f"correct-{name}", f"EpochAccumulator: a batch of {name!r} was skipped: {exc}")
            return
        entry = self._counts.get(name)
        if entry is None:
            self._counts[name] = [right, out_of]
        else:
            entry[0] += right
            entry[1] += out_of

    def compute(self) -> dict[str, float]:
        """Every metric that has seen at least one sample: weighted means, then accuracies."""
        out = {name: total / samples for name, (total, samples) in self._weighted.items() if samples}
        out.update({name: right / out_of for name, (right, out_of) in self._counts.items() if out_of})
        return out

    @property
    def samples(self) -> int:
        """Samples in this epoch: the largest sample count among the `add_batch` metrics (the training loss
        sees every batch); with none, the largest `total` among the `add_correct` ones; 0 before any."""
        if self._weighted:
            return max(samples for _, samples in self._weighted.values())
        return max((out_of for _, out_of in self._counts.values()), default=0)

    def reset(self) -> None:
        """Start the next epoch."""
        self._weighted.clear()
        self._counts.clear()


def _scalar(value):
    if isinstance(value, int | float):
        return value
    item = getattr(value, "item", None)
    if item is None:
        raise TypeError(f"expected a number or a 0-d tensor, got {type(value).__name__}")
    try:
        return item()
    except RuntimeError as exc:  # torch: "a Tensor with 2 elements cannot be converted to Scalar"
        raise ValueError(str(exc)) from None


def _number(value) -> float:
    if isinstance(value, str | bytes):
        raise TypeError(f"expected a number, got {type(value).__name__} {value!r}")
    return float(_scalar(value))


def _count(value) -> int:
    number = _scalar(value) if not isinstance(value, str | bytes) else value
    if isinstance(number, bool) or not isinstance(number, int | float):
        raise TypeError(f"expected a count, got {type(value).__name__} {value!r}")
    if number != int(number) or number < 0:
        raise ValueError(f"expected a whole count >= 0, got {number!r}")
    return int(number)

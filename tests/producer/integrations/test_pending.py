"""One event per step or epoch, whatever number of calls a framework spreads it over."""

from __future__ import annotations

from producer.integrations.pending import Pending


def recorder():
    out: list[tuple[int, dict[str, float], int | None]] = []
    return out, Pending(lambda key, metrics, extra: out.append((key, metrics, extra)))


def test_calls_for_one_key_become_one_event_sent_when_the_key_changes():
    out, pending = recorder()
    pending.add(3, {"learning_rate": 0.1}, extra=0)
    pending.add(3, {"train/loss": 1.0})
    assert out == []
    pending.add(4, {"train/loss": 0.5}, extra=1)
    assert out == [(3, {"learning_rate": 0.1, "train/loss": 1.0}, 0)]
    pending.flush()
    pending.flush()  # nothing gathered: nothing sent
    assert out[1:] == [(4, {"train/loss": 0.5}, 1)]


def test_a_key_that_comes_back_is_sent_again_with_everything_it_had():
    out, pending = recorder()
    pending.add(0, {"val/loss": 2.0}, extra=7)
    pending.flush()
    pending.add(0, {"val/loss": 1.5, "val/accuracy": 0.5})  # a second evaluation of epoch 0
    pending.flush()
    assert out == [(0, {"val/loss": 2.0}, 7), (0, {"val/loss": 1.5, "val/accuracy": 0.5}, 7)]


def test_an_empty_add_sends_nothing():
    out, pending = recorder()
    pending.add(1, {})
    pending.flush()
    assert out == []

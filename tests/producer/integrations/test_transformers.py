"""A real Hugging Face `Trainer.train` of a 2-layer BERT built from a config (small vocabulary, tokens made
here, nothing downloaded) with `EpochstreamCallback`: steps and epochs arrive exactly as the Trainer
logged them, the config holds the arguments and the model's config, and early stopping stops it."""

from __future__ import annotations

import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainerCallback, TrainingArguments

from producer import Publisher
from producer.integrations.transformers import EpochstreamCallback, epoch_index
from producer.jsonsafe import json_safe
from producer.run import start_run
from tests.producer.conftest import run_events
from tests.producer.integrations.pipeline import drained, served
from tests.producer.integrations.readme import run_readme_example

TRAIN, EVAL, BATCH, LENGTH, VOCAB = 32, 16, 8, 8, 64
STEPS_PER_EPOCH = TRAIN // BATCH


class Tokens(torch.utils.data.Dataset):
    """Random token sequences; the label says whether the first token is in the vocabulary's lower half."""

    def __init__(self, n: int, seed: int):
        generator = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(0, VOCAB, (n, LENGTH), generator=generator)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "attention_mask": torch.ones(LENGTH, dtype=torch.long),
                "labels": (self.ids[i, 0] < VOCAB // 2).long()}


def tiny_bert() -> BertForSequenceClassification:
    torch.manual_seed(0)
    return BertForSequenceClassification(BertConfig(
        vocab_size=VOCAB, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=LENGTH * 2, num_labels=2))


class Snapshot(TrainerCallback):
    """The model's config at the moment the Trainer calls on_train_begin."""

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.model_config = model.config.to_dict()


def train(callback: EpochstreamCallback, tmp_path, epochs: int, also: tuple[TrainerCallback, ...] = ()) -> Trainer:
    args = TrainingArguments(output_dir=str(tmp_path / "out"), num_train_epochs=epochs,
                             per_device_train_batch_size=BATCH, per_device_eval_batch_size=BATCH,
                             learning_rate=1e-3, logging_steps=1,
                             eval_strategy="epoch", save_strategy="no", report_to="none", use_cpu=True,
                             disable_tqdm=True, seed=0, dataloader_num_workers=0)
    trainer = Trainer(model=tiny_bert(), args=args, train_dataset=Tokens(TRAIN, 1), eval_dataset=Tokens(EVAL, 2),
                      callbacks=[callback, *also])
    trainer.train()
    return trainer


def test_train_records_steps_and_evaluations_as_the_trainer_logged_them(recorder, tmp_path):
    callback = EpochstreamCallback(project="hf-test", name="tiny-bert", config={"data": "random tokens"},
                                   publisher=recorder)
    snapshot = Snapshot()
    trainer = train(callback, tmp_path, epochs=2, also=(snapshot,))
    history = trainer.state.log_history  # the Trainer's own record of every log, with its step

    started = recorder.started
    assert (started.project, started.name, started.run_id) == ("hf-test", "tiny-bert", callback.run.run_id)
    # the model's config as on_train_begin saw it (the Trainer sets `use_cache`, the forward `problem_type`)
    expected_config = {**json_safe(trainer.args.to_dict()), "model_config": json_safe(snapshot.model_config),
                       "data": "random tokens"}
    assert started.config == expected_config
    assert started.config["num_train_epochs"] == 2 and started.config["model_config"]["vocab_size"] == VOCAB

    train_logs = [h for h in history if "loss" in h]
    assert len(train_logs) == 2 * STEPS_PER_EPOCH
    assert {s.step: s.metrics for s in recorder.steps} == {
        h["step"]: {"train/loss": h["loss"], "gradient_norm": h["grad_norm"], "learning_rate": h["learning_rate"]}
        for h in train_logs}
    assert [s.step for s in recorder.steps] == list(range(1, 2 * STEPS_PER_EPOCH + 1))
    assert [s.epoch for s in recorder.steps] == [0] * STEPS_PER_EPOCH + [1] * STEPS_PER_EPOCH

    evaluations = [h for h in history if "eval_loss" in h]
    assert [e.epoch for e in recorder.epochs] == [0, 1]
    assert [e.metrics for e in recorder.epochs] == [
        {"val/loss": h["eval_loss"], "val/runtime": h["eval_runtime"],
         "val/samples_per_second": h["eval_samples_per_second"], "val/steps_per_second": h["eval_steps_per_second"]}
        for h in evaluations]

    summary = {k: v for k, v in history[-1].items() if k != "step"}
    assert "train_runtime" in summary
    assert [c.config for c in recorder.of_type("run_config")] == [{"train_summary": summary}]
    assert recorder.finished.status == "completed" and recorder.events[-1] is recorder.finished


def test_early_stopping_through_the_callback_stops_the_trainer(recorder, tmp_path):
    # patience 1 and a min_delta no loss can beat: no improvement after epoch 0, stop after epoch 1 of 4.
    with start_run("hf-test", publisher=recorder, patience=1, min_delta=1e9) as run:
        callback = EpochstreamCallback(run=run, early_stop=True)
        trainer = train(callback, tmp_path, epochs=4)
        assert recorder.finished is None  # a run passed in is its owner's to finish
    assert trainer.state.global_step == 2 * STEPS_PER_EPOCH
    assert [e.epoch for e in recorder.epochs] == [0, 1]
    assert run.verdict().should_stop
    late = recorder.of_type("run_config")[0].config  # args and model config, after the run had started
    assert late["num_train_epochs"] == 4 and late["model_config"]["num_hidden_layers"] == 2
    assert recorder.finished.status == "completed"


def test_fractional_epochs_are_numbered_from_zero():
    assert [epoch_index(e) for e in (0.0, 0.25, 1.0, 1.0001, 2.0, None, float("nan"))] == [0, 0, 0, 1, 1, None, None]


def test_the_readme_lines_publish_a_training_through_redis(settings, redis_client, monkeypatch, tmp_path):
    args = TrainingArguments(output_dir=str(tmp_path / "out"), num_train_epochs=2, per_device_train_batch_size=BATCH,
                             logging_steps=2, eval_strategy="epoch", save_strategy="no", report_to="none",
                             use_cpu=True, disable_tqdm=True, seed=0)
    scope = run_readme_example("transformers", settings, monkeypatch, {
        "Trainer": Trainer, "model": tiny_bert(), "args": args, "train_set": Tokens(TRAIN, 1),
        "val_set": Tokens(EVAL, 2)})
    callback = next(c for c in scope["trainer"].callback_handler.callbacks if isinstance(c, EpochstreamCallback))
    events = run_events(redis_client, settings, callback.run.run_id)
    assert events[0].type == "run_started" and events[0].project == "bert-sweep" and events[0].patience == 2
    assert [e.step for e in events if e.type == "step"] == [2, 4, 6, 8]
    assert [(e.epoch, "val/loss" in e.metrics) for e in events if e.type == "epoch"] == [(0, True), (1, True)]
    assert events[-1].type == "run_finished" and events[-1].status == "completed"


def test_through_the_pipeline_the_api_serves_exactly_what_the_trainer_logged(settings, redis_client, api_server,
                                                                             tmp_path):
    publisher = Publisher(settings)
    try:
        callback = EpochstreamCallback(project="hf-e2e", config={"data": "random tokens"}, publisher=publisher)
        snapshot = Snapshot()
        trainer = train(callback, tmp_path, epochs=2, also=(snapshot,))
        assert publisher.flush(10)
    finally:
        publisher.close()
    drained(redis_client, settings)

    run, epochs, steps = served(api_server.base_url, callback.run.run_id)
    history = trainer.state.log_history
    assert steps == {h["step"]: (epoch_index(h["epoch"]), {"train/loss": h["loss"], "gradient_norm": h["grad_norm"],
                                                           "learning_rate": h["learning_rate"]})
                     for h in history if "loss" in h}
    assert epochs == {epoch_index(h["epoch"]): {"val/loss": h["eval_loss"], "val/runtime": h["eval_runtime"],
                                                "val/samples_per_second": h["eval_samples_per_second"],
                                                "val/steps_per_second": h["eval_steps_per_second"]}
                      for h in history if "eval_loss" in h}
    assert sorted(epochs) == [0, 1] and len(steps) == 2 * STEPS_PER_EPOCH
    assert run["config"] == {**json_safe(trainer.args.to_dict()), "model_config": json_safe(snapshot.model_config),
                             "data": "random tokens",
                             "train_summary": {k: v for k, v in history[-1].items() if k != "step"}}
    assert run["status"] == "completed"

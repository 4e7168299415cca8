"""The noise scale logged while a Hugging Face ``Trainer`` trains
(``lrkit.integrations.transformers.NoiseScaleCallback``), on a tiny GPT-2 built from a config
and a ``datasets.Dataset``: ``lrkit/b_simple`` and ``lrkit/critical_batch_size`` reach
``state.log_history`` and every callback's ``on_log`` (as ``report_to``'s reporters get them)
at the first step and every n-th; training, its RNG and the Trainer's own logs are bitwise
unchanged; it measures the Trainer's own loss; with ``find_lr_for_trainer`` the Trainer gets its
lr and logs its noise scale; every bad input is a one-line error."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("datasets")
pytest.importorskip("accelerate")

from datasets import Dataset
from transformers import (
    GPT2LMHeadModel,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from lrkit.errors import LrkitValueError
from lrkit.integrations.transformers import NoiseScaleCallback, find_lr_for_trainer
from lrkit.rangetest.settings import RangeTestSettings
from test_hf_trainer import counting, tiny_gpt2

QUICK = {"groups": 2, "big_factor": 4}
"""A cheap measurement: 8 extra forward and backward passes."""


class Reporter(TrainerCallback):
    """What a ``report_to`` reporter (TensorBoard, W&B) sees: every ``on_log``, at its step."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, dict[str, float]]] = []

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        self.seen.append((state.global_step, dict(logs)))


def gpt2_trainer(
    tmp_path: Path,
    train: Dataset | None,
    *,
    steps: int = 6,
    accumulation: int = 1,
    callbacks: list[Any] | None = None,
    **trainer_kwargs: Any,
) -> Trainer:
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=steps,
        per_device_train_batch_size=8,
        gradient_accumulation_steps=accumulation,
        logging_steps=3,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        disable_tqdm=True,
        seed=3,
    )
    return Trainer(
        model=tiny_gpt2(),
        args=args,
        train_dataset=train,
        callbacks=callbacks,
        **trainer_kwargs,
    )


def noise_logs(trainer: Trainer) -> list[dict[str, float]]:
    return [e for e in trainer.state.log_history if "lrkit/b_simple" in e]


def test_b_simple_is_logged_at_the_first_step_and_every_nth_to_the_history_and_reporters(
    tmp_path: Path,
) -> None:
    reporter = Reporter()  # before the callback in the handler, as report_to's reporters are
    hf = gpt2_trainer(tmp_path, counting(200, 0), callbacks=[reporter])
    noise = NoiseScaleCallback(hf, every_n_steps=3, **QUICK)
    hf.add_callback(noise)
    hf.train()
    logged = noise_logs(hf)
    assert [e["step"] for e in logged] == [1, 3, 6]
    for entry, reading in zip(logged, noise.readings, strict=True):
        b = entry["lrkit/b_simple"]
        assert math.isfinite(b) and b > 0
        assert entry["lrkit/critical_batch_size"] == b == reading.b_simple_smoothed
        assert entry["lrkit/b_simple_raw"] == reading.estimate.b_simple
        assert entry["lrkit/b_simple_stderr"] > 0
    reported = [(step, logs) for step, logs in reporter.seen if "lrkit/b_simple" in logs]
    assert [step for step, _ in reported] == [1, 3, 6]
    assert [logs["lrkit/b_simple"] for _, logs in reported] == [e["lrkit/b_simple"] for e in logged]


def test_training_its_rng_and_the_trainers_own_logs_are_bitwise_unchanged(
    tmp_path: Path,
) -> None:
    def train(measured: bool) -> tuple[Trainer, torch.Tensor]:
        # Accumulating two micro-batches a step: the probe runs between optimizer steps.
        hf = gpt2_trainer(tmp_path, counting(200, 0), accumulation=2)
        if measured:
            hf.add_callback(NoiseScaleCallback(hf, every_n_steps=2, **QUICK))
        hf.train()
        return hf, torch.get_rng_state()

    (plain, plain_rng), (measured, measured_rng) = train(False), train(True)
    assert len(noise_logs(measured)) == 4  # steps 1, 2, 4, 6: GPT-2's dropout draws between
    weights = measured.model.state_dict()
    assert all(torch.equal(v, weights[k]) for k, v in plain.model.state_dict().items())
    assert torch.equal(plain_rng, measured_rng)

    def own(hf: Trainer) -> list[dict[str, float]]:
        timing = ("runtime", "per_second")
        return [
            {k: v for k, v in e.items() if not any(t in k for t in timing)}
            for e in hf.state.log_history
            if "lrkit/b_simple" not in e
        ]

    # The loss logged at steps 3 and 6, where the callback logs too, is kept.
    assert [e["step"] for e in own(measured) if "loss" in e] == [3, 6]
    assert own(measured) == own(plain)


def test_the_trainers_own_loss_is_the_one_measured(tmp_path: Path) -> None:
    calls: list[bool] = []

    def loss(outputs: Any, labels: torch.Tensor, num_items_in_batch: Any = None) -> torch.Tensor:
        calls.append(labels is not None)
        logits = outputs.logits[:, :-1].flatten(0, 1)
        return torch.nn.functional.cross_entropy(logits, labels[:, 1:].flatten())

    hf = gpt2_trainer(tmp_path, counting(200, 0), steps=1, compute_loss_func=loss)
    hf.add_callback(NoiseScaleCallback(hf, **QUICK))
    hf.train()
    assert len(calls) == 1 + 2 * 4 and all(calls)  # the training step's and the probe's
    assert len(noise_logs(hf)) == 1


def test_the_model_a_model_init_builds_at_train_is_the_one_measured(tmp_path: Path) -> None:
    hf = gpt2_trainer(tmp_path, counting(200, 0), steps=1)
    config = hf.model.config
    hf.model_init = lambda: GPT2LMHeadModel(config)  # as Trainer(model_init=...) keeps it
    noise = NoiseScaleCallback(hf, **QUICK)
    hf.add_callback(noise)
    built = hf.model
    hf.train()
    assert hf.model is not built and noise.probe.module is hf.model
    assert len(noise.readings) == 1


def test_a_trainer_gets_its_lr_through_find_lr_for_trainer_and_logs_b_simple_through_its_callback(
    tmp_path: Path,
) -> None:
    hf = gpt2_trainer(tmp_path, counting(200, 0), steps=4)
    hf.args.logging_first_step = True
    quick = RangeTestSettings(
        batch_size=8, program="1e-4:1e-2:1e-3@2", rounds=1, suggestion="valley"
    )
    found = find_lr_for_trainer(hf, quick, eval_examples=0)
    assert found.suggested_lr is not None
    hf.args.learning_rate = found.suggested_lr
    hf.add_callback(NoiseScaleCallback(hf, every_n_steps=2, **QUICK))
    hf.train()
    first = [e for e in hf.state.log_history if e["step"] == 1]
    assert {"learning_rate", "lrkit/b_simple", "lrkit/critical_batch_size"} <= {
        k for e in first for k in e
    }
    assert next(e["learning_rate"] for e in first if "learning_rate" in e) == found.suggested_lr
    assert [e["step"] for e in noise_logs(hf)] == [1, 2, 4]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"every_n_steps": 0}, "every_n_steps must be an integer > 0, got 0"),
        ({"every_n_steps": 2.5}, "every_n_steps must be an integer > 0, got 2.5"),
        ({"groups": 1}, "groups must be an integer >= 2"),
        ({"big_factor": 1}, "big_factor must be an integer >= 2"),
        ({"smoothing": 1.0}, "smoothing must be a number in \\[0, 1\\)"),
        ({"batch_size": 0}, "batch_size must be an integer in \\[1, 40\\]"),
        ({"batch_size": 41}, "batch_size must be an integer in \\[1, 40\\] \\(the examples"),
        ({"seed": -1}, "seed must be an integer in \\[0, "),
    ],
)
def test_bad_settings_are_one_line_errors(
    tmp_path: Path, settings: dict[str, Any], message: str
) -> None:
    hf = gpt2_trainer(tmp_path, counting(40, 0))
    with pytest.raises(LrkitValueError, match=message) as raised:
        NoiseScaleCallback(hf, **settings)
    assert "\n" not in str(raised.value)


def test_bad_trainers_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(LrkitValueError, match="the Trainer has no train_dataset"):
        NoiseScaleCallback(gpt2_trainer(tmp_path, None))
    streamed = counting(40, 0).to_iterable_dataset()
    with pytest.raises(LrkitValueError, match="train_dataset has no length"):
        NoiseScaleCallback(gpt2_trainer(tmp_path, streamed))  # type: ignore[arg-type]
    # Without its Trainer it could not log: the Trainer building it from the class, or a user.
    needs = "NoiseScaleCallback logs through its Trainer: .*trainer.add_callback"
    with pytest.raises(LrkitValueError, match=needs):
        gpt2_trainer(tmp_path, counting(40, 0), callbacks=[NoiseScaleCallback])
    with pytest.raises(LrkitValueError, match=needs):
        NoiseScaleCallback()


def test_a_callback_added_to_another_trainer_is_refused_when_training_begins(
    tmp_path: Path,
) -> None:
    built_for = gpt2_trainer(tmp_path, counting(40, 0))
    other = gpt2_trainer(tmp_path, counting(40, 0), callbacks=[NoiseScaleCallback(built_for)])
    with pytest.raises(LrkitValueError, match="built for another Trainer") as raised:
        other.train()
    assert "\n" not in str(raised.value)

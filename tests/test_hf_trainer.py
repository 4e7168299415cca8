"""The range test for a Hugging Face ``Trainer`` (``lrkit.integrations.transformers``): on a
tiny GPT-2 built from a config and a ``datasets.Dataset``, it suggests an lr from the
Trainer's own model, data, batch size, accumulation and optimizer, and leaves the model, the
Trainer and every RNG as they were."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("datasets")
pytest.importorskip("accelerate")

from datasets import Dataset
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

from lrkit.errors import LrkitValueError
from lrkit.integrations.transformers import find_lr_for_trainer, trainer_settings
from lrkit.rangetest.settings import RangeTestSettings

VOCAB, LENGTH = 32, 12


def counting(n: int, seed: int) -> Dataset:
    """Token ids counting up by one; labels = input_ids, as for a causal language model."""
    g = torch.Generator().manual_seed(seed)
    ids = (torch.randint(1, VOCAB, (n, 1), generator=g) + torch.arange(LENGTH)) % VOCAB
    return Dataset.from_dict({"input_ids": ids.tolist(), "labels": ids.tolist()})


def tiny_gpt2() -> GPT2LMHeadModel:
    """A one-layer GPT-2 over ``VOCAB`` tokens, its weights seeded."""
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=VOCAB,
        n_positions=LENGTH,
        n_embd=16,
        n_layer=1,
        n_head=2,
        bos_token_id=0,
        eos_token_id=0,
    )
    return GPT2LMHeadModel(config)


def trainer(tmp_path: Path, train: Dataset | None, accumulation: int = 1) -> Trainer:
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=16,
        gradient_accumulation_steps=accumulation,
        weight_decay=0.01,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        logging_strategy="no",
    )
    return Trainer(
        model=tiny_gpt2(),
        args=args,
        train_dataset=train,
        eval_dataset=counting(128, 1),
    )


def test_the_range_test_of_a_trainer_suggests_and_leaves_everything_as_it_was(
    tmp_path: Path,
) -> None:
    hf = trainer(tmp_path, counting(600, 0))
    weights = {k: v.clone() for k, v in hf.model.state_dict().items()}
    states = (torch.get_rng_state(), random.getstate())
    result = find_lr_for_trainer(hf, plot=tmp_path / "lr.png")
    assert result.suggested_lr is not None and result.suggested_lr > 0
    assert result.batch_size == 16 and result.rounds[0].curve == "eval"
    assert all(torch.equal(weights[k], v) for k, v in hf.model.state_dict().items())
    assert hf.optimizer is None  # trainer.train() builds its own, as it would have
    assert torch.equal(states[0], torch.get_rng_state())
    assert states[1] == random.getstate()
    assert (tmp_path / "lr.png").read_bytes()[:4] == b"\x89PNG"


def test_the_trainers_batch_accumulation_and_seed_are_the_tests(tmp_path: Path) -> None:
    hf = trainer(tmp_path, counting(300, 0), accumulation=2)
    expected = RangeTestSettings(batch_size=16, accumulation_steps=2, seed=hf.args.seed)
    assert trainer_settings(hf.args) == expected
    result = find_lr_for_trainer(hf, eval_examples=0)  # accumulating 2 micro-batches a step
    assert result.suggested_lr is not None and result.rounds[0].curve != "eval"
    quick = RangeTestSettings(batch_size=8, program="1e-4:1e-3:1e-4@2", rounds=1)
    assert find_lr_for_trainer(hf, quick, eval_examples=0).batch_size == 8


def test_a_trainer_without_training_data_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LrkitValueError, match="the Trainer has no train_dataset"):
        find_lr_for_trainer(trainer(tmp_path, None))

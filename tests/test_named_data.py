"""Batches given as dicts (issue 28): named inputs (``data.features``), data read from
dicts (``data.named``), the model's own loss and how its scores line up with the labels
(``training.outputs.ModelLoss``), checked on toy models whose losses are written by hand."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from lrkit.data.features import Features
from lrkit.data.named import named_data
from lrkit.data.tensors import TensorData
from lrkit.errors import LrkitValueError
from lrkit.noise.estimators import choose_estimator
from lrkit.sweep.engines.registry import EngineRequest, choose_engine
from lrkit.training.evaluate import evaluate
from lrkit.training.fit_check import check_model_fits
from lrkit.training.outputs import (
    IGNORE_INDEX,
    CrossEntropy,
    ModelLoss,
    batch_loss,
    default_loss,
)
from lrkit.training.step import train_step

VOCAB = 5


class OwnLoss(nn.Module):
    """A token model called with keywords that computes its own loss from ``labels``, the
    scores of position t aimed at label t + ``shift`` (1: a causal language model)."""

    def __init__(self, shift: int = 1, loss: str = "ce") -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, VOCAB)
        self.shift, self.loss = shift, loss

    def forward(
        self, input_ids: torch.Tensor, labels: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        logits = self.embed(input_ids)
        out = {"logits": logits}
        if labels is not None:
            scores, aimed = logits, labels
            if self.shift:
                scores, aimed = logits[:, : -self.shift], labels[:, self.shift :]
            if self.loss == "ce":
                out["loss"] = F.cross_entropy(
                    scores.reshape(-1, VOCAB), aimed.reshape(-1), ignore_index=IGNORE_INDEX
                )
            else:
                out["loss"] = scores.pow(2).mean()  # no cross-entropy of any alignment
        return out


def tokens(n: int = 6, length: int = 4) -> Features:
    ids = (torch.arange(n).unsqueeze(1) + torch.arange(length)) % VOCAB
    return Features({"input_ids": ids, "labels": ids.clone()})


def test_named_inputs_are_cut_and_moved_together() -> None:
    x = tokens()
    assert len(x) == 6 and x.shape == torch.Size([6])
    assert torch.equal(x[1:3].tensors["labels"], x.tensors["labels"][1:3])
    assert torch.equal(x[torch.tensor([4, 0])].tensors["input_ids"][1], x.tensors["input_ids"][0])
    assert x.to("cpu").describe() == "input_ids (6, 4), labels (6, 4)"
    with pytest.raises(LrkitValueError, match="the inputs differ in length"):
        Features({"input_ids": torch.zeros(3, 2), "labels": torch.zeros(4, 2)})


def test_a_list_of_dicts_becomes_named_inputs_and_label_targets() -> None:
    rows = [{"input_ids": [1, 2, 3], "labels": 1}, {"input_ids": [3, 2, 1], "labels": 0}]
    data = named_data(rows)
    assert isinstance(data, TensorData) and isinstance(data.x, Features)
    assert data.x.tensors["input_ids"].tolist() == [[1, 2, 3], [3, 2, 1]]
    assert data.y.tolist() == [1, 0]
    assert named_data([(1, 2)]) is None and named_data(torch.zeros(3)) is None


def test_a_collators_batches_are_joined_padded_to_the_longest() -> None:
    rows = [{"input_ids": torch.arange(1, 2 + i)} for i in range(4)]

    def collate(batch: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        longest = max(len(b["input_ids"]) for b in batch)
        ids = [F.pad(b["input_ids"], (0, longest - len(b["input_ids"]))) for b in batch]
        mask = [
            F.pad(torch.ones_like(b["input_ids"]), (0, longest - len(b["input_ids"])))
            for b in batch
        ]
        labels = [
            F.pad(b["input_ids"], (0, longest - len(b["input_ids"])), value=-100) for b in batch
        ]
        return {
            "input_ids": torch.stack(ids),
            "attention_mask": torch.stack(mask),
            "labels": torch.stack(labels),
        }

    data = named_data(DataLoader(rows, batch_size=2, collate_fn=collate))
    assert data is not None and isinstance(data.x, Features)
    assert data.x.tensors["input_ids"].tolist() == [
        [1, 0, 0, 0],
        [1, 2, 0, 0],
        [1, 2, 3, 0],
        [1, 2, 3, 4],
    ]
    assert data.x.tensors["attention_mask"].sum(1).tolist() == [1, 2, 3, 4]
    assert data.y.tolist()[0] == [1, -100, -100, -100]  # labels pad with -100
    assert named_data(DataLoader([(torch.zeros(2), 0)], batch_size=1)) is None


@pytest.mark.parametrize(
    ("rows", "said"),
    [
        (
            [{"input_ids": [1, 2, 3], "labels": 1}, {"input_ids": [3, 2], "labels": 0}],
            "the column 'input_ids' holds rows of different lengths; pad them",
        ),
        ([{"input_ids": [1, 2]}], "the batches hold no 'labels' (keys: ['input_ids'])"),
    ],
    ids=["ragged", "no-labels"],
)
def test_dicts_lrkit_cannot_read_are_refused_in_one_line(
    rows: list[dict[str, object]], said: str
) -> None:
    with pytest.raises(LrkitValueError) as caught:
        named_data(rows)
    assert said in caught.value.cli_message()
    assert caught.value.cli_message().startswith("--data: ")


def test_a_datasets_dataset_is_read_by_its_columns() -> None:
    datasets = pytest.importorskip("datasets")
    table = datasets.Dataset.from_dict({"input_ids": [[1, 2], [3, 4], [0, 1]], "labels": [0, 1, 1]})
    data = named_data(table)
    assert data is not None and isinstance(data.x, Features)
    assert data.x.tensors["input_ids"].tolist() == [[1, 2], [3, 4], [0, 1]]
    assert data.y.tolist() == [0, 1, 1]


def test_labels_among_the_inputs_train_on_the_models_own_loss() -> None:
    assert isinstance(default_loss(tokens()), ModelLoss)
    assert isinstance(default_loss(Features({"input_ids": torch.zeros(4, 2)})), CrossEntropy)
    assert isinstance(default_loss(torch.zeros(4, 2)), CrossEntropy)
    model = OwnLoss(shift=1)
    x = tokens()
    own = model(**x.tensors)["loss"]
    assert torch.equal(batch_loss(model, ModelLoss(), x, x.tensors["labels"]), own)
    before = model.embed.weight.detach().clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    loss = train_step(model, optimizer, ModelLoss(), x, x.tensors["labels"])
    assert torch.equal(loss.detach(), own.detach())
    assert not torch.equal(model.embed.weight, before)


@pytest.mark.parametrize(
    ("shift", "loss", "found"), [(1, "ce", 1), (0, "ce", 0), (1, "other", None)]
)
def test_the_alignment_of_scores_and_labels_is_read_off_the_models_loss(
    shift: int, loss: str, found: int | None
) -> None:
    model, x = OwnLoss(shift, loss), tokens()
    loss_fn = ModelLoss()
    check_model_fits(model, loss_fn, x, x.tensors["labels"])
    assert loss_fn.shift == found


def test_token_accuracy_follows_the_models_alignment() -> None:
    """Counting sequences (each token the one before plus one): a model that predicts the
    next token is right on every position it scores when its scores are read one ahead."""
    model = OwnLoss(shift=1)
    with torch.no_grad():
        model.embed.weight.copy_(torch.eye(VOCAB).roll(1, dims=1) * 10)  # token t -> t + 1
    x = tokens()
    loss_fn = ModelLoss()
    check_model_fits(model, loss_fn, x, x.tensors["labels"])
    _, accuracy = evaluate(model, loss_fn, TensorData(x, x.tensors["labels"]), chunk=4)
    assert accuracy == 1.0
    unaligned = ModelLoss()
    check_model_fits(OwnLoss(1, "other"), unaligned, x, x.tensors["labels"])
    assert math.isnan(evaluate(model, unaligned, TensorData(x, x.tensors["labels"]))[1])


def test_a_model_that_returns_no_loss_with_labels_is_named() -> None:
    class NoLoss(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(VOCAB, VOCAB)

        def forward(self, input_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            return self.embed(input_ids)

    x = tokens()
    with pytest.raises(LrkitValueError) as caught:
        check_model_fits(NoLoss(), ModelLoss(), x, x.tensors["labels"])
    assert caught.value.cli_message() == (
        "--model: the inputs hold labels but the model returned no loss (it returned Tensor); "
        "give --loss to compute one from its scores"
    )


def test_named_inputs_run_on_the_plain_loop_and_the_two_batch_estimator() -> None:
    model = OwnLoss()
    choice = choose_engine(EngineRequest("auto"), "sgd", model, tokens()[:2])
    assert choice.engine == "sequential"
    assert "named tensors" in (choice.reason or "")
    assert choose_estimator(model, "auto", named_inputs=True) == "two-batch"
    with pytest.raises(LrkitValueError, match="per-example estimator needs one tensor of inputs"):
        choose_estimator(model, "per-example", named_inputs=True)


def test_advise_in_python_takes_a_list_of_dicts() -> None:
    """The Python API takes Hugging Face-style data as the CLI does (``held_data``): the
    model trains on its own loss, and the race reads token accuracy one position ahead."""
    from lrkit.advise import AdviseSettings, advise

    def rows(n: int, start: int) -> list[dict[str, list[int]]]:
        return [{"input_ids": [(i + t) % VOCAB for t in range(4)]} for i in range(start, start + n)]

    def labelled(part: list[dict[str, list[int]]]) -> list[dict[str, list[int]]]:
        return [{**row, "labels": row["input_ids"]} for row in part]

    def make(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return OwnLoss(shift=1)

    settings = AdviseSettings(
        epochs=10, batch_size=8, optimizer="adam", workers=1, engine="sequential"
    )
    advice = advise(make, labelled(rows(160, 0)), labelled(rows(60, 3)), settings)
    assert advice.metric == "accuracy" and advice.lr > 0
    assert max(c.value for c in advice.candidates if c.status == "done") > 0.5


def test_find_lr_on_a_loader_of_dicts_trains_on_the_models_own_loss() -> None:
    """With no loss given, a DataLoader of dicts with labels means the model's own loss: a
    model whose scores fit no cross-entropy of the labels still runs, and the curve is its
    loss."""
    from lrkit import find_lr
    from lrkit.rangetest.settings import RangeTestSettings

    class OwnOnly(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(VOCAB, 3)

        def forward(self, input_ids: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
            scores = self.embed(input_ids).mean(1)  # (N, 3): no class axis for (N, L) labels
            return {"logits": scores, "loss": (scores - labels[:, :1]).pow(2).mean()}

    rows = [
        {"input_ids": torch.tensor([i % VOCAB, 1]), "labels": torch.tensor([i % 3, 0])}
        for i in range(64)
    ]
    loader = DataLoader(rows, batch_size=8, shuffle=True, generator=torch.Generator())
    settings = RangeTestSettings(batch_size=8, program="1e-3:9e-3:1e-3@2", rounds=1)
    result = find_lr(OwnOnly(), loader, settings)
    assert len(result.rounds[0].record.points) == 18
    with pytest.raises(LrkitValueError, match="does not fit labels"):
        find_lr(OwnOnly(), loader, settings, loss_fn=CrossEntropy())

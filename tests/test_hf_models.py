"""Hugging Face models as they come (issue 28): a ``BertForSequenceClassification`` and a
``GPT2LMHeadModel`` built from small configs (no download), given by import path, through
``lrkit find``, ``advise`` and ``noise`` with no wrapper: their ``ModelOutput`` is read for its
``.logits``, GPT-2's (batch, length, vocabulary) scores get token-level cross-entropy and
token accuracy. Given a ``datasets.Dataset`` of token ids with ``labels``, they train on their
own loss, and GPT-2's token accuracy reads its scores one position ahead, as its loss does."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from cli_run import run

pytest.importorskip("transformers")

HF_MODULE = textwrap.dedent(
    """
    import torch
    from torch import nn
    from transformers import BertConfig, BertForSequenceClassification, GPT2Config, GPT2LMHeadModel

    VOCAB, LENGTH = 32, 12


    def bert():
        config = BertConfig(
            vocab_size=VOCAB, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
            intermediate_size=32, max_position_embeddings=LENGTH, num_labels=2,
        )
        return BertForSequenceClassification(config)


    def gpt2():
        config = GPT2Config(
            vocab_size=VOCAB, n_positions=LENGTH, n_embd=16, n_layer=1, n_head=2,
            bos_token_id=0, eos_token_id=0,
        )
        return GPT2LMHeadModel(config)


    def classes():
        g = torch.Generator().manual_seed(0)
        x = torch.randint(1, VOCAB, (600, LENGTH), generator=g)
        y = (x[:, 0] > VOCAB // 2).long()
        return {"train": (x[:500], y[:500]), "val": (x[500:], y[500:])}


    def tokens():
        # Counting sequences: each token is the one before plus one (mod VOCAB).
        g = torch.Generator().manual_seed(0)
        start = torch.randint(1, VOCAB, (600, 1), generator=g)
        seq = (start + torch.arange(LENGTH + 1)) % VOCAB
        return {"train": (seq[:500, :-1], seq[:500, 1:]), "val": (seq[500:, :-1], seq[500:, 1:])}


    def _counting_ids(n, seed):
        g = torch.Generator().manual_seed(seed)
        return (torch.randint(1, VOCAB, (n, 1), generator=g) + torch.arange(LENGTH)) % VOCAB


    def bert_dataset():
        from datasets import Dataset

        ids = _counting_ids(600, 0)
        rows = {
            "input_ids": ids.tolist(),
            "attention_mask": torch.ones_like(ids).tolist(),
            "labels": (ids[:, 0] > VOCAB // 2).long().tolist(),
        }
        table = Dataset.from_dict(rows)
        return {"train": table.select(range(500)), "validation": table.select(range(500, 600))}


    def gpt2_dataset():
        from datasets import Dataset

        ids = _counting_ids(600, 1)
        table = Dataset.from_dict({"input_ids": ids.tolist(), "labels": ids.tolist()})
        return {"train": table.select(range(500)), "validation": table.select(range(500, 600))}


    def ragged_dataset():
        from datasets import Dataset

        return Dataset.from_dict({"input_ids": [[1, 2, 3], [1, 2]] * 50, "labels": [0, 1] * 50})


    class Hidden(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(VOCAB, 4)

        def forward(self, x):
            return {"hidden": self.embed(x)}
    """
)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "hfmodels.py").write_text(HF_MODULE)
    return tmp_path


def lrkit(
    capsys: pytest.CaptureFixture[str], verb: str, model: str, data: str, *more: str
) -> tuple[int, str, str]:
    """``lrkit VERB --model hfmodels:MODEL --data hfmodels:DATA --device cpu MORE``."""
    where = ["--model", f"hfmodels:{model}", "--data", f"hfmodels:{data}", "--device", "cpu"]
    return run([verb, *where, *more], capsys)


@pytest.mark.parametrize(
    ("model", "data", "optimizer"),
    [("bert", "classes", "adamw"), ("gpt2", "tokens", "sgd")],
    ids=["bert", "gpt2"],
)
def test_find_runs_a_hugging_face_model_with_no_wrapper(
    workdir: Path, capsys: pytest.CaptureFixture[str], model: str, data: str, optimizer: str
) -> None:
    more = ["--optimizer", optimizer, "--json", "f.json", "--no-plot"]
    code, out, err = lrkit(capsys, "find", model, data, *more)
    assert code == 0, err
    assert "suggested learning rate" in out
    document = json.loads((workdir / "f.json").read_text())
    assert len(document["rounds"][0]["points"]) > 100
    assert any(v is not None for v in document["suggestions"].values())


@pytest.mark.slow
def test_advise_gives_token_accuracy_for_a_language_model(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    more = ["--batch-size", "32", "--epochs", "2", "--json", "a.json"]
    code, out, err = lrkit(capsys, "advise", "gpt2", "tokens", *more)
    assert code == 0, err
    assert "advised learning rate" in out
    document = json.loads((workdir / "a.json").read_text())
    assert document["metric"] == "accuracy"
    assert document["lr"] > 0
    accuracies = [c["value"] for c in document["candidates"] if c["status"] == "done"]
    assert max(accuracies) > 0.3  # counting by one is learnt well above chance (1/32)


@pytest.mark.slow
def test_advise_and_noise_run_bert(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    adamw = ["--optimizer", "adamw", "--batch-size", "32"]
    code, _, err = lrkit(
        capsys, "advise", "bert", "classes", *adamw, "--epochs", "2", "--json", "a.json"
    )
    assert code == 0, err
    advice = json.loads((workdir / "a.json").read_text())
    assert advice["metric"] == "accuracy" and advice["lr"] > 0
    code, _, err = lrkit(
        capsys,
        "noise",
        "bert",
        "classes",
        *adamw,
        "--lr",
        "0.001",
        "--epochs",
        "1",
        "--json",
        "n.json",
    )
    assert code == 0, err
    noise = json.loads((workdir / "n.json").read_text())
    assert noise["points"] and all(p["b_simple"] > 0 for p in noise["points"])


def test_an_output_lrkit_cannot_read_exits_2_in_one_line(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = lrkit(capsys, "find", "Hidden", "tokens", "--no-plot")
    assert (code, out) == (2, "")
    assert err == (
        "lrkit find: error: --model: the model returned dict with keys ['hidden']; lrkit needs "
        "a tensor, an output with .logits (a Hugging Face ModelOutput), a dict with 'logits' "
        "or a tuple whose first element is a tensor\n"
    )


def test_find_runs_bert_on_a_datasets_dataset(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("datasets")
    more = ["--optimizer", "adamw", "--json", "f.json", "--no-plot"]
    code, out, err = lrkit(capsys, "find", "bert", "bert_dataset", *more)
    assert code == 0, err
    assert "suggested learning rate" in out
    assert json.loads((workdir / "f.json").read_text())["suggested_lr"] > 0


@pytest.mark.slow
def test_advise_trains_gpt2_on_its_own_loss_and_reads_token_accuracy_one_ahead(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """labels = input_ids, as for any causal language model: GPT-2 shifts them inside its
    loss; the accuracy that lrkit reads lines its scores up the same way (read unshifted,
    a model that learns to count would score near 0)."""
    pytest.importorskip("datasets")
    more = ["--batch-size", "32", "--epochs", "2", "--json", "a.json"]
    code, out, err = lrkit(capsys, "advise", "gpt2", "gpt2_dataset", *more)
    assert code == 0, err
    assert "advised learning rate" in out
    document = json.loads((workdir / "a.json").read_text())
    assert document["metric"] == "accuracy"
    accuracies = [c["value"] for c in document["candidates"] if c["status"] == "done"]
    assert max(accuracies) > 0.3


@pytest.mark.slow
def test_noise_runs_bert_on_a_datasets_dataset(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("datasets")
    more = ["--optimizer", "adamw", "--lr", "0.001", "--batch-size", "32", "--epochs", "1"]
    code, _, err = lrkit(capsys, "noise", "bert", "bert_dataset", *more, "--json", "n.json")
    assert code == 0, err
    noise = json.loads((workdir / "n.json").read_text())
    assert noise["estimator"] == "two-batch"
    assert noise["points"] and all(p["b_simple"] > 0 for p in noise["points"])


def test_a_dataset_of_unpadded_rows_exits_2_in_one_line(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("datasets")
    code, out, err = lrkit(capsys, "find", "bert", "ragged_dataset", "--no-plot")
    assert (code, out) == (2, "")
    assert err == (
        "lrkit find: error: --data: the column 'input_ids' holds rows of different lengths; "
        "pad them when tokenizing (padding='max_length') or give a DataLoader whose collator "
        "pads\n"
    )

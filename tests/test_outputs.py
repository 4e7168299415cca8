"""What a model returns, as lrkit reads it (``lrkit.training.outputs``): wrapped outputs,
the class axis, token-level cross-entropy and accuracy, checked against PyTorch's own loss
on the transposed scores and counts made by hand."""

from __future__ import annotations

import math
from collections import OrderedDict
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from lrkit.data.tensors import TensorData
from lrkit.errors import LrkitValueError
from lrkit.training.evaluate import evaluate
from lrkit.training.fit_check import check_model_fits
from lrkit.training.outputs import IGNORE_INDEX, CrossEntropy, class_axis, hits, output_tensor

SCORES = torch.arange(6.0).reshape(2, 3)


@pytest.mark.parametrize(
    "returned",
    [
        SCORES,
        SimpleNamespace(logits=SCORES, loss=torch.tensor(1.0)),
        {"logits": SCORES, "hidden_states": None},
        OrderedDict(loss=torch.tensor(1.0), logits=SCORES),
        (SCORES, torch.zeros(2)),
        [SCORES],
    ],
    ids=["tensor", "model-output", "dict", "ordered-dict-loss-first", "tuple", "list"],
)
def test_the_output_tensor_is_found_in_every_wrapping(returned: object) -> None:
    assert output_tensor(returned) is SCORES


@pytest.mark.parametrize(
    ("returned", "said"),
    [
        ({"hidden": SCORES}, "dict with keys ['hidden']"),
        ("text", "str"),
        ((None, SCORES), "tuple"),
        (None, "NoneType"),
    ],
)
def test_an_output_that_cannot_be_used_is_named_with_what_would_work(
    returned: object, said: str
) -> None:
    with pytest.raises(LrkitValueError) as caught:
        output_tensor(returned)
    message = caught.value.cli_message()
    assert message.startswith(f"--model: the model returned {said}; lrkit needs a tensor")
    assert "an output with .logits (a Hugging Face ModelOutput)" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("output", "target", "axis"),
    [
        ((5, 3), (5,), -1),  # classes
        ((5, 7, 11), (5, 7), -1),  # tokens
        ((5, 3, 4, 4), (5, 4, 4), 1),  # PyTorch's class axis 1 (segmentation)
        ((5, 1), (5,), -1),
        ((5,), (5,), None),
        ((5, 3), (5, 3), None),
        ((5, 3, 4), (5, 5), None),
    ],
)
def test_the_class_axis(output: tuple[int, ...], target: tuple[int, ...], axis: int | None) -> None:
    y = torch.zeros(target, dtype=torch.int64)
    assert class_axis(torch.zeros(output), y) == axis
    assert class_axis(torch.zeros(output), y.float()) is None


@given(
    st.integers(1, 4),
    st.integers(1, 6),
    st.integers(2, 9),
    st.integers(0, 2**31 - 1),
)
def test_token_cross_entropy_is_pytorchs_over_the_transposed_scores(
    n: int, length: int, vocabulary: int, seed: int
) -> None:
    """(N, L, V) against (N, L): the mean over the counted tokens, -100 left out, equal to
    F.cross_entropy on (N, V, L), PyTorch's own reading of the same scores."""
    generator = torch.Generator().manual_seed(seed)
    scores = torch.randn(n, length, vocabulary, generator=generator)
    y = torch.randint(0, vocabulary, (n, length), generator=generator)
    y[0, 0] = IGNORE_INDEX
    if y.ne(IGNORE_INDEX).sum() == 0:
        y[-1, -1] = 0
    expected = F.cross_entropy(scores.transpose(1, 2), y, ignore_index=IGNORE_INDEX)
    torch.testing.assert_close(CrossEntropy()(scores, y), expected)


@pytest.mark.parametrize("shape", [(6, 4), (6, 4, 3, 3)])
def test_every_other_shape_is_pytorchs_cross_entropy_bit_for_bit(shape: tuple[int, ...]) -> None:
    scores = torch.randn(shape, generator=torch.Generator().manual_seed(3))
    y = torch.randint(0, 4, (shape[0], *shape[2:]), generator=torch.Generator().manual_seed(4))
    assert torch.equal(CrossEntropy()(scores, y), nn.CrossEntropyLoss()(scores, y))


def test_hits_count_tokens_and_leave_out_the_ignored() -> None:
    # Argmax per token: [[1, 0, 2], [2, 2, 0]]
    scores = torch.tensor(
        [
            [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]],
            [[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]],
        ]
    )
    y = torch.tensor([[1, 1, IGNORE_INDEX], [2, IGNORE_INDEX, 0]])
    found = hits(scores, y)
    assert found is not None
    assert (int(found[0]), int(found[1])) == (3, 4)  # right: (0,0), (1,0), (1,2); wrong: (0,1)
    assert hits(scores, y.float()) is None


class Tokens(nn.Module):
    """A token model returning a dict, as some Hugging Face models do."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(5, 5)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": self.embed(x)}


def test_evaluate_gives_token_accuracy_and_token_loss() -> None:
    model = Tokens()
    with torch.no_grad():
        model.embed.weight.copy_(torch.eye(5))  # predicts the input token itself
    x = torch.tensor([[0, 1, 2], [3, 4, 0]])
    y = torch.tensor([[0, 2, IGNORE_INDEX], [3, 4, 1]])  # right on 3 of the 5 counted
    loss, accuracy = evaluate(model, CrossEntropy(), TensorData(x, y), chunk=1)
    assert accuracy == pytest.approx(3 / 5)
    expected = [
        float(F.cross_entropy(torch.eye(5)[x[i]], y[i], ignore_index=IGNORE_INDEX))
        for i in range(2)
    ]
    assert loss == pytest.approx(sum(expected) / 2)
    assert not math.isnan(loss)


def test_token_labels_beyond_the_vocabulary_are_refused_before_training() -> None:
    x = torch.tensor([[0, 1, 2]])
    with pytest.raises(LrkitValueError) as caught:
        check_model_fits(Tokens(), CrossEntropy(), x, torch.tensor([[0, 7, 1]]))
    message = caught.value.cli_message()
    assert message.startswith("--model and --data do not fit:")
    assert "(1, 3, 8) or more classes on the last axis" in message
    check_model_fits(Tokens(), CrossEntropy(), x, torch.tensor([[0, 4, IGNORE_INDEX]]))

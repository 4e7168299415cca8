"""The problems of ``bench_suggest.py``: which fixed learning rate trains this model best in
this budget?

Each problem is fixed before any recipe is tuned: its data (a seeded generator or a fixed
slice of the MNIST files), model, loss, optimizer, batch size, budget in epochs, metric and
grid of fixed learning rates (1, 2, 5 x 10^k across the range where the model trains). Nine
make the tuning set; three are held out (``held_out=True``): nothing may be tuned on them, and
they are reported apart; the fresh sets 1-5 (``fresh``) are each run once and reported apart.

A problem may also carry the user's recipe (issue 27): an optimizer by import path
(``module:Class``) with ``optimizer_args``, and a ``schedule`` with a ``warmup`` share, its
grid then a grid of peak lrs, every run trained under the recipe (``suggest_training``). The
scheduled tuning set (``scheduled_tuning``) is recipe variants of tuning problems, same
model, data, budget and grid, chosen before any of issue 27's method existed; fresh set 5
(``suggest_fresh5``) is run once, at the end of that issue.

MNIST slices (of the 24,000-image training file and the 10,000-image test file): the tuning
problems train on the first 4,000-8,000 training images and validate on images from 22,000 on
(1,000 or 2,000); the held-out problems train on images from 12,000 on and validate on the
first images of the official test set, so no held-out image is seen by a tuning problem.
The textbook's network is ``lrkit.models.MODELS["mnist-mlp"]``, which built under
``torch.manual_seed(seed)`` has the weights of ``build_model("mnist-mlp", seed)``.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from lrkit.data.mnist import load_mnist
from lrkit.data.tensors import TensorData
from lrkit.models import MODELS
from lrkit.schedules.recipe import Recipe

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def lr_grid(low: float, high: float) -> tuple[float, ...]:
    """Every 1, 2, 5 x 10^k from ``low`` to ``high`` (both included when on that ladder),
    written as decimal literals so that 0.01 in a grid equals the float 0.01 exactly."""
    out = []
    for k in range(math.floor(math.log10(low)) - 1, math.ceil(math.log10(high)) + 1):
        for mantissa in (1, 2, 5):
            lr = float(f"{mantissa}e{k}")
            if low * (1 - 1e-9) <= lr <= high * (1 + 1e-9):
                out.append(lr)
    return tuple(out)


@dataclass(frozen=True)
class Problem:
    """One benchmark problem. ``make_model()`` is called under ``torch.manual_seed(seed)``;
    ``make_data()`` gives (train, val), the same tensors on every call."""

    name: str
    kind: str
    """What is learnt: regression, classification, sequence classification, next token."""
    model: str
    """The architecture, in words."""
    optimizer: str
    """sgd, momentum (SGD with momentum 0.9), adam, adamw, or ``module:Class`` (a
    torch.optim.Optimizer), as ``lrkit.training.optimizers.make_optimizer`` takes it."""
    weight_decay: float
    batch_size: int
    epochs: float
    metric: str
    """accuracy (final validation accuracy, higher is better) or loss (final validation
    loss, lower is better)."""
    grid: tuple[float, ...]
    make_model: Callable[[], nn.Module]
    make_data: Callable[[], tuple[TensorData, TensorData]]
    loss_fn: LossFn
    held_out: bool = False
    needs_mnist: bool = False
    momentum: float = 0.9
    """For the momentum optimizer only."""
    data: str = ""
    """Where the data comes from, in words."""
    fresh: int = 0
    """Added after ``lrkit advise`` was fixed, and run once: 1 for the first such set (its
    misses led to advise's edge rule, so it has been seen since), 2 for the second (added
    after the edge rule, run once, unchanged: what it showed led to the race's horizon
    work), 3 for the third (chosen before that work began, run once), 4 for the fourth
    (chosen before the race's horizon correction was built, run once after it), 5 for the
    fifth (chosen before any code of issue 27, run once at its end: the runner leaves it out
    unless asked). Each set is reported apart from the held-out set, which was looked at
    while advise was being built."""
    optimizer_args: str = ""
    """JSON keyword arguments of the optimizer besides the lr ("" for none)."""
    schedule: str | None = None
    """None for a constant lr, else NAME[:k=v,...] as ``lrkit sweep --schedule`` takes it,
    over the budget after the warm-up (``lrkit.schedules.recipe``); the grid is then of
    peak lrs."""
    warmup: float = 0.0
    """The share of the budget warmed up linearly from 0 to the peak, in front of the
    schedule; warm-up and schedule together last the budget."""
    loss_constant: Callable[[], float] | None = None
    """A constant that the training loss leaves out, added to every loss the benchmark
    scores (never to training): the regret of a loss is a log ratio, which needs the whole
    loss, not one shifted below zero (PyTorch's ``PoissonNLLLoss`` drops log y!)."""

    def score_constant(self) -> float:
        """What is added to each validation loss scored (0 but for ``loss_constant``)."""
        return self.loss_constant() if self.loss_constant is not None else 0.0

    @property
    def role(self) -> str:
        """tuning, held out, or fresh k."""
        return f"fresh {self.fresh}" if self.fresh else "held out" if self.held_out else "tuning"

    @property
    def eval_every(self) -> float:
        """24 checks over the budget."""
        return self.epochs / 24

    @property
    def lr_recipe(self) -> Recipe:
        """The warm-up and schedule every run of the problem trains under."""
        return Recipe(self.schedule, self.warmup)

    @property
    def scheduled(self) -> bool:
        """Whether the lr moves over a run (a warm-up or a schedule)."""
        return not self.lr_recipe.constant

    def recipe_fields(self) -> dict[str, object]:
        """The recipe's fields that differ from their defaults (``RECIPE_DEFAULTS``): {} for
        a problem trained at a constant lr without optimizer arguments."""
        return {
            field: getattr(self, field)
            for field, default in RECIPE_DEFAULTS.items()
            if getattr(self, field) != default
        }

    def signature(self) -> dict[str, object]:
        """What a cached run depends on (the grid is not part of it: a widened grid keeps
        the runs it already has). The recipe's fields are in it only where they differ from
        their defaults, so a constant-lr problem's signature is what it always was."""
        return {
            "kind": self.kind,
            "model": self.model,
            "optimizer": self.optimizer,
            "weight_decay": self.weight_decay,
            "momentum": self.momentum,
            "batch_size": self.batch_size,
            "epochs": self.epochs,
            "metric": self.metric,
            "data": self.data,
            "version": DATA_VERSION,
            **self.recipe_fields(),
        }


RECIPE_DEFAULTS: dict[str, object] = {"optimizer_args": "", "schedule": None, "warmup": 0.0}
"""The recipe fields of :class:`Problem` and their defaults (a constant lr)."""


DATA_VERSION = 1
"""Bump when a problem's data or model changes in a way its fields do not show."""


# --- data ------------------------------------------------------------------------------


@functools.lru_cache(maxsize=2)
def _mnist(folder: Path) -> tuple[TensorData, TensorData]:
    mnist = load_mnist(folder)
    return mnist.train, mnist.test


def mnist_slices(
    folder: Path, train: tuple[int, int], val: tuple[str, int, int]
) -> tuple[TensorData, TensorData]:
    """Images ``train[0]:train[1]`` of the training file, and validation images
    ``val[1]:val[2]`` of the "train" or "test" file."""
    train_set, test_set = _mnist(folder)
    source = train_set if val[0] == "train" else test_set
    return (
        TensorData(train_set.x[train[0] : train[1]], train_set.y[train[0] : train[1]]),
        TensorData(source.x[val[1] : val[2]], source.y[val[1] : val[2]]),
    )


def sine_regression() -> tuple[TensorData, TensorData]:
    """g(p) = 1 + sin(pi p / 2) on [-2, 2] (the textbook's function approximation example,
    one full period): 512 training points with noise of s.d. 0.05, 256 validation points of
    g itself on an even grid, so the validation MSE is the fit's error."""
    generator = torch.Generator().manual_seed(141)
    x = torch.rand(512, 1, generator=generator) * 4 - 2
    y = 1 + torch.sin(math.pi * x / 2) + 0.05 * torch.randn(512, 1, generator=generator)
    x_val = torch.linspace(-2, 2, 256).unsqueeze(1)
    return TensorData(x, y), TensorData(x_val, 1 + torch.sin(math.pi * x_val / 2))


def teacher_regression() -> tuple[TensorData, TensorData]:
    """y = a fixed random 16-32-1 tanh network of x ~ N(0, I_16), plus noise of s.d. 0.1 on
    the 4,000 training targets; 1,000 validation targets without noise."""
    generator = torch.Generator().manual_seed(1616)
    w1 = torch.randn(16, 32, generator=generator) / 4
    w2 = torch.randn(32, 1, generator=generator) / math.sqrt(32) * 2

    def teacher(x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x @ w1) @ w2

    x = torch.randn(4000, 16, generator=generator)
    x_val = torch.randn(1000, 16, generator=generator)
    y = teacher(x) + 0.1 * torch.randn(4000, 1, generator=generator)
    return TensorData(x, y), TensorData(x_val, teacher(x_val))


POINTER_LENGTH = 24
"""Tokens per sequence, and the vocabulary: a token can name any position."""


def pointer_sequences() -> tuple[TensorData, TensorData]:
    """A lookup that needs attention: 24 tokens drawn uniformly from 24, the first replaced
    by a position k in 1..23; the label is the token at position k (24 classes). 6,000
    training and 1,000 validation sequences."""
    generator = torch.Generator().manual_seed(2024)
    n = 7000
    tokens = torch.randint(0, POINTER_LENGTH, (n, POINTER_LENGTH), generator=generator)
    tokens[:, 0] = torch.randint(1, POINTER_LENGTH, (n,), generator=generator)
    labels = tokens[torch.arange(n), tokens[:, 0]]
    return TensorData(tokens[:6000], labels[:6000]), TensorData(tokens[6000:], labels[6000:])


MARKOV_VOCAB, MARKOV_LENGTH = 12, 32


def markov_sequences() -> tuple[TensorData, TensorData]:
    """Text from a seeded second-order Markov chain over 12 tokens, each context's next-token
    distribution drawn from Dirichlet(0.2) (peaked, so there is much to learn): 2,000
    training and 500 validation sequences of 33 tokens; x is the first 32, y the next 32."""
    generator = torch.Generator().manual_seed(1212)
    alpha = torch.full((MARKOV_VOCAB,), 0.2)
    gamma = torch._standard_gamma(alpha.expand(MARKOV_VOCAB * MARKOV_VOCAB, -1), generator)
    table = gamma / gamma.sum(dim=1, keepdim=True)
    n = 2500
    seq = torch.empty(n, MARKOV_LENGTH + 1, dtype=torch.int64)
    seq[:, :2] = torch.randint(0, MARKOV_VOCAB, (n, 2), generator=generator)
    for t in range(2, MARKOV_LENGTH + 1):
        probs = table[seq[:, t - 2] * MARKOV_VOCAB + seq[:, t - 1]]
        seq[:, t] = torch.multinomial(probs, 1, generator=generator).squeeze(1)
    x, y = seq[:, :-1], seq[:, 1:]
    return TensorData(x[:2000], y[:2000]), TensorData(x[2000:], y[2000:])


# --- models ----------------------------------------------------------------------------


def sigmoid_141() -> nn.Module:
    """1-4-1: a sigmoid hidden layer of 4, a linear output (PyTorch's default init)."""
    return nn.Sequential(nn.Linear(1, 4), nn.Sigmoid(), nn.Linear(4, 1))


def spiral_points() -> tuple[TensorData, TensorData]:
    """Three interleaved spiral arms in the plane (radius 0.1 to 1 over 1.5 turns, angle noise
    of s.d. 0.15), class = arm: 3,000 training and 1,000 validation points."""
    generator = torch.Generator().manual_seed(333)

    def arms(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        label = torch.randint(0, 3, (n,), generator=generator)
        radius = 0.1 + 0.9 * torch.rand(n, generator=generator)
        angle = radius * 3 * math.pi + label * (2 * math.pi / 3)
        angle = angle + 0.15 * torch.randn(n, generator=generator)
        return torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], 1), label

    return TensorData(*arms(3000)), TensorData(*arms(1000))


def friedman_regression() -> tuple[TensorData, TensorData]:
    """Friedman's first function (Friedman 1991): y = 10 sin(pi x1 x2) + 20 (x3 - 1/2)^2 +
    10 x4 + 5 x5 of x ~ U[0, 1]^10 (five inputs are noise), standardised; noise of s.d. 0.1
    (standardised units) on the 3,000 training targets, 1,000 exact validation targets."""
    generator = torch.Generator().manual_seed(1991)

    def friedman(x: torch.Tensor) -> torch.Tensor:
        y = (
            10 * torch.sin(math.pi * x[:, 0] * x[:, 1])
            + 20 * (x[:, 2] - 0.5) ** 2
            + 10 * x[:, 3]
            + 5 * x[:, 4]
        )
        return ((y - 14.4) / 4.9).unsqueeze(1)  # its mean and s.d. under U[0, 1]^10

    x = torch.rand(3000, 10, generator=generator)
    x_val = torch.rand(1000, 10, generator=generator)
    y = friedman(x) + 0.1 * torch.randn(3000, 1, generator=generator)
    return TensorData(x, y), TensorData(x_val, friedman(x_val))


def autoencoder_slices(folder: Path) -> tuple[TensorData, TensorData]:
    """MNIST training images 20,000-23,999 and test images 4,000-4,999, each its own target."""
    train_set, test_set = _mnist(folder)
    x, x_val = train_set.x[20000:24000], test_set.x[4000:5000]
    return TensorData(x, x.clone()), TensorData(x_val, x_val.clone())


def gaussian_classes() -> tuple[TensorData, TensorData]:
    """20 classes in 32 dimensions: each a Gaussian of s.d. 1 around a random centre of s.d.
    0.45 per axis (they overlap), seen through a fixed random nonlinear warp; 4,000 training
    and 1,000 validation points."""
    generator = torch.Generator().manual_seed(2020)
    centres = 0.45 * torch.randn(20, 32, generator=generator)
    warp = torch.randn(32, 32, generator=generator) / math.sqrt(32)

    def points(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        label = torch.randint(0, 20, (n,), generator=generator)
        z = centres[label] + torch.randn(n, 32, generator=generator)
        return z + torch.tanh(2 * z @ warp), label

    return TensorData(*points(4000)), TensorData(*points(1000))


WAVE_LENGTH = 64
"""Samples per waveform."""


def wave_classes() -> tuple[TensorData, TensorData]:
    """Five waveforms (sine, square, triangle, sawtooth, a rising chirp), each with a random
    frequency of 2 to 6 cycles per window, phase and amplitude 0.5 to 1.5, in Gaussian noise
    of s.d. 0.6, one channel of 64 samples; class = waveform: 3,000 training and 1,000
    validation windows."""
    generator = torch.Generator().manual_seed(6464)

    def windows(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        label = torch.randint(0, 5, (n,), generator=generator)
        t = torch.linspace(0, 1, WAVE_LENGTH).unsqueeze(0)
        cycles = 2 + 4 * torch.rand(n, 1, generator=generator)
        phase = torch.rand(n, 1, generator=generator)
        amplitude = 0.5 + torch.rand(n, 1, generator=generator)
        u = cycles * t + phase
        frac = u - torch.floor(u)
        shapes = torch.stack(
            [
                torch.sin(2 * math.pi * u),
                torch.sign(torch.sin(2 * math.pi * u)),
                4 * torch.abs(frac - 0.5) - 1,
                2 * frac - 1,
                torch.sin(2 * math.pi * (phase + cycles * t * t)),
            ]
        )
        wave = shapes[label, torch.arange(n)] * amplitude
        wave = wave + 0.6 * torch.randn(n, WAVE_LENGTH, generator=generator)
        return wave.unsqueeze(1), label

    return TensorData(*windows(3000)), TensorData(*windows(1000))


TOPIC_VOCAB, TOPIC_LENGTH, TOPICS = 400, 24, 6


def topic_tokens() -> tuple[TensorData, TensorData]:
    """Documents of 24 tokens over 400: each of 6 topics draws its tokens from a Zipf-like
    distribution over its own random permutation of the vocabulary, mixed with 70% tokens
    from a common background one, so that no single token decides; class = topic: 5,000
    training and 1,000 validation documents."""
    generator = torch.Generator().manual_seed(4040)
    zipf = 1.0 / torch.arange(1, TOPIC_VOCAB + 1, dtype=torch.float64)
    zipf = zipf / zipf.sum()
    orders = [torch.randperm(TOPIC_VOCAB, generator=generator) for _ in range(TOPICS + 1)]
    rows = [torch.empty(TOPIC_VOCAB, dtype=torch.float64) for _ in orders]
    for row, order in zip(rows, orders, strict=True):
        row[order] = zipf
    background = rows[-1]

    def documents(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        label = torch.randint(0, TOPICS, (n,), generator=generator)
        probs = torch.stack([0.3 * rows[k] + 0.7 * background for k in range(TOPICS)])
        tokens = torch.multinomial(
            probs[label], TOPIC_LENGTH, replacement=True, generator=generator
        )
        return tokens, label

    return TensorData(*documents(5000)), TensorData(*documents(1000))


ADDING_LENGTH = 20


def adding_problem() -> tuple[TensorData, TensorData]:
    """Hochreiter & Schmidhuber's (1997) adding problem, short: 20 steps of two channels (a
    value from U[0, 1], a marker that is 1 at two random steps, one in each half); the
    target is the sum of the two marked values (predicting its mean, 1, gives MSE 1/6):
    3,000 training and 1,000 validation sequences."""
    generator = torch.Generator().manual_seed(1997)

    def sequences(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        values = torch.rand(n, ADDING_LENGTH, generator=generator)
        half = ADDING_LENGTH // 2
        first = torch.randint(0, half, (n,), generator=generator)
        second = torch.randint(half, ADDING_LENGTH, (n,), generator=generator)
        marks = torch.zeros(n, ADDING_LENGTH)
        rows = torch.arange(n)
        marks[rows, first] = 1.0
        marks[rows, second] = 1.0
        target = (values * marks).sum(dim=1, keepdim=True)
        return torch.stack([values, marks], dim=2), target

    return TensorData(*sequences(3000)), TensorData(*sequences(1000))


def franke_regression() -> tuple[TensorData, TensorData]:
    """Franke's (1979) test function on [0, 1]^2 (four Gaussian bumps): 2,000 training points
    with noise of s.d. 0.05, 1,000 exact validation points."""
    generator = torch.Generator().manual_seed(1979)

    def franke(x: torch.Tensor) -> torch.Tensor:
        a, b = 9 * x[:, 0], 9 * x[:, 1]
        y = (
            0.75 * torch.exp(-((a - 2) ** 2) / 4 - ((b - 2) ** 2) / 4)
            + 0.75 * torch.exp(-((a + 1) ** 2) / 49 - (b + 1) / 10)
            + 0.5 * torch.exp(-((a - 7) ** 2) / 4 - ((b - 3) ** 2) / 4)
            - 0.2 * torch.exp(-((a - 4) ** 2) - (b - 7) ** 2)
        )
        return y.unsqueeze(1)

    x = torch.rand(2000, 2, generator=generator)
    x_val = torch.rand(1000, 2, generator=generator)
    y = franke(x) + 0.05 * torch.randn(2000, 1, generator=generator)
    return TensorData(x, y), TensorData(x_val, franke(x_val))


COPY_VOCAB, COPY_LENGTH, COPY_DELAY = 8, 20, 3


def delayed_copies() -> tuple[TensorData, TensorData]:
    """Recall with a delay: 20 tokens drawn uniformly from 8; the target at step t is the
    token at step t - 3 (token 0 for the first three steps): 3,000 training and 500
    validation sequences."""
    generator = torch.Generator().manual_seed(303)
    x = torch.randint(0, COPY_VOCAB, (3500, COPY_LENGTH), generator=generator)
    y = torch.zeros_like(x)
    y[:, COPY_DELAY:] = x[:, :-COPY_DELAY]
    return TensorData(x[:3000], y[:3000]), TensorData(x[3000:], y[3000:])


class ResidualMlp(nn.Module):
    """A linear embedding (width 64), two pre-norm residual blocks (LayerNorm, 64-128-64 with
    GELU), a final LayerNorm and a linear classifier."""

    def __init__(self, inputs: int, classes: int, width: int = 64) -> None:
        super().__init__()
        self.embed = nn.Linear(inputs, width)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.LayerNorm(width),
                nn.Linear(width, 2 * width),
                nn.GELU(),
                nn.Linear(2 * width, width),
            )
            for _ in range(2)
        )
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        for block in self.blocks:
            h = h + block(h)
        return self.head(self.norm(h))


def autoencoder() -> nn.Module:
    """784-128-32-128-784 with ReLU and a sigmoid output, image in, image out."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 128),
        nn.ReLU(),
        nn.Linear(128, 32),
        nn.ReLU(),
        nn.Linear(32, 128),
        nn.ReLU(),
        nn.Linear(128, 784),
        nn.Sigmoid(),
        nn.Unflatten(1, (1, 28, 28)),
    )


def silu_mlp(sizes: tuple[int, ...]) -> nn.Module:
    """Linear-SiLU for each hidden size, then a linear output."""
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(sizes[:-1]):
        layers += [nn.Linear(a, b), nn.SiLU()]
    layers.append(nn.Linear(sizes[-2], sizes[-1]))
    return nn.Sequential(*layers)


def tanh_mlp(sizes: tuple[int, ...]) -> nn.Module:
    """Linear-tanh for each hidden size, then a linear output."""
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(sizes[:-1]):
        layers += [nn.Linear(a, b), nn.Tanh()]
    layers.append(nn.Linear(sizes[-2], sizes[-1]))
    return nn.Sequential(*layers)


def mlp(sizes: tuple[int, ...], batch_norm: bool = False) -> nn.Module:
    """Flatten, then Linear-[BatchNorm]-ReLU for each hidden size, then a linear output."""
    layers: list[nn.Module] = [nn.Flatten()]
    for a, b in itertools.pairwise(sizes[:-1]):
        layers.append(nn.Linear(a, b))
        if batch_norm:
            layers.append(nn.BatchNorm1d(b))
        layers.append(nn.ReLU())
    layers.append(nn.Linear(sizes[-2], sizes[-1]))
    return nn.Sequential(*layers)


def lenet() -> nn.Module:
    """LeNet-5's shape: conv5x5(6, padded)-ReLU-pool, conv5x5(16)-ReLU-pool, 400-84-10."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 84),
        nn.ReLU(),
        nn.Linear(84, 10),
    )


class TinyTransformer(nn.Module):
    """Token and position embeddings (d = 32), one pre-norm encoder layer (4 heads,
    feed-forward 64, no dropout), a final LayerNorm and a linear classifier read at the
    first position."""

    def __init__(self, vocab: int, length: int, classes: int, d: int = 32) -> None:
        super().__init__()
        self.tokens = nn.Embedding(vocab, d)
        self.positions = nn.Parameter(torch.randn(length, d) * 0.02)
        self.encoder = nn.TransformerEncoderLayer(
            d, 4, dim_feedforward=64, dropout=0.0, batch_first=True, norm_first=True
        )
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(self.tokens(x) + self.positions)
        return self.head(self.norm(h[:, 0]))


class GruLanguageModel(nn.Module):
    """Embedding (24), one GRU layer (64), a linear read-out of the next token's logits."""

    def __init__(self, vocab: int, embed: int = 24, hidden: int = 64) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.gru = nn.GRU(embed, hidden, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(self.embed(x))
        return self.head(out)  # (batch, length, vocab)


def wave_cnn() -> nn.Module:
    """conv1d 7 (16)-ReLU-pool 2, conv1d 5 (32)-ReLU, global average pool, 32-5."""
    return nn.Sequential(
        nn.Conv1d(1, 16, 7, padding=3),
        nn.ReLU(),
        nn.MaxPool1d(2),
        nn.Conv1d(16, 32, 5, padding=2),
        nn.ReLU(),
        nn.AdaptiveAvgPool1d(1),
        nn.Flatten(),
        nn.Linear(32, 5),
    )


class EmbeddingBagClassifier(nn.Module):
    """Token embeddings (32) averaged over the document, then 32-64-ReLU-classes."""

    def __init__(self, vocab: int, classes: int, d: int = 32) -> None:
        super().__init__()
        self.bag = nn.EmbeddingBag(vocab, d, mode="mean")
        self.head = nn.Sequential(nn.Linear(d, 64), nn.ReLU(), nn.Linear(64, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.bag(x))


class LstmRegressor(nn.Module):
    """One LSTM layer (32) over the sequence, a linear read-out of its last state."""

    def __init__(self, inputs: int, hidden: int = 32) -> None:
        super().__init__()
        self.lstm = nn.LSTM(inputs, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


def gelu_mlp(sizes: tuple[int, ...]) -> nn.Module:
    """Linear-GELU for each hidden size, then a linear output."""
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(sizes[:-1]):
        layers += [nn.Linear(a, b), nn.GELU()]
    layers.append(nn.Linear(sizes[-2], sizes[-1]))
    return nn.Sequential(*layers)


def dropout_mlp() -> nn.Module:
    """784-256-10 with ReLU and dropout 0.2 on the hidden layer."""
    return nn.Sequential(
        nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Dropout(0.2), nn.Linear(256, 10)
    )


def next_token_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over every position of every sequence."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


# --- the registry ----------------------------------------------------------------------


def problems(mnist_dir: Path | None) -> dict[str, Problem]:
    """Every problem by name, the tuning set first; the MNIST ones read ``mnist_dir``
    (they are listed even when it is None, and their ``make_data`` then fails)."""
    folder = mnist_dir if mnist_dir is not None else Path("MNIST folder not given")

    def mnist(train: tuple[int, int], val: tuple[str, int, int]) -> Callable[[], tuple]:  # type: ignore[type-arg]
        return functools.partial(mnist_slices, folder, train, val)

    tuning_val = ("train", 22000, 24000)
    held_out_val = ("test", 0, 2000)
    cross_entropy = nn.CrossEntropyLoss()
    mse = nn.MSELoss()
    listed = [
        Problem(
            name="sine-141",
            kind="regression",
            model="1-4-1, sigmoid hidden layer",
            optimizer="sgd",
            weight_decay=0.0,
            batch_size=16,
            epochs=200,
            metric="loss",
            grid=lr_grid(1e-3, 5),
            make_model=sigmoid_141,
            make_data=sine_regression,
            loss_fn=mse,
            data="1 + sin(pi p / 2), 512 noisy training points, 256 exact validation points",
        ),
        Problem(
            name="mnist-logistic",
            kind="classification",
            model="784-10 multinomial logistic regression",
            optimizer="sgd",
            weight_decay=0.0,
            batch_size=32,
            epochs=16,
            metric="accuracy",
            grid=lr_grid(1e-4, 20),
            make_model=MODELS["logistic"],
            make_data=mnist((0, 8000), tuning_val),
            loss_fn=cross_entropy,
            needs_mnist=True,
            data="MNIST training images 0-7,999; validation 22,000-23,999",
        ),
        Problem(
            name="mnist-relu-mlp",
            kind="classification",
            model="784-256-128-10, ReLU",
            optimizer="momentum",
            weight_decay=5e-4,
            batch_size=64,
            epochs=10,
            metric="accuracy",
            grid=lr_grid(1e-4, 5),
            make_model=functools.partial(mlp, (784, 256, 128, 10)),
            make_data=mnist((0, 6000), tuning_val),
            loss_fn=cross_entropy,
            needs_mnist=True,
            data="MNIST training images 0-5,999; validation 22,000-23,999",
        ),
        Problem(
            name="mnist-cnn",
            kind="classification",
            model="CNN: 2 x (conv3x3-ReLU-pool), 8 and 16 channels, linear (lrkit mnist-cnn)",
            optimizer="momentum",
            weight_decay=5e-4,
            batch_size=64,
            epochs=3,
            metric="accuracy",
            grid=lr_grid(1e-4, 5),
            make_model=MODELS["mnist-cnn"],
            make_data=mnist((0, 4000), ("train", 22000, 23000)),
            loss_fn=cross_entropy,
            needs_mnist=True,
            data="MNIST training images 0-3,999; validation 22,000-22,999",
        ),
        Problem(
            name="mnist-bn-mlp",
            kind="classification",
            model="784-256-128-10, BatchNorm before each ReLU",
            optimizer="momentum",
            weight_decay=5e-4,
            batch_size=64,
            epochs=10,
            metric="accuracy",
            grid=lr_grid(1e-4, 20),
            make_model=functools.partial(mlp, (784, 256, 128, 10), batch_norm=True),
            make_data=mnist((0, 6000), tuning_val),
            loss_fn=cross_entropy,
            needs_mnist=True,
            data="MNIST training images 0-5,999; validation 22,000-23,999",
        ),
        Problem(
            name="pointer-transformer",
            kind="sequence classification",
            model="1-layer pre-norm transformer, d=32, 4 heads, read at position 0",
            optimizer="adamw",
            weight_decay=0.01,
            batch_size=32,
            epochs=2,
            metric="accuracy",
            grid=lr_grid(1e-5, 0.5),
            make_model=functools.partial(
                TinyTransformer, POINTER_LENGTH, POINTER_LENGTH, POINTER_LENGTH
            ),
            make_data=pointer_sequences,
            loss_fn=cross_entropy,
            data="the token at the position named by the first token; 6,000 / 1,000 x 24",
        ),
        Problem(
            name="markov-gru",
            kind="next token",
            model="embedding 24, GRU 64, linear read-out",
            optimizer="adam",
            weight_decay=0.0,
            batch_size=32,
            epochs=6,
            metric="loss",
            grid=lr_grid(1e-5, 1),
            make_model=functools.partial(GruLanguageModel, MARKOV_VOCAB),
            make_data=markov_sequences,
            loss_fn=next_token_loss,
            data="2nd-order Markov chain over 12 tokens, Dirichlet(0.2); 2,000 / 500 x 32",
        ),
        Problem(
            name="textbook-b16",
            kind="classification",
            model="784-64-16-10, sigmoid then tanh (lrkit mnist-mlp)",
            optimizer="sgd",
            weight_decay=0.0,
            batch_size=16,
            epochs=20,
            metric="accuracy",
            grid=lr_grid(1e-3, 10),
            make_model=MODELS["mnist-mlp"],
            make_data=mnist((0, 6000), tuning_val),
            loss_fn=cross_entropy,
            needs_mnist=True,
            data="MNIST training images 0-5,999; validation 22,000-23,999",
        ),
        Problem(
            name="textbook-b128",
            kind="classification",
            model="784-64-16-10, sigmoid then tanh (lrkit mnist-mlp)",
            optimizer="sgd",
            weight_decay=0.0,
            batch_size=128,
            epochs=20,
            metric="accuracy",
            grid=lr_grid(1e-3, 10),
            make_model=MODELS["mnist-mlp"],
            make_data=mnist((0, 6000), tuning_val),
            loss_fn=cross_entropy,
            needs_mnist=True,
            data="MNIST training images 0-5,999; validation 22,000-23,999",
        ),
        # --- held out: never used to tune anything; reported apart ---
        Problem(
            name="teacher-mlp-adamw",
            kind="regression",
            model="16-64-64-1, ReLU",
            optimizer="adamw",
            weight_decay=0.01,
            batch_size=32,
            epochs=30,
            metric="loss",
            grid=lr_grid(1e-5, 1),
            make_model=functools.partial(mlp, (16, 64, 64, 1)),
            make_data=teacher_regression,
            loss_fn=mse,
            held_out=True,
            data="a random 16-32-1 tanh teacher; 4,000 noisy / 1,000 exact targets",
        ),
        Problem(
            name="mnist-wide-b512",
            kind="classification",
            model="784-512-10, ReLU",
            optimizer="momentum",
            weight_decay=5e-4,
            batch_size=512,
            epochs=15,
            metric="accuracy",
            grid=lr_grid(1e-3, 10),
            make_model=functools.partial(mlp, (784, 512, 10)),
            make_data=mnist((12000, 20000), held_out_val),
            loss_fn=cross_entropy,
            held_out=True,
            needs_mnist=True,
            data="MNIST training images 12,000-19,999; validation test images 0-1,999",
        ),
        Problem(
            name="mnist-lenet-adam",
            kind="classification",
            model="LeNet-5 shape: conv5x5 6 and 16 channels, 400-84-10, ReLU",
            optimizer="adam",
            weight_decay=0.0,
            batch_size=64,
            epochs=3,
            metric="accuracy",
            grid=lr_grid(1e-5, 0.5),
            make_model=lenet,
            make_data=mnist((12000, 16000), ("test", 0, 1000)),
            loss_fn=cross_entropy,
            held_out=True,
            needs_mnist=True,
            data="MNIST training images 12,000-15,999; validation test images 0-999",
        ),
        # --- fresh: added after lrkit advise was fixed, run once, unchanged ---
        Problem(
            name="spiral-mlp-adam",
            kind="classification",
            model="2-64-64-3, tanh",
            optimizer="adam",
            weight_decay=0.0,
            batch_size=32,
            epochs=30,
            metric="accuracy",
            grid=lr_grid(1e-5, 1),
            make_model=functools.partial(tanh_mlp, (2, 64, 64, 3)),
            make_data=spiral_points,
            loss_fn=cross_entropy,
            held_out=True,
            fresh=1,
            data="three spiral arms; 3,000 / 1,000 points",
        ),
        Problem(
            name="mnist-deep-sgd",
            kind="classification",
            model="784-128-128-128-10, ReLU",
            optimizer="sgd",
            weight_decay=0.0,
            batch_size=32,
            epochs=4,
            metric="accuracy",
            grid=lr_grid(1e-3, 5),
            make_model=functools.partial(mlp, (784, 128, 128, 128, 10)),
            make_data=mnist((16000, 20000), ("test", 2000, 4000)),
            loss_fn=cross_entropy,
            held_out=True,
            fresh=1,
            needs_mnist=True,
            data="MNIST training images 16,000-19,999; validation test images 2,000-3,999",
        ),
        # --- fresh 2: added after advise's edge rule was fixed, run once, unchanged ---
        Problem(
            name="friedman-mlp-momentum",
            kind="regression",
            model="10-64-64-1, SiLU",
            optimizer="momentum",
            weight_decay=0.0,
            batch_size=64,
            epochs=20,
            metric="loss",
            grid=lr_grid(1e-4, 2),
            make_model=functools.partial(silu_mlp, (10, 64, 64, 1)),
            make_data=friedman_regression,
            loss_fn=mse,
            held_out=True,
            fresh=2,
            data="Friedman #1, standardised; 3,000 noisy / 1,000 exact targets",
        ),
        Problem(
            name="mnist-autoencoder-adam",
            kind="reconstruction",
            model="784-128-32-128-784, ReLU, sigmoid output",
            optimizer="adam",
            weight_decay=0.0,
            batch_size=128,
            epochs=6,
            metric="loss",
            grid=lr_grid(1e-5, 0.5),
            make_model=autoencoder,
            make_data=functools.partial(autoencoder_slices, folder),
            loss_fn=mse,
            held_out=True,
            fresh=2,
            needs_mnist=True,
            data="MNIST training images 20,000-23,999; validation test images 4,000-4,999",
        ),
        Problem(
            name="gauss-resmlp-adamw",
            kind="classification",
            model="residual MLP: 2 pre-norm blocks (LayerNorm, 64-128-64, GELU)",
            optimizer="adamw",
            weight_decay=0.05,
            batch_size=64,
            epochs=10,
            metric="accuracy",
            grid=lr_grid(1e-5, 1),
            make_model=functools.partial(ResidualMlp, 32, 20),
            make_data=gaussian_classes,
            loss_fn=cross_entropy,
            held_out=True,
            fresh=2,
            data="20 overlapping warped Gaussian classes in 32 dimensions; 4,000 / 1,000",
        ),
        # --- fresh 3: chosen before advise's horizon work began, run once, unchanged ---
        Problem(
            name="wave-conv1d-momentum",
            kind="sequence classification",
            model="1-D CNN: conv7(16)-pool-conv5(32), global average pool, 32-5",
            optimizer="momentum",
            weight_decay=0.0,
            batch_size=32,
            epochs=6,
            metric="accuracy",
            grid=lr_grid(1e-4, 5),
            make_model=wave_cnn,
            make_data=wave_classes,
            loss_fn=cross_entropy,
            held_out=True,
            fresh=3,
            data="five noisy waveforms of random frequency and phase; 3,000 / 1,000",
        ),
        Problem(
            name="topics-embbag-adamw",
            kind="text classification",
            model="mean of token embeddings (400 x 32), 32-64-6, ReLU",
            optimizer="adamw",
            weight_decay=0.01,
            batch_size=64,
            epochs=8,
            metric="accuracy",
            grid=lr_grid(1e-5, 1),
            make_model=functools.partial(EmbeddingBagClassifier, TOPIC_VOCAB, TOPICS),
            make_data=topic_tokens,
            loss_fn=cross_entropy,
            held_out=True,
            fresh=3,
            data="six Zipf topics over 400 tokens in a common background; 5,000 / 1,000",
        ),
        Problem(
            name="adding-lstm-adam",
            kind="sequence regression",
            model="LSTM (2 -> 32) over 20 steps, linear read-out of the last state",
            optimizer="adam",
            weight_decay=0.0,
            batch_size=32,
            epochs=8,
            metric="loss",
            grid=lr_grid(1e-5, 1),
            make_model=functools.partial(LstmRegressor, 2),
            make_data=adding_problem,
            loss_fn=mse,
            held_out=True,
            fresh=3,
            data="the adding problem, 20 steps; 3,000 / 1,000 sequences",
        ),
        # --- fresh 4: chosen before advise's horizon correction was built, run once ---
        Problem(
            name="mnist-dropout-adamw",
            kind="classification",
            model="784-256-10, ReLU, dropout 0.2",
            optimizer="adamw",
            weight_decay=0.01,
            batch_size=64,
            epochs=4,
            metric="accuracy",
            grid=lr_grid(1e-5, 1),
            make_model=dropout_mlp,
            make_data=mnist((8000, 12000), ("test", 5000, 6000)),
            loss_fn=cross_entropy,
            held_out=True,
            fresh=4,
            needs_mnist=True,
            data="MNIST training images 8,000-11,999; validation test images 5,000-5,999",
        ),
        Problem(
            name="franke-mlp-adam",
            kind="regression",
            model="2-64-64-1, GELU",
            optimizer="adam",
            weight_decay=0.0,
            batch_size=32,
            epochs=30,
            metric="loss",
            grid=lr_grid(1e-5, 1),
            make_model=functools.partial(gelu_mlp, (2, 64, 64, 1)),
            make_data=franke_regression,
            loss_fn=mse,
            held_out=True,
            fresh=4,
            data="Franke's function on the unit square; 2,000 noisy / 1,000 exact points",
        ),
        Problem(
            name="copy-gru-adamw",
            kind="sequence to sequence",
            model="embedding (16), GRU (48), linear read-out of each step's token",
            optimizer="adamw",
            weight_decay=0.01,
            batch_size=32,
            epochs=6,
            metric="loss",
            grid=lr_grid(1e-5, 1),
            make_model=functools.partial(GruLanguageModel, COPY_VOCAB, 16, 48),
            make_data=delayed_copies,
            loss_fn=next_token_loss,
            held_out=True,
            fresh=4,
            data="recall of the token three steps back, 20 tokens over 8; 3,000 / 500",
        ),
    ]
    from suggest_fresh5 import fresh_5  # it builds on this module's models

    tuning = [p for p in listed if p.role == "tuning"]
    others = [p for p in listed if p.role != "tuning"]
    scheduled = scheduled_tuning({p.name: p for p in tuning})
    return {p.name: p for p in (*tuning, *scheduled, *others, *fresh_5().values())}


def scheduled_tuning(tuning: dict[str, Problem]) -> list[Problem]:
    """The scheduled tuning set (issue 27's method is tuned on it): recipe variants of tuning
    problems, each with the base's model, data, budget and grid (now of peak lrs), named
    with the recipe as a suffix; chosen before any of that method existed. One also trains
    with an optimizer given by import path: mnist-bn-mlp's SGD with momentum becomes
    ``torch.optim:AdamW`` with betas (0.9, 0.95) (its weight decay kept)."""

    def variant(
        base: str, suffix: str, schedule: str, warmup: float, optimizer: str = "", args: str = ""
    ) -> Problem:
        problem = tuning[base]
        return dataclasses.replace(
            problem,
            name=f"{base}-{suffix}",
            schedule=schedule,
            warmup=warmup,
            optimizer=optimizer or problem.optimizer,
            optimizer_args=args,
        )

    return [
        variant("mnist-cnn", "cosine", "cosine", 0.05),
        variant("mnist-relu-mlp", "cosine", "cosine", 0.05),
        variant("textbook-b16", "linear", "linear", 0.0),
        variant("pointer-transformer", "cosine", "cosine", 0.1),
        variant("markov-gru", "wsd", "wsd", 0.05),
        variant(
            "mnist-bn-mlp",
            "adamw-cosine",
            "cosine",
            0.05,
            "torch.optim:AdamW",
            '{"betas": [0.9, 0.95]}',
        ),
    ]

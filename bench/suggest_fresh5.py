"""Fresh set 5 of ``bench_suggest.py``: chosen and committed before any code of issue 27
(advice for the user's schedule and optimizer, judged at the full budget), to be run once,
at the end of that work, and reported apart from every other set.

Every problem is of a kind the benchmark did not hold (multi-label, counts, a quantile, sets,
counting objects in images, tabular data with categorical features). Three train with a
linear warm-up and cosine decay to zero over the budget and three with an optimizer given by
import path (``module:Class``, as ``--optimizer`` will take it), two of them both; one warms
up and decays by WSD; one is plain SGD at a constant lr.
A problem's ``schedule`` is spelled as ``lrkit sweep --schedule`` takes it; ``warmup`` is a
share of the budget in front of it, and the schedule runs over the rest, so that warm-up and
schedule together last the whole budget (``lrkit.schedules.recipe``). Its grid is of peak
lrs, every grid run trained under the same schedule and warm-up (issue 27: "The grids for
scheduled problems train under the same schedule"). Each data set is drawn by its own seeded
generator.

The problems are ``suggest_problems.Problem``s with ``fresh=5``, listed by
``suggest_problems.problems()``; ``bench_suggest.py`` leaves them out unless given
``--include-fresh5`` (they are run once, at the end of issue 27). Nothing here changes after
the commit that chose them but the plumbing that passes their fields on.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import nn

from lrkit.data.tensors import TensorData
from suggest_problems import Problem, lr_grid, mlp, tanh_mlp

# --- data ------------------------------------------------------------------------------


def multilabel_tags() -> tuple[TensorData, TensorData]:
    """8 tags of points x ~ N(0, I_24): tag j is on where a fixed random 24-16-8 tanh
    teacher's logit j plus logistic noise of scale 0.3 is above 0; 4,000 training and 1,000
    validation points (the validation tags drawn the same way)."""
    generator = torch.Generator().manual_seed(5001)
    w1 = torch.randn(24, 16, generator=generator) / math.sqrt(24) * 2
    w2 = torch.randn(16, 8, generator=generator) / math.sqrt(16) * 3

    def points(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(n, 24, generator=generator)
        u = torch.rand(n, 8, generator=generator).clamp(1e-6, 1 - 1e-6)
        noise = 0.3 * torch.log(u / (1 - u))
        return x, (torch.tanh(x @ w1) @ w2 + noise > 0).float()

    return TensorData(*points(4000)), TensorData(*points(1000))


def poisson_counts() -> tuple[TensorData, TensorData]:
    """Counts y ~ Poisson(exp(f(x))), x ~ U[-1, 1]^10, f a fixed random 10-24-1 tanh network
    shifted to a mean rate of about 3; 4,000 training and 1,000 validation points. The model
    outputs log rates (``PoissonNLLLoss(log_input=True)``)."""
    generator = torch.Generator().manual_seed(5002)
    w1 = torch.randn(10, 24, generator=generator) / math.sqrt(10) * 2
    w2 = torch.randn(24, 1, generator=generator) / math.sqrt(24)

    def points(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.rand(n, 10, generator=generator) * 2 - 1
        rate = torch.exp(1.0 + torch.tanh(x @ w1) @ w2)
        return x, torch.poisson(rate, generator=generator)

    return TensorData(*points(4000)), TensorData(*points(1000))


def poisson_log_factorial() -> float:
    """The mean of log y! over the validation counts: the part of the Poisson negative
    log-likelihood that ``PoissonNLLLoss(log_input=True)`` leaves out (its loss is
    exp(x) - y x, below zero once fitted). Added to the losses the benchmark scores
    (``Problem.loss_constant``), never to training, where it has no gradient."""
    _, val = poisson_counts()
    return float(torch.lgamma(val.y + 1).mean())


def heteroscedastic_quantile() -> tuple[TensorData, TensorData]:
    """y = sin(3x) + (0.1 + 0.4 |x|) e, e ~ N(0, 1), x ~ U[-2, 2]: the model fits the 0.9
    quantile (pinball loss); 3,000 training and 1,000 validation points."""
    generator = torch.Generator().manual_seed(5003)

    def points(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.rand(n, 1, generator=generator) * 4 - 2
        e = torch.randn(n, 1, generator=generator)
        return x, torch.sin(3 * x) + (0.1 + 0.4 * x.abs()) * e

    return TensorData(*points(3000)), TensorData(*points(1000))


SET_SIZE = 12


def point_sets() -> tuple[TensorData, TensorData]:
    """Sets of 12 points in the plane, each N(c, I / 4) around a random centre c ~ N(0, I):
    class = how many of the 12 lie in the unit disc (0-3, 4-6, 7-12: three classes); 4,000
    training and 1,000 validation sets, the points in random order."""
    generator = torch.Generator().manual_seed(5004)

    def sets(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        centre = torch.randn(n, 1, 2, generator=generator)
        points = centre + 0.5 * torch.randn(n, SET_SIZE, 2, generator=generator)
        inside = (points.norm(dim=-1) < 1).sum(dim=1)
        label = (inside >= 4).long() + (inside >= 7).long()
        return points, label

    return TensorData(*sets(4000)), TensorData(*sets(1000))


BLOB_IMAGE = 16


def blob_counts() -> tuple[TensorData, TensorData]:
    """16 x 16 images of 0 to 6 Gaussian blobs (s.d. 1 pixel, brightness 0.6 to 1.0) at
    random places, in pixel noise of s.d. 0.15; the target is the number of blobs (a
    regression, MSE): 3,000 training and 1,000 validation images."""
    generator = torch.Generator().manual_seed(5005)
    grid = torch.arange(BLOB_IMAGE, dtype=torch.float32)

    def images(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        count = torch.randint(0, 7, (n,), generator=generator)
        where = torch.rand(n, 6, 2, generator=generator) * (BLOB_IMAGE - 3) + 1.5
        bright = 0.6 + 0.4 * torch.rand(n, 6, generator=generator)
        present = (torch.arange(6).unsqueeze(0) < count.unsqueeze(1)).float()
        dy = (grid.view(1, 1, -1, 1) - where[..., 0].view(n, 6, 1, 1)) ** 2
        dx = (grid.view(1, 1, 1, -1) - where[..., 1].view(n, 6, 1, 1)) ** 2
        blobs = torch.exp(-(dy + dx) / 2) * (bright * present).view(n, 6, 1, 1)
        image = blobs.sum(dim=1) + 0.15 * torch.randn(
            n, BLOB_IMAGE, BLOB_IMAGE, generator=generator
        )
        return image.unsqueeze(1), count.float().unsqueeze(1)

    return TensorData(*images(3000)), TensorData(*images(1000))


CATEGORIES = (12, 7, 30)
"""Levels of the three categorical columns."""
NUMERIC = 6


def tabular_mixed() -> tuple[TensorData, TensorData]:
    """Rows of 6 numeric columns N(0, 1) and 3 categorical ones (12, 7 and 30 levels, drawn
    with unequal frequencies), stored as one float tensor (the categories as their codes);
    class (4) = the argmax of a fixed score: a random linear map of the numbers, a random
    effect per level of each category, and one interaction (category 1 x the first number),
    plus Gumbel noise of scale 0.5; 5,000 training and 1,000 validation rows."""
    generator = torch.Generator().manual_seed(5006)
    linear = torch.randn(NUMERIC, 4, generator=generator)
    effects = [torch.randn(k, 4, generator=generator) for k in CATEGORIES]
    slopes = torch.randn(CATEGORIES[1], 4, generator=generator)
    weights = [torch.rand(k, generator=generator) + 0.2 for k in CATEGORIES]

    def rows(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        numbers = torch.randn(n, NUMERIC, generator=generator)
        codes = [torch.multinomial(w, n, replacement=True, generator=generator) for w in weights]
        score = numbers @ linear + sum(e[c] for e, c in zip(effects, codes, strict=True))
        score = score + slopes[codes[1]] * numbers[:, :1]
        u = torch.rand(n, 4, generator=generator).clamp(1e-9, 1 - 1e-9)
        label = (score - 0.5 * torch.log(-torch.log(u))).argmax(dim=1)
        table = torch.cat([numbers, torch.stack(codes, dim=1).float()], dim=1)
        return table, label

    return TensorData(*rows(5000)), TensorData(*rows(1000))


# --- models ----------------------------------------------------------------------------


class DeepSet(nn.Module):
    """phi: 2-64-64 ReLU on each point, mean over the set, rho: 64-64-3 ReLU (Zaheer et al.
    2017)."""

    def __init__(self) -> None:
        super().__init__()
        self.phi = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU())
        self.rho = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3))

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        pooled: torch.Tensor = self.rho(self.phi(points).mean(dim=1))
        return pooled


def counting_cnn() -> nn.Module:
    """conv 3x3 (8), ReLU, max-pool, conv 3x3 (16), ReLU, global sum, linear to one count."""
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(2),
        SumPool(),
        nn.Linear(16, 1),
    )


class SumPool(nn.Module):
    """The sum over the last dimension (a count grows with what the image holds)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(dim=-1)


class TabularNet(nn.Module):
    """An embedding of 4 per categorical column beside the numbers, then 18-64-64-4 ReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.embeddings = nn.ModuleList(nn.Embedding(k, 4) for k in CATEGORIES)
        width = NUMERIC + 4 * len(CATEGORIES)
        self.head = mlp((width, 64, 64, 4))

    def forward(self, table: torch.Tensor) -> torch.Tensor:
        numbers, codes = table[:, :NUMERIC], table[:, NUMERIC:].long()
        parts = [numbers, *(e(codes[:, i]) for i, e in enumerate(self.embeddings))]
        logits: torch.Tensor = self.head(torch.cat(parts, dim=1))
        return logits


# --- losses ----------------------------------------------------------------------------

QUANTILE = 0.9


def pinball_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The quantile (pinball) loss at ``QUANTILE``: mean of max(q r, (q - 1) r), r = y - f."""
    r = target - prediction
    return torch.maximum(QUANTILE * r, (QUANTILE - 1) * r).mean()


def fresh_5() -> dict[str, Problem]:
    """The six problems of fresh set 5, by name (fresh 5; held out, as every fresh set is)."""
    listed = [
        Problem(
            name="tags-mlp-radam-cosine",
            kind="multi-label classification",
            model="24-128-8, ReLU, one sigmoid per tag",
            optimizer="torch.optim:RAdam",
            optimizer_args="",
            weight_decay=0.0,
            batch_size=64,
            epochs=12,
            metric="loss",
            grid=lr_grid(1e-5, 1),
            schedule="cosine",
            warmup=0.05,
            make_model=functools.partial(mlp, (24, 128, 8)),
            make_data=multilabel_tags,
            loss_fn=nn.BCEWithLogitsLoss(),
            data="8 tags of a fixed random tanh teacher with logistic noise; 4,000 / 1,000",
            held_out=True,
            fresh=5,
        ),
        Problem(
            name="counts-mlp-nadam",
            kind="count regression (Poisson)",
            model="10-64-64-1, tanh, the log rate",
            optimizer="torch.optim:NAdam",
            optimizer_args='{"betas": [0.9, 0.99]}',
            weight_decay=0.0,
            batch_size=32,
            epochs=10,
            metric="loss",
            grid=lr_grid(1e-5, 1),
            schedule=None,
            warmup=0.0,
            make_model=functools.partial(tanh_mlp, (10, 64, 64, 1)),
            make_data=poisson_counts,
            loss_fn=nn.PoissonNLLLoss(log_input=True),
            loss_constant=poisson_log_factorial,
            data="Poisson counts of a random tanh teacher's rate (mean about 3); 4,000 / 1,000",
            held_out=True,
            fresh=5,
        ),
        Problem(
            name="quantile-mlp-momentum-cosine",
            kind="quantile regression",
            model="1-64-64-1, tanh, the 0.9 quantile",
            optimizer="momentum",
            optimizer_args="",
            weight_decay=0.0,
            batch_size=32,
            epochs=20,
            metric="loss",
            grid=lr_grid(1e-5, 1),
            schedule="cosine",
            warmup=0.1,
            make_model=functools.partial(tanh_mlp, (1, 64, 64, 1)),
            make_data=heteroscedastic_quantile,
            loss_fn=pinball_loss,
            data="sin(3x) in noise that grows with |x|; 3,000 / 1,000",
            held_out=True,
            fresh=5,
        ),
        Problem(
            name="sets-deepset-adamw-wsd",
            kind="set classification",
            model="Deep Sets: 2-64-64 per point, mean, 64-64-3",
            optimizer="adamw",
            optimizer_args="",
            weight_decay=0.01,
            batch_size=64,
            epochs=10,
            metric="accuracy",
            grid=lr_grid(1e-5, 1),
            schedule="wsd",
            warmup=0.05,
            make_model=DeepSet,
            make_data=point_sets,
            loss_fn=nn.CrossEntropyLoss(),
            data="sets of 12 points, class = how many lie in the unit disc; 4,000 / 1,000",
            held_out=True,
            fresh=5,
        ),
        Problem(
            name="blobs-cnn-sgd",
            kind="counting objects in images",
            model="two 3x3 convolutions (8, 16), max-pool, global sum, linear",
            optimizer="sgd",
            optimizer_args="",
            weight_decay=0.0,
            batch_size=32,
            epochs=8,
            metric="loss",
            grid=lr_grid(1e-6, 1),
            schedule=None,
            warmup=0.0,
            make_model=counting_cnn,
            make_data=blob_counts,
            loss_fn=nn.MSELoss(),
            data="16 x 16 images of 0-6 Gaussian blobs in noise; 3,000 / 1,000",
            held_out=True,
            fresh=5,
        ),
        Problem(
            name="tabular-embed-adam-cosine",
            kind="tabular classification (numeric and categorical columns)",
            model="an embedding of 4 per category beside 6 numbers, 18-64-64-4 ReLU",
            optimizer="torch.optim:Adam",
            optimizer_args='{"amsgrad": true}',
            weight_decay=0.0,
            batch_size=128,
            epochs=15,
            metric="accuracy",
            grid=lr_grid(1e-5, 1),
            schedule="cosine",
            warmup=0.05,
            make_model=TabularNet,
            make_data=tabular_mixed,
            loss_fn=nn.CrossEntropyLoss(),
            data="6 numeric and 3 categorical columns, 4 classes of a noisy score; 5,000 / 1,000",
            held_out=True,
            fresh=5,
        ),
    ]
    return {p.name: p for p in listed}

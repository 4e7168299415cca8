"""``lrkit laws``'s options, checked before torch loads and before any data is read, each
refusal naming its option. ``cli.laws_command`` calls these in the order it reports them:
the ladder's sizes, the targets, the lists, the optimizer, the grid, the engine, the run,
the outputs and the store, the ladder's shape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lrkit import validation as check
from lrkit.cli.options import check_device
from lrkit.cli.output import Outputs, check_output_file, check_outputs
from lrkit.errors import LrkitValueError
from lrkit.laws.settings import LawsSettings
from lrkit.sweep.engines.registry import EngineRequest, check_address, check_engine, check_workers
from lrkit.sweep.store_schema import check_path as check_store_path


def parse_list(option: str, text: str, kind: type) -> tuple[Any, ...]:
    """A comma-separated ladder of positive values, sorted."""
    from lrkit.sweep.definition import parse_grid

    return tuple(sorted(parse_grid(option, text, kind)))


def size_ladder(
    widths: str | None, depths: str | None, predict_width: int | None, predict_depth: int | None
) -> tuple[str, tuple[int, ...], int | None]:
    """--widths or --depths (one of them): the axis, its sizes, and the size to predict at
    (--predict-width with widths, --predict-depth with depths, refusing the other)."""
    if (widths is None) == (depths is None):
        raise LrkitValueError("give the ladder's sizes as --widths or --depths (one of them)")
    axis = "width" if widths is not None else "depth"
    sizes = parse_list(f"--{axis}s", widths if widths is not None else depths or "", int)
    other = predict_depth if axis == "width" else predict_width
    if other is not None:
        raise LrkitValueError(
            f"--predict-{'depth' if axis == 'width' else 'width'}: the ladder is of {axis}s; "
            f"give --predict-{axis}"
        )
    return axis, sizes, predict_width if axis == "width" else predict_depth


def check_targets(
    axis: str,
    size: int | None,
    examples: int | None,
    epochs: float | None,
    batch_size: int | None,
) -> None:
    """The --predict-* options given, each in its range."""
    from lrkit.advise.settings import MAX_EPOCHS
    from lrkit.batchsize.settings import MAX_BATCH_SIZE
    from lrkit.laws.points import MAX_EXAMPLES, check_size

    if size is not None:
        check_size(f"predict_{axis}", size)
    if examples is not None:
        check.int_in("predict_examples", examples, 1, MAX_EXAMPLES, "training examples")
    if epochs is not None:
        check.float_in("predict_epochs", epochs, 0.0, MAX_EPOCHS, low_open=True, high_open=False)
    if batch_size is not None:
        check.int_in("predict_batch_size", batch_size, 1, MAX_BATCH_SIZE)


def check_point_grid(lr: float | None, octaves: int, per_octave: int, repeats: int) -> None:
    """--lr positive where given, --octaves and --per-octave in their ranges, and --repeats
    such that a point's grid, widened as far as it may be, holds no more trials than a sweep
    runs."""
    from lrkit.laws.ladder import MAX_WIDENINGS, check_grid
    from lrkit.sweep.definition import check_grid_size

    if lr is not None:
        check.positive_float("lr", lr)
    octaves, per_octave = check_grid(octaves, per_octave)
    repeats = check.positive_int("repeats", repeats)
    lrs = (2 * octaves + MAX_WIDENINGS) * per_octave + 1
    check_grid_size(lrs * repeats, f"{lrs} lrs of a widened grid x {repeats} --repeats")


def engine_request(engine: str, workers: int | None, address: str | None) -> EngineRequest:
    """--engine, --workers and --address, as ``lrkit sweep`` takes them."""
    check_engine(engine)
    workers = check_workers(workers, engine)
    check_address(engine, address)
    return EngineRequest(engine, workers, address)


def check_run(device: str, seed: int, check_transfer: bool, axis: str) -> None:
    """--device, --seed, and --check-transfer only on a ladder of widths."""
    check_device(device)
    check.seed("seed", seed)
    if check_transfer and axis != "width":
        raise LrkitValueError("--check-transfer: the coordinate check needs a --widths ladder")


def laws_outputs(
    store: Path, json_file: Path | None, plot: Path | None, report_file: Path | None
) -> Outputs:
    """--plot's format, the store's path (a file lrkit can create or a store it can open),
    and the outputs, each writable and none of them the store."""
    if plot is not None:
        from lrkit.plots.figure import check_plot_path

        check_plot_path(plot)
    check_output_file("--store", store)
    check_store_path(store, writing=True, must_exist=False)
    return check_outputs(
        [("--json", json_file), ("--plot", plot), ("--report", report_file)],
        others=[("--store", store)],
        kept=f"finished runs are kept in {store}: run again to write it",
    )


def check_shape(settings: LawsSettings) -> None:
    """The ladder's shape, before any data is loaded (its examples stand at 1 where they are
    all the training set's, not yet known): enough groups for the law that predicts the lr,
    and a --predict-batch-size that law can take."""
    from lrkit.laws.analysis import check_ladder, check_target_batch

    shape = settings.ladder(1)
    check_ladder(shape)
    check_target_batch(shape, settings.predict_batch_size)

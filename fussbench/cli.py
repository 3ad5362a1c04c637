"""The ``fussbench`` command line: one command per pipeline stage.

Every command reads ``params.yaml`` (``--params``) and accepts ``-S key=value`` overrides,
like ``dvc exp run -S``. Bad input ends with one line on stderr and exit status 2.
"""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from functools import wraps
from pathlib import Path
from typing import Annotated, Any

import typer

from fussbench.errors import FussbenchError
from fussbench.params import load_params

app = typer.Typer(
    help="Federated Unsupervised Semantic Segmentation benchmark. Stages run in order: "
    "download → features / partition → federate (one run) or the comparison matrix → "
    "collect. `dvc repro` runs them all; every knob lives in params.yaml.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)

ParamsOption = Annotated[
    Path, typer.Option("--params", "-p", help="The params file (every knob lives there).")
]
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set", "-S", help="Override a param, e.g. -S train.local_steps=50 (repeatable)."
    ),
]


def _friendly(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a FussbenchError into one line on stderr and exit status 2."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except FussbenchError as error:
            typer.secho(f"fussbench: error: {error}", err=True, fg=typer.colors.RED)
            raise typer.Exit(code=2) from None

    return wrapper


DatasetOption = Annotated[
    str | None,
    typer.Option(help="Dataset to work on (default: the dataset of the setup in params)."),
]


@app.command()
@_friendly
def download(
    params: ParamsOption = Path("params.yaml"),
    overrides: SetOption = None,
    dataset: DatasetOption = None,
    mirror: Annotated[
        Path | None,
        typer.Option(help="Local mirror folder holding DATASET/ (overrides download.mirror)."),
    ] = None,
) -> None:
    """Fetch the dataset (or copy it from a local mirror) into data/raw/DATASET and
    validate it: counts per split, image/label pairing, sizes and label values."""
    from stages import download as stage

    root = stage.run(load_params(params, overrides), dataset, mirror)
    typer.echo(f"dataset ready at {root}")


@app.command()
@_friendly
def partition(params: ParamsOption = Path("params.yaml"), overrides: SetOption = None) -> None:
    """Split the training split into clients (domain, iid, dirichlet or quantity) as the
    setup says (-S setup=NAME): one manifest per client plus summary.csv and
    partition.json in data/partitions/SETUP."""
    from stages import partition as stage

    out_dir = stage.run(load_params(params, overrides))
    typer.echo(f"partition written to {out_dir}")


@app.command()
@_friendly
def features(
    params: ParamsOption = Path("params.yaml"),
    overrides: SetOption = None,
    dataset: DatasetOption = None,
) -> None:
    """Run the frozen backbone once over every split and cache float16 dense features in
    data/features/DATASET/BACKBONE/SPLIT/."""
    from stages import features as stage

    out_dir = stage.run(load_params(params, overrides), dataset)
    typer.echo(f"features cached in {out_dir}")


@app.command()
@_friendly
def federate(
    params: ParamsOption = Path("params.yaml"),
    overrides: SetOption = None,
    out: Annotated[Path, typer.Option(help="Folder for metrics.json, rounds.csv, ...")] = Path(
        "runs/main"
    ),
    method: Annotated[
        str | None,
        typer.Option(
            help="A comparison cell AGGREGATOR[.MODE][.WEIGHTING], e.g. "
            "fedcc_maximin.faithful or fedavg.uniform; sets aggregator, federation.mode "
            "and federation.weighting."
        ),
    ] = None,
    all_seeds: Annotated[
        bool,
        typer.Option(
            "--all-seeds",
            help="Run every seed of `seeds`, runtime.workers at a time, into OUT/seedK/.",
        ),
    ] = False,
) -> None:
    """Train with the aggregator from params (local, centralized, fedavg, fedprox, fedmoon,
    fedcc_kmeans, fedcc_maximin, fedcc_matched), or score a reference (kmeans,
    kmeans_local, majority), for federation.rounds rounds of train.local_steps steps per
    client, evaluating every round. An interrupted run with the same params resumes from
    its last completed round."""
    from fussbench.federation.registry import parse_method

    extra: list[str] = []
    if method is not None:
        cell = parse_method(method)
        mode = cell.mode if cell.mode is not None else "null"
        extra = [
            f"aggregator={cell.aggregator}",
            f"federation.weighting={cell.weighting}",
            f"federation.mode={mode}",
        ]
    overrides = [*extra, *(overrides or [])]
    base = load_params(params, overrides)
    if not all_seeds:
        _echo_summary(_federate_one(params, overrides, out))
        return
    jobs = [(params, [*overrides, f"seed={seed}"], out / f"seed{seed}") for seed in base.seeds]
    workers = min(base.runtime.workers, len(jobs))
    if workers == 1:
        for job in jobs:
            _echo_summary(_federate_one(*job))
        return
    context = multiprocessing.get_context("spawn")  # no fork of a process that holds torch
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        for metrics in pool.map(_federate_one, *zip(*jobs, strict=True)):
            _echo_summary(metrics)


def _federate_one(params: Path, overrides: list[str], out: Path) -> dict[str, object]:
    """One run of the federate stage (also the unit of work of ``--all-seeds``)."""
    from stages import federate as stage

    return stage.run(load_params(params, overrides), out)


def _echo_summary(metrics: dict[str, object]) -> None:
    summary = {key: metrics[key] for key in ("setup", "method", "seed", "miou", "accuracy")}
    typer.echo(json.dumps(summary))


@app.command()
@_friendly
def collect(params: ParamsOption = Path("params.yaml"), overrides: SetOption = None) -> None:
    """Gather the final numbers of every comparison run (runs_on × compare × seeds) into
    `<reports_dir>/results.csv`, and their mean ± std over seeds into
    `<reports_dir>/results_summary.md`."""
    from stages import collect as stage

    settings = load_params(params, overrides)
    missing = stage.run(settings)
    if missing:
        typer.secho(
            f"{len(missing)} run(s) missing, marked in results.csv: " + ", ".join(missing[:5]),
            err=True,
            fg=typer.colors.YELLOW,
        )
    typer.echo(f"results written to {settings.reports_dir}/results.csv")


@app.command()
@_friendly
def calibrate(params: ParamsOption = Path("params.yaml"), overrides: SetOption = None) -> None:
    """Measure the mean raw feature cosine of self, kNN and random pairs on the training
    split: set the train.corr shifts relative to these for a new backbone."""
    from stages import calibrate as stage

    typer.echo(json.dumps(stage.run(load_params(params, overrides)), indent=2))


@app.command()
@_friendly
def bench(
    params: ParamsOption = Path("params.yaml"),
    overrides: SetOption = None,
    images: Annotated[int, typer.Option(help="How many training images to time.")] = 96,
) -> None:
    """Print, as JSON, backbone forward images/s against feature caching images/s
    (decode + resize + forward + write) for the backbone and dataset in params, and the
    seconds of one local round (`train.local_steps` batches) of a client holding those
    images on cached features (`round_s_cached`) against the same round with the backbone
    recomputed on every batch (`round_s_recompute`), as the original code does."""
    from stages import bench as stage

    typer.echo(json.dumps(stage.run(load_params(params, overrides), images), indent=2))


if __name__ == "__main__":
    app()

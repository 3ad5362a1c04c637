"""The ``fussbench`` command line: one command per pipeline stage.

Every command reads ``params.yaml`` (``--params``) and accepts ``-S key=value`` overrides,
like ``dvc exp run -S``. Bad input ends with one line on stderr and exit status 2.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from collections.abc import Callable
from functools import partial, wraps
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from fussbench.errors import FussbenchError
from fussbench.params import load_params
from fussbench.paths import seed_dir

if TYPE_CHECKING:
    from fussbench.analysis.rescoring import Effect
    from fussbench.engines.flower.launcher import Connection
    from fussbench.params import Params
    from fussbench.studies.scheduler import FederateJob
    from fussbench.studies.trainer import Trainer

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


def _warn(message: str) -> None:
    """One yellow line on stderr: the command went on, but something is incomplete."""
    typer.secho(message, err=True, fg=typer.colors.YELLOW)


DatasetOption = Annotated[
    str | None,
    typer.Option(help="Dataset to work on (default: the dataset of the setup in params)."),
]


@app.command()
@_friendly
def check(
    params: ParamsOption = Path("params.yaml"),
    overrides: SetOption = None,
    marker: Annotated[
        Path | None,
        typer.Option(
            help="Also write this file, whose text never changes (the DVC stage `check` "
            "writes it so that every later stage waits for the check without rerunning)."
        ),
    ] = None,
) -> None:
    """Check every param, the method names and knobs against the method registry, in
    seconds: the pipeline's first stage, so a bad `dvc exp run -S` fails before any work."""
    from fussbench.atomic import write_text
    from fussbench.methods.check import load_checked_params

    settings = load_checked_params(params, overrides)
    settings.setups_in_use()
    if marker is not None:
        write_text(marker, "params checked by `fussbench check`\n")
    typer.echo(f"{params}: ok")


@app.command()
@_friendly
def methods(
    server_sees: Annotated[
        bool,
        typer.Option(
            "--server-sees",
            help="Instead: what the server sees of each client under every federated "
            "method, and whether secure aggregation and central DP can serve it.",
        ),
    ] = False,
) -> None:
    """List every method params may name (`aggregator`, `compare`), from the method
    registry: family, modes, knobs under `federation:` with their defaults and ranges, what
    each declares (baseline, auto K, client term, what the server needs) and what it is."""
    from fussbench.methods.listing import methods_table, server_sees_table

    typer.echo(server_sees_table() if server_sees else methods_table(), nl=False)


@app.command(name="privacy-budget")
@_friendly
def privacy_budget(
    params: ParamsOption = Path("params.yaml"),
    overrides: SetOption = None,
    epsilon: Annotated[
        list[float] | None,
        typer.Option(help="A target epsilon: also print the sigma that stays within it."),
    ] = None,
) -> None:
    """The privacy a run spends under `privacy:` over `federation.rounds` rounds (set them
    with -S, e.g. -S privacy.mechanism=central -S privacy.sample_rate=0.25 -S
    federation.rounds=20): epsilon at privacy.delta of privacy.noise_multiplier (or of the
    sigma privacy.target_epsilon calibrates), from the accountant, and the noise multiplier
    each `--epsilon` needs (repeatable). With privacy.mechanism none, both mechanisms are
    shown."""
    from fussbench.privacy.accounting import budget_table, calibrated

    settings = load_params(params, overrides)
    rounds = settings.federation.rounds
    typer.echo(budget_table(calibrated(settings.privacy, rounds), rounds, epsilon or []), nl=False)


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
def inspect(
    params: ParamsOption = Path("params.yaml"),
    overrides: SetOption = None,
    dataset: DatasetOption = None,
) -> None:
    """Describe your own folder (`--dataset folder`, folder.root) without writing anything:
    images and masks that pair up, unpaired files, image sizes, the histogram of mask values
    and a ready `folder:` params snippet (mask_mode, label_values, ignore_index...) that
    reads the masks, checked against every mask."""
    from stages import inspect as stage

    typer.echo(stage.run(load_params(params, overrides), dataset), nl=False)


@app.command()
@_friendly
def partition(
    params: ParamsOption = Path("params.yaml"),
    overrides: SetOption = None,
    in_use: Annotated[
        bool,
        typer.Option(
            "--in-use",
            help="Partition every setup in use: `setup` and each of `runs_on` (the DVC stage).",
        ),
    ] = False,
) -> None:
    """Split the training split into clients (domain, groups, iid, dirichlet, quantity,
    lists, or embedding_dirichlet, which reads the feature cache: run `features` first) as
    the setup says (-S setup=NAME): one manifest per client plus summary.csv and
    partition.json in data/partitions/SETUP."""
    from stages import partition as stage

    overrides = overrides or []
    settings = load_params(params, overrides)
    setups = settings.setups_in_use() if in_use else [settings.setup]
    for setup in setups:
        out_dir = stage.run(load_params(params, [*overrides, f"setup={setup}"]))
        typer.echo(f"partition written to {out_dir}")


@app.command()
@_friendly
def features(
    params: ParamsOption = Path("params.yaml"),
    overrides: SetOption = None,
    dataset: DatasetOption = None,
    flip: Annotated[
        bool,
        typer.Option(
            "--flip",
            help="Only add the features of the mirrored images of the evaluation split "
            "(evaluation.split) to its existing cache, for evaluation.flip and flip-effect.",
        ),
    ] = False,
) -> None:
    """Run the frozen backbone once over every split and cache float16 dense features in
    data/features/DATASET/BACKBONE/SPLIT/ (under evaluation.flip: true, also the features
    of every evaluation split's mirrored images in SPLIT/flipped/). With --flip, compute
    only SPLIT/flipped/ of the evaluation split, from a cache already built."""
    from stages import features as stage

    settings = load_params(params, overrides)
    if flip:
        typer.echo(f"flipped features cached in {stage.run_flipped(settings, dataset)}")
        return
    out_dir = stage.run(settings, dataset)
    typer.echo(f"features cached in {out_dir}")


@app.command("cache-sizes")
@_friendly
def cache_sizes(
    params: ParamsOption = Path("params.yaml"),
    overrides: SetOption = None,
    out: Annotated[Path, typer.Option(help="The Markdown file to write.")] = Path(
        "reports/cache_sizes.md"
    ),
) -> None:
    """Write the feature cache's size for every paper dataset x backbone x preprocessing
    (and one COCO-Stuff site of the FUSS authors' 18 clients), computed, not measured."""
    from fussbench.features.size_table import write_report

    write_report(load_params(params, overrides), out)
    typer.echo(f"cache sizes written to {out}")


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
    engine: Annotated[
        str | None,
        typer.Option(
            help="Where the rounds run: inprocess, or flower (a SuperLink and one SuperNode "
            "per client on 127.0.0.1); sets `engine`."
        ),
    ] = None,
    superlink: Annotated[
        str | None,
        typer.Option(
            help="With engine flower: HOST:PORT of a running SuperLink whose SuperNodes hold "
            "the clients' data, instead of local ones. Run this command on the SuperLink's "
            "machine."
        ),
    ] = None,
    root_certificates: Annotated[
        Path | None,
        typer.Option(help="CA certificate (PEM) that signed the --superlink's TLS certificate."),
    ] = None,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="Reach --superlink over plain HTTP, without TLS.")
    ] = False,
    summary: Annotated[
        Path | None,
        typer.Option(
            help="Also write the run's compact scores (metrics.json, rounds.csv without wall "
            "times) into this folder: the git-tracked files DVC experiments compare."
        ),
    ] = None,
    reuse_from: Annotated[
        Path | None,
        typer.Option(
            help="Copy a finished run from under this folder (e.g. runs) instead of "
            "training, when one has the same params, code, inputs and platform (its "
            "reuse_key.txt); on the CPU it would train to the same numbers. The pipeline "
            "passes runs, so the main run and the comparison never train a run twice."
        ),
    ] = None,
) -> None:
    """Train with the aggregator from params, or score a reference, for federation.rounds
    rounds of train.local_steps steps per client, evaluating every round. An interrupted
    run with the same params, code and inputs resumes from its last completed round. The
    methods (from the registry, `fussbench methods` describes each):"""
    from fussbench.methods.check import load_checked_params

    extra = _method_overrides(method) if method is not None else []
    if engine is not None:
        extra.append(f"engine={engine}")
    overrides = [*extra, *(overrides or [])]
    base = load_checked_params(params, overrides)
    connection = _superlink_connection(base.engine, superlink, root_certificates, insecure)
    if all_seeds and summary is not None:
        raise FussbenchError("--summary records one run: leave it out with --all-seeds")
    if reuse_from is not None and connection is not None:
        raise FussbenchError(
            "--reuse-from copies runs made on this machine's data, and a --superlink run "
            "trains on its SuperNodes' data: leave out --reuse-from"
        )
    if not all_seeds:
        metrics = _federate_one(params, overrides, out, connection, reuse_from)
        if summary is not None:
            from fussbench.run.summary import write_summary

            write_summary(summary, metrics, out)
        _echo_summary(metrics)
        return
    jobs = [
        (params, [*overrides, f"seed={seed}"], seed_dir(out, seed), connection)
        for seed in base.seeds
    ]
    _federate_all(jobs, base.runtime.workers, reuse_from)


def _method_overrides(method: str) -> list[str]:
    """The params overrides of a comparison cell AGGREGATOR[.MODE][.WEIGHTING]."""
    from fussbench.studies.overrides import method_overrides

    return method_overrides(method)


def _federate_all(jobs: list[FederateJob], workers: int, reuse_from: Path | None) -> None:
    """Run ``jobs`` ``workers`` at a time (separate processes), echoing each summary."""
    from fussbench.studies.scheduler import run_jobs

    run_jobs(jobs, workers, partial(_federate_one, reuse_from=reuse_from), _echo_summary)


def _federate_one(
    params: Path,
    overrides: list[str],
    out: Path,
    superlink: Connection | None = None,
    reuse_from: Path | None = None,
) -> dict[str, object]:
    """One run of the federate stage (also the unit of work of ``--all-seeds``)."""
    from fussbench.methods.check import load_checked_params
    from stages import federate as stage

    return stage.run(load_checked_params(params, overrides), out, superlink, reuse_from)


def _superlink_connection(
    engine: str, address: str | None, root_certificates: Path | None, insecure: bool
) -> Connection | None:
    """The SuperLink connection the federate options name (None: local Flower processes).

    Raises:
        FussbenchError: TLS options without --superlink, --superlink without engine flower,
            or both --insecure and --root-certificates.
    """
    if address is None:
        if root_certificates is not None or insecure:
            raise FussbenchError("--root-certificates and --insecure go with --superlink")
        return None
    if engine != "flower":
        raise FussbenchError(f"--superlink needs engine flower (--engine flower), not '{engine}'")
    if insecure and root_certificates is not None:
        raise FussbenchError("--insecure turns TLS off: drop --root-certificates, or --insecure")
    from fussbench.engines.flower.launcher import Connection

    return Connection(address, insecure, root_certificates)


def _trainer(params: Path, overrides: list[str], workers: int) -> Trainer:
    """How the studies train their runs: the pipeline's download, features, partition and
    federate stages, ``workers`` runs at a time, each run's summary echoed."""
    from fussbench.studies.prepare import SetupSteps
    from fussbench.studies.trainer import Trainer
    from stages import download, features, partition

    steps = SetupSteps(download.run, features.run, partition.run)
    return Trainer(params, overrides, workers, _federate_one, _echo_summary, steps, typer.echo)


def _setup_params(params: Path, overrides: list[str]) -> Callable[[str], Params]:
    """The params of ``params`` with ``overrides``, then a setup chosen, per setup name."""
    return lambda setup: load_params(params, [*overrides, f"setup={setup}"])


def _echo_summary(metrics: dict[str, object]) -> None:
    """One JSON line: the run's setup, method, seed, mIoU and accuracy."""
    summary = {key: metrics[key] for key in ("setup", "method", "seed", "miou", "accuracy")}
    typer.echo(json.dumps(summary))


@app.command()
@_friendly
def convergence(
    params: ParamsOption = Path("params.yaml"),
    overrides: SetOption = None,
    report_only: Annotated[
        bool,
        typer.Option(
            "--report-only", help="Only record the runs there are and rebuild the report."
        ),
    ] = False,
) -> None:
    """Measure global mIoU against local steps: every setup × method × seed × steps of
    `convergence:` runs `convergence.rounds` rounds of that many local steps per client,
    evaluated after every round, into `convergence.out`, plus the kmeans reference of each
    setup and seed. Every run's per-round mIoU is recorded in
    `<reports_dir>/convergence_runs.csv`: commit it with the report, and the study resumes
    from it on any machine (a run it holds finished is not redone). Then
    `<reports_dir>/convergence.{md,csv,png}` show the curves and the paper and default
    budgets the rules of `convergence:` choose. A setup whose dataset, features or
    partition is missing is prepared first."""
    from fussbench.methods.check import load_checked_params
    from stages import convergence as stage

    base = load_checked_params(params, overrides)
    trainer = None if report_only else _trainer(params, overrides or [], base.runtime.workers)
    typer.echo(json.dumps(stage.run(base, trainer), indent=2))


@app.command(name="k-sweep")
@_friendly
def k_sweep(
    params: ParamsOption = Path("params.yaml"),
    overrides: SetOption = None,
    values: Annotated[str, typer.Option(help="The fixed K to train, comma-separated.")] = (
        "5,8,11,14,17,20"
    ),
    method: Annotated[str, typer.Option(help="AGGREGATOR[.MODE][.WEIGHTING] to train.")] = (
        "fedcc_kmeans"
    ),
    seeds: Annotated[str, typer.Option(help="Seeds, comma-separated.")] = "0,1,2",
    out: Annotated[Path, typer.Option(help="Folder for the runs: OUT/k<K>/seed<s>/.")] = Path(
        "studies/k_sweep"
    ),
    report: Annotated[
        Path, typer.Option(help="Write REPORT.md, REPORT.csv and REPORT.png.")
    ] = Path("reports/k_sweep"),
    auto: Annotated[
        Path | None,
        typer.Option(
            help="A profile's results.csv holding the same method's model.n_clusters auto "
            "runs on the setup: drawn at the K they chose."
        ),
    ] = None,
    report_only: Annotated[
        bool, typer.Option("--report-only", help="Only rebuild the report from finished runs.")
    ] = False,
) -> None:
    """mIoU against a fixed number of clusters K: train METHOD on the
    setup of params (-S setup=...) at every K of --values for every seed (budget, threads
    and workers from params; finished runs are kept, so an interrupted sweep resumes), then
    tabulate and draw mean ± std over seeds against K, Hungarian and majority matching,
    with --auto's runs marked at the K the federation chose."""
    from fussbench.analysis.k_sweep import parse_values
    from fussbench.studies.k_sweep import train, write_sweep

    base = load_params(params, overrides)
    ks, seed_list = parse_values(values, "values"), parse_values(seeds, "seeds")
    if min(ks) < 2:
        raise FussbenchError(f"--values '{values}': every K must be at least 2")
    if not report_only:
        trainer = _trainer(params, overrides or [], base.runtime.workers)
        train(base, ks, seed_list, method, out, trainer)
    typer.echo(write_sweep(base, ks, seed_list, method, out, report, auto))


@app.command(name="cluster-counts")
@_friendly
def cluster_counts(
    setup: Annotated[str, typer.Option(help="The setup whose runs to read.")],
    method: Annotated[str, typer.Option(help="The method folder under runs/<setup>/.")] = (
        "fedcc_kmeans"
    ),
    runs: Annotated[Path, typer.Option(help="The runs folder.")] = Path("runs"),
    out: Annotated[Path | None, typer.Option(help="Also write OUT.md and OUT.csv.")] = None,
) -> None:
    """Each client's number of clusters and the global one, per seed and round, from the
    runs' rounds.csv (model.n_clusters: auto records them), as a Markdown table."""
    from fussbench.analysis.cluster_counts import cluster_count_report

    typer.echo(cluster_count_report(runs, setup, method, out))


EffectRuns = Annotated[
    list[Path],
    typer.Argument(help="Finished trained run folders, e.g. runs/camvid_domain/*/seed*."),
]
EffectOut = Annotated[
    Path | None, typer.Option(help="Also write OUT.md and OUT.csv (one row per run).")
]


@app.command(name="crf-effect")
@_friendly
def crf_effect(
    runs: EffectRuns,
    params: ParamsOption = Path("params.yaml"),
    overrides: SetOption = None,
    out: EffectOut = None,
) -> None:
    """mIoU with and without dense-CRF refinement of the final predictions, from the runs'
    saved models: no training is repeated (needs pydensecrf2: pip install 'fussbench[crf]').
    Each run is first scored as it scored itself and must give its recorded mIoU. Reference
    rows (no model.npz) are skipped with a notice. OUT is rewritten after every run, so a
    stopped command keeps the rows it finished."""
    from fussbench.analysis.crf_effect import CRF

    _effect_report(CRF, runs, params, overrides, out)


@app.command(name="flip-effect")
@_friendly
def flip_effect(
    runs: EffectRuns,
    params: ParamsOption = Path("params.yaml"),
    overrides: SetOption = None,
    out: EffectOut = None,
) -> None:
    """mIoU with and without horizontal-flip averaging of the final predictions, from the
    runs' saved models: no training is repeated (needs the evaluation split's flipped
    features: fussbench features --flip). Each run is first scored as it scored itself and
    must give its recorded mIoU. Reference rows (no model.npz) are skipped with a notice.
    OUT is rewritten after every run, so a stopped command keeps the rows it finished."""
    from fussbench.analysis.flip_effect import FLIP

    _effect_report(FLIP, runs, params, overrides, out)


def _effect_report(
    effect: Effect, runs: list[Path], params: Path, overrides: list[str] | None, out: Path | None
) -> None:
    """Print (and with ``out`` write) the table of an effect command."""
    from fussbench.analysis.rescoring import effect_report

    params_for = _setup_params(params, overrides or [])
    typer.echo(effect_report(effect, runs, params_for, out, typer.echo, _warn))


@app.command()
@_friendly
def collect(params: ParamsOption = Path("params.yaml"), overrides: SetOption = None) -> None:
    """Gather the final numbers of every comparison run (runs_on × compare × seeds) into
    `<reports_dir>/results.csv`, and their mean ± std over seeds into
    `<reports_dir>/results_summary.md`."""
    from fussbench.methods.check import load_checked_params
    from stages import collect as stage

    settings = load_checked_params(params, overrides)
    missing = stage.run(settings)
    if missing:
        _warn(f"{len(missing)} run(s) missing, marked in results.csv: " + ", ".join(missing[:5]))
    typer.echo(f"results written to {settings.reports_dir}/results.csv")


@app.command()
@_friendly
def stats(params: ParamsOption = Path("params.yaml"), overrides: SetOption = None) -> None:
    """Paired significance tests in each setup: every federated method against `local`
    and against `fedavg`, and the FedCC variants against each other. Pairs over seeds
    (final mIoU) and over evaluation images (per-image mIoU); Wilcoxon signed-rank and
    paired t-test with Holm correction, mean difference with a bootstrap 95% CI. Reads
    `<reports_dir>/results.csv` and the runs' `images.csv`; writes
    `<reports_dir>/significance.csv` and `significance.md`."""
    from fussbench.methods.check import load_checked_params
    from stages import stats as stage

    settings = load_checked_params(params, overrides)
    reports = Path(settings.reports_dir)
    frame = stage.run(settings)
    by_seeds = frame[frame["pairing"] == "seeds"]
    if len(by_seeds) and by_seeds["p_value"].isna().all():
        _warn(
            f"no seed-paired test could be computed (at most {by_seeds['n_pairs'].max()} "
            "seed(s) per pair; a Wilcoxon test needs 6): the notes in significance.csv say "
            "why. Add seeds to `seeds` in params.yaml."
        )
    typer.echo(f"{len(frame)} test rows written to {reports}/significance.csv")


@app.command()
@_friendly
def report(
    params: ParamsOption = Path("params.yaml"),
    overrides: SetOption = None,
    qualitative: Annotated[
        bool,
        typer.Option(
            "--qualitative/--no-qualitative",
            help="Draw the qualitative grid (needs the feature caches and raw images).",
        ),
    ] = True,
) -> None:
    """Tables (Markdown, LaTeX, CSV: main, aggregation type, significance, communication),
    figures (mIoU per round, centroid distance heatmaps, qualitative grid, client class
    histograms) and an index `README.md`, all under `<reports_dir>/`, recomputed from the
    runs. Missing runs are named in the index; what exists is still rendered."""
    from stages import report as stage

    overrides = overrides or []
    from fussbench.methods.check import load_checked_params

    settings = load_checked_params(params, overrides)
    reports = Path(settings.reports_dir)
    missing = stage.run(settings, _setup_params(params, overrides) if qualitative else None)
    if missing:
        _warn(
            f"rendered without {len(missing)} item(s), listed in {reports}/README.md: "
            + "; ".join(missing[:3])
        )
    typer.echo(f"report written to {reports}/README.md")


@app.command()
@_friendly
def verify(
    params: ParamsOption = Path("params.yaml"),
    overrides: SetOption = None,
    tables: Annotated[
        bool,
        typer.Option(
            "--tables",
            help="Instead, rebuild results.csv and the main table from the runs' "
            "metrics.json and compare them with what collect / report wrote.",
        ),
    ] = False,
) -> None:
    """Check that the reports in `<reports_dir>/` and `reports/main/` are what `dvc.lock`
    records: every committed output of `federate`, `collect`, `stats` and `report` has its
    recorded hash, and so do their code, their params and the dependencies present on disk.
    CI runs it on a clean clone (no `runs/`), so a stale committed report fails. A profile
    run as an experiment (`reports/paper/`) is checked against the lock it keeps
    (`reports/paper/lock.yaml`): an output that differs fails; code or params changed since
    it ran are listed as a warning, with the command that reruns it. Exit status 1 lists
    each difference."""
    from stages import verify as stage

    result = stage.run(params, load_params(params, overrides), tables)
    for warning in result.warnings:
        _warn(warning)
    for problem in result.problems:
        typer.secho(problem, err=True, fg=typer.colors.RED)
    if result.problems:
        raise typer.Exit(code=1)
    typer.echo(f"ok: {result.checked}")


@app.command()
@_friendly
def versus(
    a: Annotated[
        Path,
        typer.Argument(help="Profile A's reports folder (results.csv, or a study's runs.csv)."),
    ],
    b: Annotated[Path, typer.Argument(help="Profile B's reports folder, the reference.")],
    pair: Annotated[
        list[str],
        typer.Option(
            "--pair",
            help="A_METHOD=B_METHOD, or one METHOD for both sides, or "
            "A_METHOD=best:M1,M2,... / worst:M1,M2,... (per setup, the listed method with the "
            "highest / lowest mean mIoU, from either profile). Repeatable.",
        ),
    ],
    out: Annotated[
        Path | None, typer.Option(help="Also write OUT.md and OUT.csv (e.g. reports/x/versus).")
    ] = None,
    params: ParamsOption = Path("params.yaml"),
    overrides: SetOption = None,
) -> None:
    """Compare two finished profiles run against run, paired by (setup, seed): e.g. auto K
    against the oracle K, fedcc_auto against the best and worst fixed FedCC variant, or
    the converged study against the paper profile.
    Prints a Markdown table: mean mIoU of each side, A − B with a bootstrap CI
    (stats.n_resamples, stats.seed), two-sided Wilcoxon and t-test p-values with Holm over
    the rows (exploratory), and seconds and bytes per round of each side."""
    from fussbench.analysis.versus import versus_report

    settings = load_params(params, overrides).stats
    typer.echo(versus_report(a, b, pair, settings.n_resamples, settings.seed, out))


@app.command()
@_friendly
def winners(
    setup: Annotated[
        list[str], typer.Option("--setup", help="A setup whose runs to count (repeatable).")
    ],
    method: Annotated[str, typer.Option(help="The method folder under runs/<setup>/.")] = (
        "fedcc_auto"
    ),
    runs: Annotated[Path, typer.Option(help="The runs folder.")] = Path("runs"),
    out: Annotated[
        Path | None, typer.Option(help="Also draw OUT.png and write OUT.csv (the counts).")
    ] = None,
) -> None:
    """Which candidate fedcc_auto chose each round: per setup and round, how many runs
    each candidate won (from the runs' metrics.json), printed as CSV; with --out, also a
    figure of the shares."""
    from fussbench.analysis.winners import winners_report

    typer.echo(winners_report(runs, setup, method, out), nl=False)


@app.command()
@_friendly
def calibrate(params: ParamsOption = Path("params.yaml"), overrides: SetOption = None) -> None:
    """Measure the mean raw feature cosine of self, kNN and random pairs on the training
    split: set the train.corr shifts relative to these for a new backbone."""
    from stages import calibrate as stage

    typer.echo(json.dumps(stage.run(load_params(params, overrides)), indent=2))


@app.command()
@_friendly
def probe(
    params: ParamsOption = Path("params.yaml"),
    overrides: SetOption = None,
    dataset: DatasetOption = None,
    cache: Annotated[
        Path | None,
        typer.Option(help="Scratch folder to build feature caches in (default: data/features)."),
    ] = None,
    image_size: Annotated[
        tuple[int, int] | None,
        typer.Option(help="HEIGHT WIDTH to cache at, not the dataset's size (needs --cache)."),
    ] = None,
    regularisation: Annotated[float, typer.Option(help="C of the logistic regression.")] = 1.0,
    out: Annotated[Path | None, typer.Option(help="Also write the JSON record here.")] = None,
) -> None:
    """Diagnostic, uses labels, never a benchmark row: fit a supervised linear probe on the
    training split's frozen features and print, as JSON, its per-class IoU on the
    evaluation split beside the k-means reference and the feature grid's own ceiling."""
    from stages import probe as stage

    settings = load_params(params, overrides)
    record = stage.run(settings, dataset, cache, image_size, regularisation, out)
    typer.echo(json.dumps(record, indent=2))


@app.command()
@_friendly
def bench(
    params: ParamsOption = Path("params.yaml"),
    overrides: SetOption = None,
    images: Annotated[int, typer.Option(help="How many training images to time.")] = 96,
    scale: Annotated[
        bool, typer.Option("--scale", help="Measure peak RSS and round time against N instead.")
    ] = False,
    scale_images: Annotated[
        str, typer.Option(help="--scale: comma-separated cache sizes N.")
    ] = "1000,5000,20000",
    out: Annotated[Path | None, typer.Option(help="Also write the JSON here.")] = None,
) -> None:
    """Print, as JSON, backbone forward images/s against feature caching images/s
    (decode + resize + forward + write) for the backbone and dataset in params, and the
    seconds of one local round (`train.local_steps` batches) of a client holding those
    images on cached features (`round_s_cached`) against the same round with the backbone
    recomputed on every batch (`round_s_recompute`), as the original code does.

    Then local training's speed in each precision the CPU multiplies natively, on
    `runtime.threads` threads as a run trains: `train_steps_per_s`, `train_peak_fraction`
    (the steps' FLOP rate against a matrix product of the head's shapes in the same run),
    `train_product_share` (the part of a step in matrix products), `train_product_bound`
    (the peak fraction if nothing else took time) and `train_slowest_ops` (the eight
    longest operations, as shares of a step).

    With `--scale`: for each N of `--scale-images`, one round on a synthetic cache of N
    lite0-sized maps (written under TMPDIR, deleted after), in a fresh process: a list
    `scale` of `{"images", "peak_rss_mb", "round_s", ...}`."""
    from stages import bench as stage

    loaded = load_params(params, overrides)
    result = stage.run_scale(loaded, scale_images, out) if scale else stage.run(loaded, images, out)
    typer.echo(json.dumps(result, indent=2))


@app.command()
@_friendly
def study(
    preset_name: Annotated[
        str | None,
        typer.Option("--preset", help="Apply this preset first (e.g. robustness)."),
    ] = None,
    params: ParamsOption = Path("params.yaml"),
    overrides: SetOption = None,
    report_only: Annotated[
        bool, typer.Option("--report-only", help="Write the report from the records only.")
    ] = False,
) -> None:
    """Run a resumable study (`study:` in params, usually from a preset): every variant ×
    setup × method × seed is a federate run into `study.out`, recorded in
    `<reports_dir>/runs.csv` as it finishes (commit it as you go), so that a
    rerun on any machine does only what is missing; then the study's report is written
    from the records. After each finished run it prints how many of its runs are done and
    about how long the rest will take at the pace so far."""
    from fussbench.methods.check import load_checked_params
    from fussbench.presets import load_preset
    from fussbench.studies.reports import study_report
    from fussbench.studies.study import run_study

    chosen = [*(load_preset(preset_name).overrides() if preset_name else []), *(overrides or [])]
    base = load_checked_params(params, chosen)
    trainer = None if report_only else _trainer(params, chosen, base.runtime.workers)
    typer.echo(json.dumps(run_study(base, trainer, study_report(base)), indent=2))


@app.command()
@_friendly
def preset(
    name: Annotated[str | None, typer.Argument(help="A preset; leave it out to list them.")] = None,
    params: ParamsOption = Path("params.yaml"),
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            "-S",
            help="An extra override after the preset's, e.g. -S folder.root=/data/mine "
            "(repeatable).",
        ),
    ] = None,
    run: Annotated[
        bool, typer.Option("--run", help="Run the `dvc exp run` command instead of printing it.")
    ] = False,
) -> None:
    """The paper's settings as ready-made params presets (fussbench/presets/*.yaml).

    Without NAME, list the presets. With NAME, check the preset (plus any -S) against the
    params file and print the `dvc exp run -S ...` command that reproduces the setting;
    with --run, run it."""
    from fussbench.presets import load_preset, preset_names

    if name is None:
        for known in preset_names():
            typer.echo(f"{known}: {load_preset(known).description}")
        return
    chosen = [*load_preset(name).overrides(), *(overrides or [])]
    from fussbench.methods.check import load_checked_params

    load_checked_params(params, chosen).setups_in_use()  # a bad preset or -S fails here, named
    command = ["dvc", "exp", "run", *(arg for item in chosen for arg in ("-S", item))]
    if not run:
        typer.echo(shlex.join(command))
        return
    raise typer.Exit(code=subprocess.run(command, check=False).returncode)


if __name__ == "__main__":
    app()

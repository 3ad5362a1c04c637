"""The ``flower`` engine's entry point: the in-process round loop's contract, on Flower.

:func:`run_flower` takes the :class:`~fussbench.federation.run.FederationRun` that
:func:`fussbench.federation.rounds.run_rounds` takes, plus where the data lie, and returns
the same :class:`RunResult`. It writes each client's data folder, starts a
SuperLink and one SuperNode per client on 127.0.0.1 (or uses the SuperLink of
``connection``), submits a generated Flower app with ``flwr run`` and hands every state
the ServerApp writes to ``on_round`` as it comes. The final global model is scored with
``evaluate`` here, on the server side, as the in-process engine scores a resumed run.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from fussbench.errors import FussbenchError
from fussbench.features.cache import FeatureSplit
from fussbench.federation.checkpoint import load_checkpoint
from fussbench.federation.run import FederationRun, RunResult, RunState
from fussbench.methods import get_spec
from fussbench.params import Params

from .launcher import Connection, local_federation, submit, write_app
from .runconfig import JobFolder, ServerJob, run_config
from .secure_sum import SumPlan, sum_plan
from .site import write_site

ROUND_TIMEOUT_S = 1800.0
"""Seconds the server waits for a round's replies before leaving silent clients out."""

NODE_TIMEOUT_S = 120.0
"""Seconds the server waits for one SuperNode per client to connect."""


class _StateForwarder:
    """Hands each state the ServerApp wrote to ``on_round``, once, in round order."""

    def __init__(
        self, folder: JobFolder, fingerprint: str, on_round: Callable[[RunState], None] | None
    ) -> None:
        self.folder = folder
        self.fingerprint = fingerprint
        self.on_round = on_round
        self.forwarded = 0
        self.last: RunState | None = None

    def __call__(self) -> bool:
        """Forward new states; True once the ServerApp has recorded its outcome."""
        finished = self.folder.read_outcome() is not None
        for path in self.folder.state_paths()[self.forwarded :]:
            state = load_checkpoint(path, self.fingerprint)
            if state is None:
                raise FussbenchError(f"{path}: state written with other params than this run's")
            if self.on_round is not None:
                self.on_round(state)
            self.last = state
            self.forwarded += 1
        return finished


def run_flower(
    run: FederationRun,
    *,
    params: Params,
    train: FeatureSplit,
    client_rows: list[np.ndarray],
    evaluation: FeatureSplit,
    fingerprint: str,
    logs_dir: Path,
    connection: Connection | None = None,
) -> RunResult:
    """Run rounds ``run.resume.round + 1 .. run.rounds`` on Flower.

    Args:
        run: what to run, as for the in-process engine.
        params: the run's params, handed to the Flower apps (training and evaluation
            settings, threads).
        train: the training split's feature cache, written out per client.
        client_rows: each client's rows of ``train`` (K arrays of row indices).
        evaluation: the evaluation split, read by the ServerApp.
        fingerprint: the run's key (:func:`fussbench.run.reuse.run_key`), stamped on the
            states the ServerApp writes.
        logs_dir: where the Flower logs are copied when the run fails.
        connection: an existing SuperLink whose SuperNodes hold the clients' data folders
            (the ServerApp runs beside it and must see this machine's files); None: start
            a SuperLink and one SuperNode per client on 127.0.0.1.

    Raises:
        FussbenchError: for a method without server aggregation, when fewer than
            ``run.min_clients`` clients finish a round (the rounds before have gone to
            ``run.on_round``), or when the Flower run fails (its logs go to ``logs_dir``).
    """
    if run.aggregator is None:
        raise FussbenchError(
            f"engine 'flower' runs federated aggregators; '{params.aggregator}' has no server "
            "aggregation: use engine=inprocess (params: engine) for it"
        )
    if run.resume is not None and run.resume.round >= run.rounds:
        return RunResult(run.resume, [run.evaluate(run.resume.models[0])])
    shutil.rmtree(logs_dir, ignore_errors=True)  # of an earlier failed run
    with tempfile.TemporaryDirectory(prefix="fussbench-flower-") as tmp:
        root = Path(tmp)
        folder = JobFolder(root / "job")
        folder.write_job(
            ServerJob(
                params=params,
                aggregator=run.aggregator,
                objective=run.objective,
                initial=run.initial,
                rounds=run.rounds,
                seed=run.seed,
                min_clients=run.min_clients,
                resume=run.resume,
                fingerprint=fingerprint,
                n_clients=len(client_rows),
                eval_dir=evaluation.directory.resolve(),
                eval_fingerprint=evaluation.fingerprint,
                n_classes=params.dataset_spec().n_classes,
                round_timeout=ROUND_TIMEOUT_S,
                node_timeout=NODE_TIMEOUT_S,
                secure=_sum_plan(params, run, train, client_rows),
            )
        )
        app_dir = write_app(
            root / "app",
            run_config(params, run.objective, train.fingerprint, folder.directory, run.fault),
        )
        forward = _StateForwarder(folder, fingerprint, run.on_round)
        try:
            if connection is not None:
                flwr_run = submit(connection, app_dir, root, forward)
            else:
                sites = [
                    write_site(root / "sites" / f"client_{client:02d}", client, train, rows)
                    for client, rows in enumerate(client_rows)
                ]
                with local_federation(root, sites) as federation:

                    def poll() -> bool:
                        federation.check()
                        return forward()

                    flwr_run = submit(federation.connection, app_dir, root, poll)
            outcome = folder.read_outcome()
            if outcome is None:
                raise FussbenchError(
                    f"the Flower run ended before its ServerApp finished: {flwr_run.last_line()}"
                )
            if outcome["error"] is not None or forward.last is None:
                raise FussbenchError(outcome["error"] or "the ServerApp ran no round")
        except FussbenchError as error:
            _keep_logs(root / "logs", logs_dir)
            raise FussbenchError(f"{error} (Flower logs: {logs_dir})") from None
    return RunResult(forward.last, [run.evaluate(forward.last.models[0])])


def _sum_plan(
    params: Params, run: FederationRun, train: FeatureSplit, client_rows: list[np.ndarray]
) -> SumPlan | None:
    """The plan of secure aggregation under ``privacy.secure_aggregation`` (None without):
    the method's registry entry says what is summed how; each client's image count and
    the feature pixels of one image bound it (:mod:`.secure_sum`)."""
    if not params.privacy.secure_aggregation:
        return None
    return sum_plan(
        get_spec(params.aggregator),
        params.federation.mode,
        params.federation.weighting,
        run.initial,
        [len(rows) for rows in client_rows],
        int(np.prod(train.features.shape[2:])),
    )


def _keep_logs(source: Path, target: Path) -> None:
    """Copy the Flower logs of a failed run to ``target``."""
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True)

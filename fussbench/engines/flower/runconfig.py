"""What the Flower apps are handed: the run config every node gets, and the server's job.

The run config (``[tool.flwr.app.config]`` of the generated app) carries the params and
the clients' local objective as JSON, the training cache's fingerprint (each SuperNode
checks its data folder against it) and the job folder. The job folder lives next to the
SuperLink: the ServerApp reads its job from it and writes the state after every round and
the run's outcome into it.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fussbench.atomic import atomic_path, write_json
from fussbench.errors import FussbenchError
from fussbench.federation.aggregators import Aggregator
from fussbench.federation.client import LocalObjective
from fussbench.federation.faults import Fault
from fussbench.federation.run import RunState
from fussbench.model.head import ModelArrays
from fussbench.params import Params, params_mapping, parse_params

from .secure_sum import SumPlan

PARAMS = "params"
OBJECTIVE = "objective"
FAULT = "fault"
TRAIN_CACHE = "train-cache"
JOB_DIR = "job-dir"


def params_to_json(params: Params) -> str:
    """``params`` as JSON that :func:`params_from_json` turns back into equal params.

    The chosen setup is already merged into the sections, so it travels as a setup that
    changes nothing but the dataset.
    """
    values = params_mapping(params)
    values["setups"] = {params.setup: {"dataset": values.pop("dataset")}}
    values["runs_on"] = [params.setup]
    return json.dumps(values, sort_keys=True)


def params_from_json(text: str) -> Params:
    """The params of :func:`params_to_json`."""
    return parse_params(json.loads(text), f"Flower run config '{PARAMS}'")


def run_config(
    params: Params,
    objective: LocalObjective,
    train_cache: dict[str, object],
    job_dir: Path,
    fault: Fault,
) -> dict[str, str]:
    """The run config of a fussbench Flower app (string values, as Flower wants them);
    ``fault``: the resolved fault scenario, which the misbehaving clients apply."""
    return {
        PARAMS: params_to_json(params),
        OBJECTIVE: json.dumps(dataclasses.asdict(objective), sort_keys=True),
        FAULT: json.dumps(dataclasses.asdict(fault), sort_keys=True),
        TRAIN_CACHE: json.dumps(train_cache, sort_keys=True),
        JOB_DIR: str(job_dir.resolve()),
    }


def fault_from_json(text: str) -> Fault:
    """The fault scenario of :func:`run_config`."""
    values = json.loads(text)
    return Fault(**{**values, "clients": tuple(values["clients"])})


def objective_from_json(text: str) -> LocalObjective:
    """The local objective of :func:`run_config`."""
    return LocalObjective(**json.loads(text))


def config_value(config: dict[str, Any], key: str) -> str:
    """A string value of a run or node config.

    Raises:
        FussbenchError: when the key is missing, naming it.
    """
    if key not in config:
        raise FussbenchError(f"Flower config lacks '{key}'; valid keys here: {sorted(config)}")
    return str(config[key])


@dataclass(frozen=True)
class ServerJob:
    """What the ServerApp needs to run the rounds: the picklable part of the
    :class:`~fussbench.federation.run.FederationRun` and where the server finds its data.

    Attributes:
        params: the run's params (threads, evaluation matching).
        aggregator, objective, initial, rounds, seed, min_clients, resume: those of the
            run.
        fingerprint: the run's key (:func:`fussbench.run.reuse.run_key`), stamped on
            every state the server writes.
        n_clients: K, the SuperNodes (partition ids 0..K-1) the server waits for.
        eval_dir: the evaluation split's feature cache, read by the server only.
        eval_fingerprint: what that cache must have been built with.
        n_classes: number of classes of the dataset.
        round_timeout: seconds the server waits for a round's replies; a client that has
            not replied by then is left out of the round.
        node_timeout: seconds the server waits for the K SuperNodes to connect.
        secure: the plan of secure aggregation (``privacy.secure_aggregation``); None:
            without it.
    """

    params: Params
    aggregator: Aggregator
    objective: LocalObjective
    initial: ModelArrays
    rounds: int
    seed: int
    min_clients: int
    resume: RunState | None
    fingerprint: str
    n_clients: int
    eval_dir: Path
    eval_fingerprint: dict[str, object]
    n_classes: int
    round_timeout: float
    node_timeout: float
    secure: SumPlan | None = None


class JobFolder:
    """The files a run exchanges between the launcher and the ServerApp."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @property
    def _job(self) -> Path:
        return self.directory / "job.pkl"

    @property
    def _outcome(self) -> Path:
        return self.directory / "outcome.json"

    @property
    def _states(self) -> Path:
        return self.directory / "states"

    def write_job(self, job: ServerJob) -> None:
        with atomic_path(self._job) as tmp:
            tmp.write_bytes(pickle.dumps(job))

    def read_job(self) -> ServerJob:
        if not self._job.is_file():
            raise FussbenchError(f"{self._job}: no job; the launcher writes it before `flwr run`")
        return pickle.loads(self._job.read_bytes())

    def state_path(self, round_index: int) -> Path:
        """Where the ServerApp writes the state after round ``round_index``."""
        return self._states / f"round_{round_index:04d}.npz"

    def state_paths(self) -> list[Path]:
        """The states written so far, in round order."""
        return sorted(self._states.glob("round_*.npz"))

    def write_outcome(self, error: str | None) -> None:
        """Record that the ServerApp finished, with the error that stopped it, if any."""
        write_json(self._outcome, {"completed": error is None, "error": error})

    def read_outcome(self) -> dict[str, Any] | None:
        """``{"completed": bool, "error": str | None}``, or None before the ServerApp ends."""
        if not self._outcome.is_file():
            return None
        return json.loads(self._outcome.read_text(encoding="utf-8"))

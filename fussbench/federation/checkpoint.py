"""Save and restore a run's state after each completed round, in one atomic file.

The file holds the models, the clients' kept state, the round records and the run's key
(its params, code, inputs and platform: :func:`fussbench.run.reuse.run_key`); a
checkpoint whose key differs is ignored, so changed params, code or inputs always start a
fresh run.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from fussbench.atomic import atomic_path
from fussbench.federation.record import RoundRecord
from fussbench.federation.run import RunState
from fussbench.model.head import ModelArrays


def _pack(prefix: str, arrays: ModelArrays) -> dict[str, np.ndarray]:
    return {f"{prefix}/{key}": value for key, value in arrays.items()}


def _unpack(stored: dict[str, np.ndarray], prefix: str) -> ModelArrays:
    start = prefix + "/"
    return {key[len(start) :]: value for key, value in stored.items() if key.startswith(start)}


def save_checkpoint(path: Path, state: RunState, key: str) -> None:
    """Write ``state`` and the run's ``key`` to ``path`` (.npz) atomically."""
    arrays: dict[str, np.ndarray] = {}
    for number, model in enumerate(state.models):
        arrays.update(_pack(f"model{number}", model))
    kept = []
    for number, client_state in enumerate(state.client_states):
        kept.append(client_state is not None)
        if client_state is not None:
            arrays.update(_pack(f"client{number}", client_state))
    meta = {
        "fingerprint": key,
        "round": state.round,
        "n_models": len(state.models),
        "client_states": kept,
        "records": [dataclasses.asdict(record) for record in state.records],
    }
    arrays["meta"] = np.array(json.dumps(meta))
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)


def load_checkpoint(path: Path, key: str) -> RunState | None:
    """The saved state, or None when there is none or it was made by a run of another
    ``key`` (other params, code, inputs or platform)."""
    if not path.is_file():
        return None
    with np.load(path) as stored:
        contents = {key: stored[key] for key in stored.files}
    meta = json.loads(str(contents.pop("meta")))
    if meta["fingerprint"] != key:
        return None
    models = [_unpack(contents, f"model{number}") for number in range(meta["n_models"])]
    client_states = [
        _unpack(contents, f"client{number}") if kept else None
        for number, kept in enumerate(meta["client_states"])
    ]
    records = [RoundRecord(**record) for record in meta["records"]]
    return RunState(meta["round"], models, client_states, records)

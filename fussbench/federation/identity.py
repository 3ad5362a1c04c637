"""A run's identity: the hash of every param that changes its numbers.

It is the params' part of a run's key (:func:`fussbench.run.reuse.run_key`), which a
finished run and its checkpoints (:mod:`fussbench.federation.checkpoint`) carry, so a run
resumes, or is copied, only with the same params; whatever leaves the numbers alone (the
comparison lists, the seeds of other runs, reports, workers) is left out, so changing it
keeps the checkpoints and finished runs valid.
"""

from __future__ import annotations

import hashlib
import json

from fussbench.data.partition import FEATURE_METHODS
from fussbench.methods import get_spec
from fussbench.params import Params, params_mapping

NOT_IN_A_RUN = (
    "datasets",
    "runs_on",
    "compare",
    "seeds",
    "setups",
    "download",
    "reports_dir",
    "stats",
    "report",
    "convergence",
    "study",
)
"""Top-level params that change no run's numbers (the chosen setup is already merged into
the sections)."""


def run_fingerprint(params: Params) -> str:
    """16 hex digits of the SHA-256 of every param that changes the run's numbers.

    Besides :data:`NOT_IN_A_RUN` and ``runtime.workers``, a param that is inert in this run
    is left out, so that adding or changing it keeps other runs' checkpoints: a method's
    knobs enter only the runs of the method whose registry entry declares them,
    ``model.k_range`` only with ``model.n_clusters: auto``, ``evaluation.crf`` and
    ``evaluation.flip`` only when on, ``features.store`` only when not the default
    ``cache``, ``partition.embedding_clusters`` only for a partition that clusters
    features, ``faults`` only when a scenario is on, and ``privacy`` only when a mechanism
    is on (of σ's two sources, ``target_epsilon`` or ``noise_multiplier``, the one in
    use).
    """
    relevant = params_mapping(params)
    for key in NOT_IN_A_RUN:
        relevant.pop(key)
    relevant["runtime"].pop("workers")
    if not params.model.auto:
        relevant["model"].pop("k_range")
    if not params.evaluation.crf:
        relevant["evaluation"].pop("crf")
    if not params.evaluation.flip:
        relevant["evaluation"].pop("flip")
    if params.features.store == "cache":
        relevant["features"].pop("store")
    if params.partition.method not in FEATURE_METHODS:  # read by embedding_dirichlet only
        relevant["partition"].pop("embedding_clusters")
    if params.faults.scenario == "none":  # an honest run: the fingerprint of earlier runs
        relevant.pop("faults")
    if not (params.privacy.secure_aggregation and params.engine == "flower"):
        relevant["privacy"].pop("secure_aggregation")  # inert: the fingerprint of earlier runs
    if not params.privacy.on and "secure_aggregation" not in relevant["privacy"]:
        relevant.pop("privacy")  # no privacy mechanism: the fingerprint of earlier runs
    elif params.privacy.target_epsilon is None:
        relevant["privacy"].pop("target_epsilon")  # sigma is noise_multiplier
    else:
        relevant["privacy"].pop("noise_multiplier")  # calibrated from target_epsilon
    own = {knob.name for knob in get_spec(params.aggregator).knobs}
    for key in params.federation.knobs:
        if key not in own:
            relevant["federation"].pop(key)
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]

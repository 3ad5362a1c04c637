"""Params that name what other modules own, checked when they load.

:mod:`fussbench.params` checks every field it owns; the fields whose valid values the
registry owns are checked here: ``aggregator``, every ``compare`` and
``convergence.methods`` entry, ``federation.weighting`` and ``federation.mode``, every
method knob under ``federation:`` (its name and its rule), the fault scenario, and
whether the run's method can take its privacy mechanism and secure aggregation. Each
error is one line naming the param, the bad value and the valid ones. ``fussbench check``
(the pipeline's first stage) and every command that trains, collects or reports call
:func:`check_methods`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fussbench.errors import FussbenchError
from fussbench.federation.faults import SCENARIOS
from fussbench.methods import WEIGHTINGS, get_spec, knobs, names, parse_method, specs
from fussbench.methods.registry import STRUCTURAL_KEYS
from fussbench.params import Params, load_params
from fussbench.rules import OneOf, enforce


def load_checked_params(
    path: Path | str = "params.yaml", overrides: list[str] | None = None
) -> Params:
    """:func:`~fussbench.params.load_params`, then :func:`check_methods`: params whose
    every value is checked, the method-related ones against the registry.

    Raises:
        FussbenchError: naming the file, the param, the bad value and the valid ones.
    """
    params = load_params(path, overrides)
    check_methods(params, str(path))
    return params


def check_methods(params: Params, source: str = "params") -> None:
    """Check every method-related param of ``params`` against the registry.

    Raises:
        FussbenchError: one line naming the param, the bad value and the valid ones.
    """
    if params.aggregator not in names():
        raise FussbenchError(
            f"{source}: aggregator must be one of {', '.join(names())}, got {params.aggregator!r}"
        )
    for key, entries in (
        ("compare", params.compare),
        ("convergence.methods", params.convergence.methods),
        ("study.methods", params.study.methods),
    ):
        for index, text in enumerate(entries):
            _check_cell(text, f"{key}[{index}]", source)
    study = params.study
    if study.reference is not None and study.reference not in study.methods:
        raise FussbenchError(
            f"{source}: study.reference must be one of study.methods "
            f"({', '.join(study.methods)}), got {study.reference!r}"
        )
    federation = params.federation
    enforce(federation.weighting, OneOf(WEIGHTINGS), "federation.weighting", source)
    spec = get_spec(params.aggregator)
    if federation.mode is not None and spec.federated:
        valid = ", ".join(spec.modes) or f"null ({params.aggregator} has no modes)"
        if federation.mode not in spec.modes:
            raise FussbenchError(
                f"{source}: federation.mode must be one of {valid} for aggregator "
                f"{params.aggregator}, got {federation.mode!r}"
            )
    _check_knobs(federation.knobs, source)
    enforce(params.faults.scenario, OneOf(SCENARIOS), "faults.scenario", source)
    if params.faults.scenario != "none" and not params.faults.clients:
        raise FussbenchError(
            f"{source}: faults.clients must name at least one client (a number, largest or "
            f"smallest) for faults.scenario {params.faults.scenario}"
        )
    _check_privacy(params, source)
    _check_secure_aggregation(params, source)


def _check_secure_aggregation(params: Params, source: str) -> None:
    """``privacy.secure_aggregation: true`` needs a method whose server needs only the
    weighted sum of the updates (its registry entry's ``server_needs``) and no privacy
    mechanism: ``central`` clips each update on the server, which then sees none, and
    ``local`` noise would leave SecAgg+'s clipping range
    (:mod:`fussbench.engines.flower.secure_sum`)."""
    privacy = params.privacy
    if not privacy.secure_aggregation:
        return
    aggregator = params.aggregator
    spec = get_spec(aggregator)
    problem = None
    if spec.server_needs != "weighted_sum":
        served = [item.name for item in specs("aggregator") if item.server_needs == "weighted_sum"]
        what = (
            f"{aggregator}'s server needs each client's update (registry: server_needs "
            f"{spec.server_needs})"
            if spec.federated
            else f"{aggregator} has no server aggregation"
        )
        problem = (
            f"{what} and secure aggregation serves a server that needs only the weighted sum "
            f"of the updates; choose one of {', '.join(served)}, or privacy.secure_aggregation "
            "false"
        )
    elif privacy.mechanism == "central":
        problem = (
            "privacy.mechanism central clips each update on the server, which then sees "
            "none; set privacy.mechanism none"
        )
    elif privacy.mechanism == "local":
        problem = (
            "privacy.mechanism local noise would leave SecAgg+'s clipping range; set "
            "privacy.mechanism none"
        )
    if problem is not None:
        raise FussbenchError(f"{source}: privacy.secure_aggregation cannot run: {problem}")


def _check_privacy(params: Params, source: str) -> None:
    """The run's method can take ``privacy.mechanism``, as its registry entry says
    (:mod:`fussbench.privacy`): a federated method; for ``central`` one whose server
    needs only a weighted sum, with uniform weights; code sums under ``central`` only; no
    answers or counts the mechanism leaves unprotected; a fixed number of clusters.
    Client sampling and a target ε need a mechanism."""
    privacy = params.privacy
    if not privacy.on:
        if privacy.sample_rate != 1.0:
            raise FussbenchError(
                f"{source}: privacy.sample_rate {privacy.sample_rate} samples clients for a "
                "privacy mechanism; set privacy.mechanism central or local, or "
                "privacy.sample_rate 1"
            )
        if privacy.target_epsilon is not None:
            raise FussbenchError(
                f"{source}: privacy.target_epsilon {privacy.target_epsilon} calibrates the "
                "noise of a privacy mechanism; set privacy.mechanism central or local, or "
                "privacy.target_epsilon null"
            )
        return
    mechanism, aggregator = privacy.mechanism, params.aggregator
    spec = get_spec(aggregator)
    problem = None
    if not spec.federated:
        problem = (
            f"{aggregator} has no server aggregation (its clients send nothing); set "
            "privacy.mechanism none"
        )
    elif mechanism == "central" and spec.server_needs != "weighted_sum":
        problem = (
            f"central noise goes on the sum of the updates and {aggregator}'s server needs "
            "each client's update (registry: server_needs individual); use "
            "privacy.mechanism local"
        )
    elif mechanism == "central" and params.federation.weighting != "uniform":
        problem = (
            "central weighs every client 1 / (q K), whatever its image count; set "
            "federation.weighting=uniform"
        )
    elif spec.asks:
        problem = (
            f"{aggregator}'s server asks the clients for {spec.asks} and their answers go "
            "un-noised; choose another aggregator"
        )
    elif spec.sends_code_sums and mechanism == "local":
        problem = (
            f"{aggregator}'s clients send code sums and pixel counts, which local noise "
            "does not cover (the counts go un-noised); use privacy.mechanism central"
        )
    elif spec.reads_cluster_counts(params.federation.mode) and not spec.sends_code_sums:
        # code sums under central: the counts only divide each client's own sums (its
        # code shares, sensitivity 1) and leave the server in no release
        problem = (
            f"{aggregator} reads the clients' pixel counts in this mode, un-noised; choose "
            "another federation.mode"
        )
    elif params.model.auto:
        problem = (
            "model.n_clusters: auto sends each client's own number of centroids in round 1, "
            "which no clip bounds; set model.n_clusters to an integer or null"
        )
    if problem is not None:
        raise FussbenchError(f"{source}: privacy.mechanism {mechanism} cannot run: {problem}")


def _check_cell(text: str, param: str, source: str) -> None:
    """``text`` parses as ``<aggregator>[.<mode>][.<weighting>]``; the error names ``param``."""
    try:
        parse_method(text)
    except FussbenchError as error:
        raise FussbenchError(f"{source}: {param} = {text!r} is not a method: {error}") from None


def _check_knobs(settings: dict[str, Any], source: str) -> None:
    """Every key is a registered knob and every registered knob's value keeps its rule."""
    declared = knobs()
    for key in settings:
        if key not in declared:
            valid = ", ".join([*STRUCTURAL_KEYS, *declared])
            raise FussbenchError(
                f"{source}: unknown key 'federation.{key}'; valid keys here: {valid} "
                "(a method's knob is declared in its registry entry)"
            )
    for knob in declared.values():
        knob.value(settings, source)

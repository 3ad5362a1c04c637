"""The method registry: one entry per aggregator, bound and reference row, and its meaning.

A *method* names one cell of the comparison: ``<aggregator>[.<mode>][.<weighting>]``, for
example ``fedcc_maximin.faithful`` or ``fedavg.uniform``. Every name accepted in params is
a :class:`MethodSpec` registered with :func:`register` (the built-in ones in
:mod:`fussbench.methods.catalog`). The entry is the method's one home: its knobs under
``federation:`` (with defaults and rules), its family, its capabilities, the clients'
objective it asks for, and how it is built. Params checking, the server, the engines, the
statistics and the report all read it; nothing else tests a method's name.

This module imports no numpy, torch or scikit-learn: method names parse without them, and
an aggregator class is imported only when a run builds it (``factory``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from fussbench.errors import FussbenchError
from fussbench.rules import Rule, enforce

WEIGHTINGS = ("samples", "uniform")
"""Valid values of ``federation.weighting``: clients weighted by image count, or equally."""

Family = Literal["averaging", "fedcc", "bound", "reference"]
"""``averaging``: the server averages the clients' models (FedAvg and the methods that only
change the clients' loss); ``fedcc``: the server merges every client's centroids by a rule of
its own, from their pool or their code sums (FedCC-style: the FedCC variants are tested
pairwise and the convergence study's default budget waits for the best of them);
``bound``: trained without server aggregation (``local``, ``centralized``); ``reference``:
scored without training (``kmeans``, ...)."""

ServerNeeds = Literal["individual", "weighted_sum"]
"""What the server step needs of the clients' updates: each one (``individual``: secure
aggregation and central differential privacy cannot serve it), or only their weighted sum
(``weighted_sum``: both can)."""

ClientSends = Literal["centroids", "code_sums"]
"""What a client sends in its centroids' place: its trained centroids (``centroids``), or,
per centroid index c, the sum of the unit-normalised codes of its own pixels that its
trained centroid c wins (``code_sums``, (n_clusters, dim)), with their counts in
``cluster_counts``: its trained centroids then stay on the client."""

Kind = Literal["aggregator", "bound", "reference"]
"""``aggregator`` (family ``averaging`` or ``fedcc``), ``bound`` or ``reference``."""


@dataclass(frozen=True)
class Knob:
    """One setting of a method under ``federation:`` in params.

    Attributes:
        name: the key under ``federation:``, e.g. ``"mu"`` (``-S federation.mu=0.01``).
        default: its value when params leave it out (params.yaml states it too).
        rule: what a value must satisfy (:mod:`fussbench.rules`), checked when params load.
        doc: one line for ``--help``, the params comment and the docs.
        argument: the aggregator class's keyword that receives it; None: ``name``.
        client: the clients' objective keyword (``LocalObjective``) that receives it too;
            None: a server-side knob only.
        convert: applied to the value before it is handed on (e.g. ``tuple`` for a list).
    """

    name: str
    default: Any
    rule: Rule
    doc: str
    argument: str | None = None
    client: str | None = None
    convert: Callable[[Any], Any] | None = None

    def value(self, settings: Mapping[str, Any], source: str = "params") -> Any:
        """This knob's value in ``settings`` (the ``federation:`` knobs), or its default;
        an integer given for a float knob becomes a float.

        Raises:
            FussbenchError: the value breaks :attr:`rule`, naming ``federation.<name>``.
        """
        value = settings.get(self.name, self.default)
        if isinstance(self.default, float) and isinstance(value, int) and value is not True:
            value = float(value)
        enforce(value, self.rule, f"federation.{self.name}", source)
        return value

    def handed_on(self, value: Any) -> Any:
        """``value`` as the aggregator and the clients receive it."""
        return value if self.convert is None else self.convert(value)


@dataclass(frozen=True)
class MethodSpec:
    """One method name accepted in params (``aggregator``, ``compare``) and its meaning.

    Attributes:
        name: the name in params, e.g. ``"fedcc_kmeans"``.
        description: one line for the report, ``--help`` and the params comment.
        family: see :data:`Family`.
        label: the name in the report's tables, e.g. ``"FedCC-kMeans"``; default ``name``.
        factory: the server aggregator class or a ``"module:Class"`` path to it (imported
            only when built); None for bounds and references.
        modes: valid ``federation.mode`` values, the first is the default; empty: the
            aggregator has no modes and a mode is an error.
        mode_argument: the factory's keyword that receives the mode.
        mode_labels: the report's name of a mode when it differs from the mode.
        knobs: its settings under ``federation:`` (:class:`Knob`), besides ``weighting``
            and ``mode`` which every aggregator takes.
        seeded: the factory takes the run's seed (``seed=``), e.g. for k-means.
        client_term: the clients' local regulariser (a ``LocalObjective`` kind, e.g.
            ``"fedprox"``); None: plain local training.
        cluster_count_modes: the modes in which the server reads the clients' per-cluster
            pixel counts (clients send them only then); ``("*",)``: in every mode.
        asks: what the server asks the clients during a round besides their update, in
            words for the table of what the server sees ("" for nothing), e.g. FedCC-Auto's
            per-candidate scores; privacy does not cover the answers.
        client_sends: see :data:`ClientSends`; ``code_sums`` implies that the server reads
            the counts in every mode.
        any_k: accepts ``model.n_clusters: auto`` (merges client centroid sets of
            different sizes).
        auto_candidate: may be one of FedCC-Auto's candidates (a server-side rule that
            asks nothing of the clients and keeps the FedAvg head).
        server_needs: see :data:`ServerNeeds`; None for bounds and references.
        baseline: every other trained method is tested against it (``local``, ``fedavg``).
        pools_clients: a bound trained as one model on the union of every client's data,
            given the whole federation's steps per round (``centralized``).
        one_shot: the clients train alone for the whole budget and the server merges once
            (``fedcc_oneshot``): a run of ``federation.rounds`` R rounds of
            ``train.local_steps`` S steps runs as one round of R × S steps per client, the
            iterative methods' compute (:func:`fussbench.run.federate.at_equal_compute`);
            its ``rounds.csv`` holds that one round, so its rounds are not budgets.
        aggregation_table: whether it has rows in the report's aggregation-type table.
        centroid_heatmap: whether the report's heatmap compares its global centroids.
    """

    name: str
    description: str
    family: Family
    label: str = ""
    factory: Callable[..., Any] | str | None = None
    modes: tuple[str, ...] = ()
    mode_argument: str = "mode"
    mode_labels: Mapping[str, str] = field(default_factory=dict)
    knobs: tuple[Knob, ...] = ()
    seeded: bool = False
    client_term: str | None = None
    cluster_count_modes: tuple[str, ...] = ()
    asks: str = ""
    client_sends: ClientSends = "centroids"
    any_k: bool = False
    auto_candidate: bool = False
    server_needs: ServerNeeds | None = None
    baseline: bool = False
    pools_clients: bool = False
    one_shot: bool = False
    aggregation_table: bool = False
    centroid_heatmap: bool = False

    @property
    def kind(self) -> Kind:
        """``aggregator`` for the families ``averaging`` and ``fedcc``, else the family."""
        return "aggregator" if self.family in ("averaging", "fedcc") else self.family

    @property
    def federated(self) -> bool:
        """Whether a server aggregates the clients' models every round."""
        return self.kind == "aggregator"

    @property
    def keeps_client_models(self) -> bool:
        """Whether every client keeps and is scored with its own model (``local``)."""
        return self.kind == "bound" and not self.pools_clients

    @property
    def default_mode(self) -> str | None:
        """The mode a method name without one runs in (None: no modes)."""
        return self.modes[0] if self.modes else None

    def reads_cluster_counts(self, mode: str | None) -> bool:
        """Whether the server reads ``cluster_counts`` in ``mode`` (None: the default):
        always when the clients send code sums (each sum comes with its count)."""
        chosen = self.default_mode if mode is None else mode
        declared = "*" in self.cluster_count_modes or chosen in self.cluster_count_modes
        return declared or self.sends_code_sums

    @property
    def sends_code_sums(self) -> bool:
        """Whether the clients send code sums in their centroids' place (:data:`ClientSends`)."""
        return self.client_sends == "code_sums"

    def table_label(self, mode: str | None) -> str:
        """``label`` with the mode in brackets, e.g. ``"FedCC-Matched (pooled counts)"``."""
        label = self.label or self.name
        if mode is None:
            return label
        return f"{label} ({self.mode_labels.get(mode, mode)})"

    def knob_values(self, settings: Mapping[str, Any], source: str = "params") -> dict[str, Any]:
        """Every knob's checked value, by knob name (defaults for those not in ``settings``).

        Raises:
            FussbenchError: a value breaks its knob's rule.
        """
        return {knob.name: knob.value(settings, source) for knob in self.knobs}

    def load_factory(self) -> Callable[..., Any]:
        """The aggregator class (importing it when given as ``"module:Class"``)."""
        if self.factory is None:
            raise FussbenchError(f"'{self.name}' has no server aggregator")
        if not isinstance(self.factory, str):
            return self.factory
        module, attribute = self.factory.split(":")
        return getattr(importlib.import_module(module), attribute)


STRUCTURAL_KEYS = ("rounds", "weighting", "mode", "min_clients")
"""The ``federation:`` keys of every run; every other key there is a method's knob."""


_REGISTRY: dict[str, MethodSpec] = {}


def register(spec: MethodSpec) -> MethodSpec:
    """Add ``spec`` to the registry and return it.

    Raises:
        FussbenchError: the name is taken or contains a dot (dots separate mode and
            weighting in a method name), a knob is named like a structural
            ``federation:`` key, or a knob shares its name with another method's knob
            but not its default and rule.
    """
    if spec.name in _REGISTRY:
        raise FussbenchError(f"aggregator '{spec.name}' is already registered")
    if "." in spec.name:
        raise FussbenchError(f"aggregator name '{spec.name}' must not contain a dot")
    for knob in spec.knobs:
        if knob.name in STRUCTURAL_KEYS:
            raise FussbenchError(
                f"{spec.name}: knob '{knob.name}' is a federation key every method shares; "
                "name it otherwise"
            )
        other = knobs().get(knob.name)
        if other is not None and (other.default, other.rule) != (knob.default, knob.rule):
            raise FussbenchError(
                f"{spec.name}: knob '{knob.name}' is already declared by another method with "
                "another default or rule; give it another name"
            )
    _REGISTRY[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove ``name`` from the registry (for tests that register a toy aggregator)."""
    _REGISTRY.pop(name, None)


def specs(kind: Kind | None = None) -> list[MethodSpec]:
    """Registered specs in registration order, only those of ``kind`` when given."""
    return [spec for spec in _REGISTRY.values() if kind is None or spec.kind == kind]


def names(kind: Kind | None = None) -> list[str]:
    """Registered names in registration order, only those of ``kind`` when given."""
    return [spec.name for spec in specs(kind)]


def knobs() -> dict[str, Knob]:
    """Every registered knob by name, in registration order."""
    return {knob.name: knob for spec in specs() for knob in spec.knobs}


def get_spec(name: str) -> MethodSpec:
    """The spec of ``name``.

    Raises:
        FussbenchError: unknown name, listing the valid ones.
    """
    if name not in _REGISTRY:
        raise FussbenchError(f"unknown aggregator '{name}'; valid names: " + ", ".join(names()))
    return _REGISTRY[name]


@dataclass(frozen=True)
class Method:
    """One comparison cell: aggregator, mode (None: its default) and weighting."""

    aggregator: str
    mode: str | None
    weighting: str

    @property
    def name(self) -> str:
        """``aggregator[.mode][.weighting]``, the weighting shown only when not "samples"."""
        parts = [self.aggregator]
        if self.mode is not None:
            parts.append(self.mode)
        if self.weighting != "samples":
            parts.append(self.weighting)
        return ".".join(parts)

    @property
    def spec(self) -> MethodSpec:
        """The registry entry of :attr:`aggregator`."""
        return get_spec(self.aggregator)

    @property
    def resolved_mode(self) -> str | None:
        """:attr:`mode` with the aggregator's default filled in."""
        return self.spec.default_mode if self.mode is None else self.mode


def parse_method(text: str) -> Method:
    """Parse ``<aggregator>[.<mode>][.<weighting>]``.

    Raises:
        FussbenchError: naming the unknown part and the valid choices.
    """
    aggregator, *rest = text.split(".")
    spec = get_spec(aggregator)
    mode, weighting = None, "samples"
    for part in rest:
        if part in WEIGHTINGS:
            weighting = part
        elif part in spec.modes:
            mode = part
        else:
            valid = [*spec.modes, *WEIGHTINGS]
            raise FussbenchError(
                f"method '{text}': '{part}' is not a mode or weighting of {aggregator}; "
                f"valid: {', '.join(valid)}"
            )
    return Method(aggregator, mode, weighting)


def candidate_names() -> list[str]:
    """Aggregators that may be FedCC-Auto's candidates (declared ``auto_candidate``)."""
    return [spec.name for spec in specs("aggregator") if spec.auto_candidate]


def parse_candidate(text: str) -> tuple[str, str | None]:
    """``<aggregator>[.<mode>]`` -> (aggregator, mode or None), for ``federation.candidates``.

    Raises:
        FussbenchError: an aggregator that may not be a candidate, an unknown mode, a
            weighting (it comes from ``federation.weighting``), or a mode that needs the
            clients' cluster counts (FedCC-Auto sends no more than its scores); the
            message lists the valid names.
    """
    name, *rest = text.split(".")
    valid = candidate_names()
    if name not in valid or len(rest) > 1:
        raise FussbenchError(
            f"unknown candidate '{text}' (params: federation.candidates); valid: "
            + ", ".join(valid)
            + " (optionally .<mode>)"
        )
    spec = get_spec(name)
    mode = rest[0] if rest else None
    if mode is not None and mode not in spec.modes:
        extra = "; the weighting comes from federation.weighting" if mode in WEIGHTINGS else ""
        raise FussbenchError(
            f"candidate '{text}' (params: federation.candidates): '{mode}' is not a mode of "
            f"{name}; valid: {', '.join(spec.modes) or 'none'}{extra}"
        )
    if spec.reads_cluster_counts(mode):
        raise FussbenchError(
            f"candidate '{text}' (params: federation.candidates) needs the clients' cluster "
            "counts, which fedcc_auto does not ask for; choose another mode"
        )
    return name, mode

"""Which pairs of methods to test against each other within one setup.

A method is named ``aggregator[.mode][.weighting]``. The family of comparisons is every
trained method against each baseline (the registry entries declared ``baseline``:
``local`` and ``fedavg``), and every FedCC-style method (family ``fedcc``) against every
other. The other bounds and the reference rows (``centralized``, ``kmeans``,
``kmeans_local``, ``majority``) are shown in the tables but not tested: they would only
widen the Holm family.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import combinations

from fussbench.methods import get_spec, specs


def baselines() -> list[str]:
    """Methods every other method is compared against, when the setup has them (the
    registry's ``baseline`` entries, in registration order)."""
    return [spec.name for spec in specs() if spec.baseline]


def not_tested() -> set[str]:
    """Aggregators outside the family: the bounds other than the baselines and the rows
    that need no training (the method registry's kinds ``bound`` and ``reference``)."""
    return {spec.name for spec in specs() if spec.kind != "aggregator" and not spec.baseline}


def aggregator(method: str) -> str:
    """The aggregator part of a method name: ``fedcc_kmeans.faithful`` -> ``fedcc_kmeans``."""
    return method.split(".", 1)[0]


def _unique(methods: Iterable[str]) -> list[str]:
    """``methods`` without repeats, in order of first appearance."""
    return list(dict.fromkeys(methods))


def comparisons(methods: Sequence[str]) -> list[tuple[str, str]]:
    """The (treatment, reference) pairs to test among the ``methods`` of one setup.

    The order follows ``methods``: first everything against ``local``, then against
    ``fedavg`` (the baselines in registry order), then the FedCC-style methods pairwise. A
    pair already listed in the other order is not repeated, a method is never compared with
    itself, and a baseline that is not among ``methods`` is skipped; so are the methods of
    :func:`not_tested`. ``fedavg`` against ``local`` comes out as ``("fedavg", "local")``.
    """
    skipped = not_tested()
    present = [method for method in _unique(methods) if aggregator(method) not in skipped]
    pairs: list[tuple[str, str]] = []
    for baseline in baselines():
        if baseline in present:
            pairs.extend((method, baseline) for method in present if method != baseline)
    fedcc = [method for method in present if get_spec(aggregator(method)).family == "fedcc"]
    pairs.extend(combinations(fedcc, 2))
    seen: set[frozenset[str]] = set()
    family = []
    for pair in pairs:
        key = frozenset(pair)
        if key not in seen:
            seen.add(key)
            family.append(pair)
    return family

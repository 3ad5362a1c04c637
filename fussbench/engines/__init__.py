"""Federation engines: where the round loop of ``fussbench federate`` runs (``engine``).

- ``inprocess``: every client and the server in one Python process
  (:func:`fussbench.federation.rounds.run_rounds`).
- ``flower``: Flower's deployment runtime: a SuperLink, one SuperNode per client, the
  round loop in a Flower ServerApp (:mod:`fussbench.engines.flower`).

Both run the same aggregators and the same client training code, with the same seeds.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import TYPE_CHECKING

from fussbench.errors import FussbenchError

if TYPE_CHECKING:
    from fussbench.federation.run import RunResult

ENGINES = ("inprocess", "flower")
"""Valid values of the ``engine`` param."""


def check_engine(name: str) -> None:
    """Raise FussbenchError unless ``name`` is one of :data:`ENGINES`, listing them."""
    if name not in ENGINES:
        raise FussbenchError(
            f"unknown engine '{name}' (params: engine, or `fussbench federate --engine`); "
            f"valid: {', '.join(ENGINES)}"
        )


def flower_engine() -> Callable[..., RunResult]:
    """:func:`fussbench.engines.flower.engine.run_flower`, imported on first use.

    Raises:
        FussbenchError: when Flower is not installed, saying how to install it.
    """
    if importlib.util.find_spec("flwr") is None:
        raise FussbenchError(
            "engine 'flower' needs Flower: pip install flwr==1.42.0 (the version pyproject.toml "
            "pins), or set engine: inprocess in params.yaml"
        )
    from fussbench.engines.flower.engine import run_flower

    return run_flower

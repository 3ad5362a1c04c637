"""An aggregator's own exchange with the clients: one class (aggregator + query) that the
round loop runs unchanged; answers checked, failures recorded, bytes counted once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest
from test_federation_rounds import CONFIG, make_clients, run

from fussbench.errors import FussbenchError
from fussbench.federation.aggregators import FedAvg
from fussbench.federation.client import FederatedClient
from fussbench.federation.exchange import Exchange, ServerStep
from fussbench.federation.messages import ClientUpdate, model_nbytes
from fussbench.federation.query import Query, query_class
from fussbench.federation.scoring import ScoreCandidates
from fussbench.model.head import CENTROIDS_KEY, ModelArrays


@dataclass(frozen=True)
class CountImages(Query):
    """Down: the global centroids and a scale; up: the client's image count times it."""

    purpose: ClassVar[str] = "counting"
    answer_keys: ClassVar[tuple[str, ...]] = ("count",)

    centroids: np.ndarray
    scale: int

    def arrays(self) -> ModelArrays:
        return {"centroids": self.centroids}

    def config(self) -> dict[str, int | float]:
        return {"scale": self.scale}

    @classmethod
    def rebuild(cls, arrays: ModelArrays, config: Mapping[str, int | float]) -> CountImages:
        return cls(arrays["centroids"], int(config["scale"]))

    def answer(self, data) -> ModelArrays:
        return {"count": np.array([data.n_samples * self.scale], dtype=np.int64)}


@dataclass(frozen=True)
class CountingFedAvg(FedAvg):
    """FedAvg that also asks every finished client for its scaled image count."""

    def server_round(
        self, updates: Sequence[ClientUpdate], previous: ModelArrays, exchange: Exchange
    ) -> ServerStep:
        replies = exchange.ask(CountImages(previous[CENTROIDS_KEY], 3))
        counts = {
            client: int(reply.answer["count"][0])
            for client, reply in zip(exchange.clients, replies, strict=True)
            if reply.answer is not None
        }
        failures = [
            {"client": client, "reason": reply.failure}
            for client, reply in zip(exchange.clients, replies, strict=True)
            if reply.failure is not None
        ]
        return ServerStep(self.aggregate(updates, previous), {"counts": counts}, failures)


class Leaking(FederatedClient):
    """Answers with one array more than the query declares."""

    def answer(self, query):
        return {**super().answer(query), "features": np.zeros(3)}


def test_an_aggregator_with_its_own_query_runs_and_its_bytes_are_counted():
    result = run(CountingFedAvg(), rounds=2)
    model = result.state.models[0]
    query_bytes = model[CENTROIDS_KEY].nbytes + 8  # centroids + one config number
    for record in result.state.records:
        assert record.selection == {"counts": {0: 15, 1: 21}}  # 5 and 7 images, times 3
        assert record.failures == []
        assert record.bytes_down == [model_nbytes(model) + query_bytes] * 2
        assert record.bytes_up == [model_nbytes(model) + 8 + 8] * 2  # update, n, count
    plain = run(FedAvg(), rounds=2)
    np.testing.assert_array_equal(plain.state.models[0][CENTROIDS_KEY], model[CENTROIDS_KEY])


def test_an_answer_with_undeclared_arrays_is_refused_and_the_client_recorded():
    good = make_clients()
    clients = [Leaking(good[0]._data, CONFIG), good[1]]
    record = run(CountingFedAvg(), clients, rounds=1).state.records[0]
    assert record.selection == {"counts": {1: 21}}
    assert record.failures == [
        {
            "client": 0,
            "reason": "counting: the answer carries arrays ['count', 'features'], "
            "expected ['count']",
        }
    ]
    update_bytes = record.bytes_up[1] - 8
    assert record.bytes_up == [update_bytes, update_bytes + 8]  # nothing counted from 0


def test_a_client_that_raises_while_answering_is_recorded():
    class Raising(FederatedClient):
        def answer(self, query):
            raise RuntimeError("no answer")

    good = make_clients()
    clients = [Raising(good[0]._data, CONFIG), good[1]]
    record = run(CountingFedAvg(), clients, rounds=1).state.records[0]
    assert record.failures == [{"client": 0, "reason": "counting: RuntimeError: no answer"}]
    assert record.client_loss[0] is not None  # it trained; only its answer is missing


def test_query_classes_resolve_only_inside_the_fussbench_package():
    assert query_class(ScoreCandidates.type_name()) is ScoreCandidates
    for name, match in [
        ("os:system", "refused"),
        (CountImages.type_name(), "refused"),  # a test module, not fussbench
        ("fussbench.federation.scoring", "refused"),
        ("fussbench.federation.scoring:Nope", "not found"),
        ("fussbench.errors:FussbenchError", "not a fussbench Query"),
    ]:
        with pytest.raises(FussbenchError, match=match):
            query_class(name)

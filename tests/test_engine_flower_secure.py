"""Secure aggregation on the flower engine: what is summed (numpy), and Flower's SecAgg+
workflow and mod run over an in-memory Grid (no Flower runtime): the sum, a dropped client,
and what the clients' messages carry."""

from collections.abc import Callable, Iterable

import numpy as np
import pytest
from test_federation_rounds import evaluate

import fussbench.engines.flower  # noqa: F401  (sets Flower's environment before flwr loads)
from fussbench.errors import FussbenchError
from fussbench.federation.build import build_method
from fussbench.federation.exchange import ServedRound, ServerStep
from fussbench.federation.messages import ClientUpdate
from fussbench.federation.outcome import ClientOutcome, ClientReport
from fussbench.federation.record import round_record
from fussbench.methods import get_spec, specs
from fussbench.model.head import CENTROIDS_KEY, ModelArrays, initial_arrays
from fussbench.params import FederationParams

pytest.importorskip("flwr")

from flwr.app import (  # noqa: E402
    ArrayRecord,
    ConfigRecord,
    Context,
    Error,
    Message,
    MessageType,
    RecordDict,
)
from flwr.common.constant import ErrorCode  # noqa: E402
from flwr.serverapp import Grid  # noqa: E402
from flwr.supercore.run import Run  # noqa: E402
from flwr.supercore.task_identity import TaskIdentity  # noqa: E402

from fussbench.engines.flower.codec import TrainInstruction  # noqa: E402
from fussbench.engines.flower.secure import run_secure_round, secure_train  # noqa: E402
from fussbench.engines.flower.secure_sum import (  # noqa: E402
    CLIPPING_RANGE,
    COUNTS,
    sum_plan,
    summands,
    summed_update,
)

SIZES = [5, 7, 4]
ROW_PIXELS = 12
REPORT = ClientReport(0.5, 1.5, 40.0, 60.0)
RECEIVED = initial_arrays(8, 6, 3, seed=0)
"""The global model of every round here."""
SECURE_METHODS = [spec.name for spec in specs("aggregator") if spec.server_needs == "weighted_sum"]


def client_update(client: int, received: ModelArrays, counts: bool, sums: bool) -> ClientUpdate:
    """Client ``client``'s update: the received model moved a little (its own numbers), and
    for a counting method its pixel counts, with code sums in the centroids' place."""
    rng = np.random.default_rng(client)
    arrays = {
        key: (value + rng.normal(scale=0.1, size=value.shape)).astype(np.float32)
        for key, value in received.items()
    }
    pixels = SIZES[client] * ROW_PIXELS
    cluster_counts = rng.multinomial(pixels, np.ones(3) / 3) if counts else None
    if sums:  # a sum of c unit vectors: each coordinate within [-c, c]
        unit = rng.uniform(-1, 1, size=arrays[CENTROIDS_KEY].shape)
        arrays[CENTROIDS_KEY] = (unit * cluster_counts[:, None] / 2).astype(np.float32)
    return ClientUpdate(arrays, SIZES[client], cluster_counts)


def plan_for(method: str, weighting: str, received: ModelArrays):
    return sum_plan(get_spec(method), None, weighting, received, SIZES, ROW_PIXELS)


@pytest.mark.parametrize("weighting", ["samples", "uniform"])
@pytest.mark.parametrize("method", SECURE_METHODS)
def test_every_weighted_sum_method_steps_the_same_from_one_update_holding_the_sums(
    method, weighting
):
    """What secure aggregation hands the server (the exact SecAgg+ average of the clients'
    summands, read back by summed_update) gives the aggregator's step on the updates one by
    one, for every method whose registry entry says its server needs only a weighted sum;
    also when a client dropped."""
    spec = get_spec(method)
    aggregator, _ = build_method(method, FederationParams(weighting=weighting), seed=0)
    received = RECEIVED
    counted = spec.reads_cluster_counts(None)
    updates = [client_update(k, received, counted, spec.sends_code_sums) for k in range(3)]
    plan = plan_for(method, weighting, received)
    assert (COUNTS in plan.plain) is counted
    assert (CENTROIDS_KEY in plan.plain) is spec.sends_code_sums
    for active in ([0, 1, 2], [0, 2]):
        handed = [summands(updates[k], received, plan) for k in active]
        ratios = np.array([weight / plan.total_weight for weight, _ in handed])
        for weight, arrays in handed:  # SecAgg+ clips r_k p_k to [-c, c]: never here
            assert all(
                np.abs(weight / plan.total_weight * a).max() <= CLIPPING_RANGE for a in arrays
            )
        average = [
            sum(r * arrays[i] for r, (_, arrays) in zip(ratios, handed, strict=True)) / ratios.sum()
            for i in range(len(handed[0][1]))
        ]
        summed = summed_update(average, sum(w for w, _ in handed), received, plan)
        expected = aggregator.aggregate([updates[k] for k in active], received)
        got = aggregator.aggregate([summed], received)
        assert got.keys() == expected.keys()
        for key in expected:
            np.testing.assert_allclose(got[key], expected[key], rtol=1e-5, atol=1e-6, err_msg=key)
        if counted:
            exact = sum(updates[k].cluster_counts for k in active)
            np.testing.assert_array_equal(summed.cluster_counts, exact)


def test_a_plan_refuses_a_method_whose_server_needs_each_update():
    received = RECEIVED
    with pytest.raises(FussbenchError, match="fedcc_kmeans's server needs each one"):
        plan_for("fedcc_kmeans", "samples", received)
    with pytest.raises(FussbenchError, match="at least 2 clients"):
        sum_plan(get_spec("fedavg"), None, "samples", received, [5], ROW_PIXELS)


def delivered_copy(content: RecordDict) -> RecordDict:
    """What a node receives: records of its own (the mod consumes its config)."""
    copied = RecordDict()
    for key, record in content.items():
        copied[key] = ConfigRecord(dict(record)) if isinstance(record, ConfigRecord) else record
    return copied


class LoopbackGrid(Grid):
    """A Grid that delivers each message to its node's handler in this process (a copy of
    its records, as over the wire) and keeps every message and reply; a handler's exception
    becomes an error reply, as the ClientApp's."""

    def __init__(self, handlers: dict[int, Callable[[Message, Context], Message]]) -> None:
        self.handlers = handlers
        self.contexts = {
            node: Context(run_id=1, node_id=node, node_config={}, state=RecordDict(), run_config={})
            for node in handlers
        }
        self.messages: list[Message] = []
        self.replies: list[Message] = []

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        replies = []
        for message in messages:
            node = message.metadata.dst_node_id
            delivered = Message(
                delivered_copy(message.content),
                dst_node_id=node,
                message_type=message.metadata.message_type,
                group_id=message.metadata.group_id,
            )
            try:
                reply = self.handlers[node](delivered, self.contexts[node])
            except Exception as error:
                reason = f"{type(error).__name__}: {error}"
                reply = Message(
                    Error(ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason), reply_to=delivered
                )
            self.messages.append(delivered)
            replies.append(reply)
        self.replies.extend(replies)
        return replies

    def set_run(self, run: Run) -> None:
        raise NotImplementedError

    @property
    def run(self) -> Run:
        return Run.create_empty(1)

    def create_message(self, content, message_type, dst_node_id, group_id, ttl=None):
        raise NotImplementedError

    def get_node_ids(self) -> Iterable[int]:
        return list(self.handlers)

    def push_messages(self, messages):
        raise NotImplementedError

    def pull_messages(self, message_ids):
        raise NotImplementedError


@pytest.fixture
def server_identity(monkeypatch):
    """Messages made outside a Flower process need a task identity."""
    monkeypatch.setattr(TaskIdentity, "_run_id", 1)
    monkeypatch.setattr(TaskIdentity, "_node_id", 0)
    monkeypatch.setattr(TaskIdentity, "_task_id", 0)


def secure_round(method: str, failing: dict[int, str] | None = None):
    """A SecAgg+ round of 3 clients (SuperNodes 101-103) over a LoopbackGrid; client k in
    ``failing`` raises its message while training. Returns (round, updates, grid, plan)."""
    failing = failing or {}
    spec = get_spec(method)
    received = RECEIVED
    plan = plan_for(method, "samples", received)
    counted = spec.reads_cluster_counts(None)
    updates = [client_update(k, received, counted, spec.sends_code_sums) for k in range(3)]

    def handler(client: int) -> Callable[[Message, Context], Message]:
        def fit(instruction: TrainInstruction) -> ClientOutcome:
            assert instruction.round == 4 and instruction.seed == 100 + client
            for key, value in received.items():
                np.testing.assert_array_equal(instruction.model[key], value)
            if client in failing:
                raise RuntimeError(failing[client])
            return ClientOutcome(updates[client], REPORT)

        return lambda message, context: secure_train(message, context, fit)

    grid = LoopbackGrid({101 + k: handler(k) for k in range(3)})
    sent = {k: (101 + k, TrainInstruction(received, 4, 100 + k)) for k in range(3)}
    result = run_secure_round(grid, sent, plan, n_clients=3, timeout=30.0)
    return result, updates, grid, plan


def quantisation_bound(plan, weights: list[int], deltas: float) -> float:
    """|A| (2c + D) / (Q rho) of secure_sum's docstring."""
    rho = sum(weights) / plan.total_weight
    return len(weights) * (2 * CLIPPING_RANGE + deltas) / (plan.quantization_range * rho)


def weighted_sum(updates: list[ClientUpdate], key: str) -> np.ndarray:
    weights = np.array([update.n_samples for update in updates], dtype=np.float64)
    stacked = np.stack([update.arrays[key] for update in updates]).astype(np.float64)
    return np.tensordot(weights / weights.sum(), stacked, axes=1)


def test_a_secagg_round_sums_within_the_quantisation_bound(server_identity):
    result, updates, grid, plan = secure_round("fedavg")
    assert result.stopped is None
    assert all(outcome.finished and outcome.update is None for outcome in result.outcomes)
    assert [outcome.report for outcome in result.outcomes] == [REPORT] * 3
    summed = result.summed
    assert summed.n_samples == sum(SIZES) and summed.cluster_counts is None
    bound = quantisation_bound(plan, SIZES, deltas=1.0)
    assert bound < 1e-7
    for key in updates[0].arrays:
        expected = weighted_sum(updates, key)
        np.testing.assert_allclose(
            summed.arrays[key], expected, rtol=2**-23, atol=bound, err_msg=key
        )
    assert len(grid.messages) == 4 * 3  # four stages, three clients
    assert all(up > 0 for up in result.bytes_up) and all(down > 0 for down in result.bytes_down)
    model_bytes = sum(value.nbytes for value in updates[0].arrays.values())
    assert all(down > model_bytes for down in result.bytes_down)  # the model, in stage 3
    assert all(up > 2 * model_bytes for up in result.bytes_up)  # the masked int64 vector
    again, _, _, _ = secure_round("fedavg")  # new keys and masks, the same rounding
    for key, value in summed.arrays.items():
        np.testing.assert_array_equal(again.summed.arrays[key], value, err_msg=key)


def test_fedcc_sums_code_sums_and_counts_come_back_as_plain_sums(server_identity):
    result, updates, _, _ = secure_round("fedcc_sums")
    summed = result.summed
    np.testing.assert_array_equal(summed.cluster_counts, sum(u.cluster_counts for u in updates))
    sums = sum(update.centroids.astype(np.float64) for update in updates)
    np.testing.assert_allclose(summed.centroids, sums, rtol=1e-6, atol=1e-3)
    np.testing.assert_allclose(
        summed.head["head.linear.weight"], weighted_sum(updates, "head.linear.weight"), atol=1e-6
    )


def test_a_client_dropped_while_training_leaves_the_others_sum(server_identity):
    """SecAgg+ with one of 3 clients dropping in its masked-vector stage (threshold 2):
    the others' pairwise masks with it are rebuilt from their shares, the sum is the two
    others' weighted sum, and the round records the dropped client's stage and reason."""
    result, updates, _, plan = secure_round("fedavg", failing={1: "disk full"})
    assert result.stopped is None
    failure = result.outcomes[1].failure
    assert failure == "SecAgg+ collect_masked_vectors: RuntimeError: disk full"
    assert result.outcomes[0].finished and result.outcomes[2].finished
    kept = [updates[0], updates[2]]
    assert result.summed.n_samples == SIZES[0] + SIZES[2]
    bound = quantisation_bound(plan, [SIZES[0], SIZES[2]], deltas=1.0)
    for key in updates[0].arrays:
        np.testing.assert_allclose(
            result.summed.arrays[key], weighted_sum(kept, key), rtol=2**-23, atol=bound, err_msg=key
        )
    assert result.bytes_up[1] > 0  # its keys and shares crossed the wire before it dropped


def test_below_the_threshold_the_round_stops_without_a_sum(server_identity):
    result, _, _, _ = secure_round("fedavg", failing={0: "gone", 1: "gone"})
    assert result.summed is None
    assert result.stopped.startswith("SecAgg+ stopped after its 'collect_masked_vectors' stage")
    assert "threshold of 2 of the 3 clients" in result.stopped


def _bytes_in(record) -> list[bytes]:
    """Every bytes value a record holds (array data, bytes config values)."""
    if isinstance(record, ArrayRecord):
        return [array.data for array in record.values()]
    values = []
    for value in record.values():
        items = value if isinstance(value, list) else [value]
        values.extend(item for item in items if isinstance(item, bytes))
    return values


@pytest.mark.parametrize("method", ["fedavg", "fedcc_sums"])
def test_a_client_sends_keys_shares_and_masked_vectors_never_its_update(server_identity, method):
    """Privacy on the wire under secure aggregation: a client's replies carry its public
    keys, encrypted shares, its masked quantised summands (int64), its shares for
    unmasking, its weight and its report: no array, and none of the bytes of its update
    or of its summands, whose only trace on the wire is the masked vector."""
    result, updates, grid, plan = secure_round(method)
    assert result.stopped is None
    allowed = {
        "secaggplus_configs",  # the protocol's keys, ciphertexts, masked vector, shares
        "fitres.metrics",  # the report: loss, train time, own mIoU and accuracy
        "fitres.num_examples",  # the weight m_k: the image count, as without it
        "fitres.status",
        "fitres.parameters",  # emptied by Flower's mod
    }
    for reply in grid.replies:
        assert set(reply.content) <= allowed
        for record in reply.content.array_records.values():
            assert len(record) == 0
        metrics = reply.content.config_records.get("fitres.metrics")
        if metrics is not None:
            assert set(metrics) == {"loss", "train_seconds", "local_miou", "local_accuracy"}
    sent = b"".join(
        b for reply in grid.replies for r in reply.content.values() for b in _bytes_in(r)
    )
    for k, update in enumerate(updates):
        plain = [*update.arrays.values(), *summands(update, RECEIVED, plan)[1]]
        if update.cluster_counts is not None:
            plain.append(update.cluster_counts)
        for array in plain:
            raw = np.ascontiguousarray(array).tobytes()
            chunk = raw[len(raw) // 2 : len(raw) // 2 + 16]
            assert chunk not in sent, f"client {k}: plain bytes on the wire"


def test_a_secure_client_refuses_a_plain_train_message(server_identity):
    message = Message(
        RecordDict({"model": ConfigRecord({"x": 1})}),
        dst_node_id=101,
        message_type=MessageType.TRAIN,
    )
    context = Context(run_id=1, node_id=101, node_config={}, state=RecordDict(), run_config={})
    with pytest.raises(FussbenchError, match="answers train messages only through SecAgg"):
        secure_train(message, context, lambda instruction: ClientOutcome())


def test_a_secure_rounds_record_counts_the_protocols_bytes_and_scores_no_suspicion():
    """The round record under secure aggregation: the server holds no client's update, so
    no suspicion ratio (a plain round of the same three clients has them); each client's
    bytes are its protocol messages' (a dropped one's included), and a finished client's
    number of centroids is the global model's."""
    model = RECEIVED
    evaluation = evaluate(model)
    updates = [client_update(k, model, False, False) for k in range(3)]
    finished = [ClientOutcome(report=REPORT), ClientOutcome(report=REPORT)]
    outcomes = [*finished, ClientOutcome(failure="SecAgg+ unmask: gone")]
    served = ServedRound(ServerStep(model), [10, 20, 30], [40, 50, 60], secure=True)
    record = round_record(1, outcomes, [model], [evaluation], 1.0, served)
    assert record.client_suspicion == [None, None, None]
    assert (record.bytes_up, record.bytes_down) == ([10, 20, 30], [40, 50, 60])
    assert record.client_n_clusters == [3, 3, None]
    assert record.failures == [{"client": 2, "reason": "SecAgg+ unmask: gone"}]
    plain = [ClientOutcome(update, REPORT) for update in updates]
    served = ServedRound(ServerStep(model), [0, 0, 0], [0, 0, 0])
    record = round_record(1, plain, [model], [evaluation], 1.0, served)
    assert all(value is not None for value in record.client_suspicion)

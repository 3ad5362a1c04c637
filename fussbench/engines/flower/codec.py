"""What crosses the wire between the ServerApp and a ClientApp, as Flower records.

Server to client (``train``): the global model, the round and the client's seed, and only
when a resumed run needs it, the client's own model of its last round (FedMOON's
"previous" model, which the client otherwise keeps in its Flower context).

Client to server (``train`` reply): exactly the fields of a
:class:`~fussbench.federation.messages.ClientUpdate` (model arrays, n_samples,
cluster_counts), plus a report of four numbers the in-process engine records in
``rounds.csv`` too: the mean training loss, the training time, and the client's mIoU and
pixel accuracy on its own images. Features, images, labels and neighbour lists never
leave a client.

Client to server (``query`` reply): the client number of the node (its partition id).

Under ``privacy.secure_aggregation`` a round is Flower's SecAgg+ protocol
(:mod:`.secure`), whose four stages all travel as ``train`` messages in Flower's legacy
records. Server to client: the protocol's settings, the neighbours' public keys, the
others' encrypted key shares together with the train instruction (a legacy ``FitIns``:
the global model's arrays in key order, the round, the seed and the public
:class:`~.secure_sum.SumPlan`), and which neighbours dropped. Client to server: two
public keys, its key shares encrypted for each neighbour, then its masked, quantised
summands (int64, modulo 2^32) with the report's four numbers and its weight (the image
count, as without secure aggregation; a legacy ``FitRes`` whose arrays Flower's mod
has emptied), then the shares that unmask the sum. Its plain update never leaves it.

An aggregator's query, after training (``query.aggregator``, e.g. FedCC-Auto's candidates):
server to client, the query's type, arrays and config
(:class:`~fussbench.federation.query.Query`); client to server, the answer's arrays and
nothing else (for FedCC-Auto, exactly J float64 scores).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict
from flwr.common import (
    Code,
    FitIns,
    FitRes,
    Scalar,
    Status,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.compat.common import recorddict_compat as compat
from flwr.supercore.inflatable.inflatable_object import get_all_nested_objects

from fussbench.errors import FussbenchError
from fussbench.federation.messages import ClientUpdate
from fussbench.federation.outcome import ClientReport
from fussbench.federation.query import Query, query_class
from fussbench.model.head import ModelArrays

from .secure_sum import SumPlan

MODEL = "model"
PREVIOUS = "previous"
INSTRUCTION = "instruction"
UPDATE_ARRAYS = "update.arrays"
UPDATE_COUNTS = "update.cluster_counts"
UPDATE_SIZE = "update.n_samples"
REPORT = "report"
NODE = "node"
QUERY_MESSAGE = "query.aggregator"
"""Message type of an aggregator's query (the ClientApp's ``query`` action
``aggregator``)."""
QUERY_TYPE = "query.type"
QUERY_ARRAYS = "query.arrays"
QUERY_CONFIG = "query.config"
ANSWER = "answer"

REPLY_RECORDS = (UPDATE_ARRAYS, UPDATE_COUNTS, UPDATE_SIZE, REPORT)
"""Every record of a train reply: the ClientUpdate fields and the report."""


@dataclass(frozen=True)
class TrainInstruction:
    """One client's work for one round.

    Attributes:
        model: the global model (``head.*`` and ``centroids`` (n_clusters, dim)), float32.
        round: 1-based round number.
        seed: the client's training seed, ``client_seed(run seed, round, client)``.
        previous: the client's own model of its last round, only when the run resumed.
    """

    model: ModelArrays
    round: int
    seed: int
    previous: ModelArrays | None = None


def arrays_to_record(arrays: ModelArrays) -> ArrayRecord:
    """A model's named arrays as an ArrayRecord (same keys, dtypes and shapes)."""
    return ArrayRecord({key: Array(np.ascontiguousarray(value)) for key, value in arrays.items()})


def record_to_arrays(record: ArrayRecord) -> ModelArrays:
    """The named arrays of an ArrayRecord, as numpy arrays."""
    return {key: array.numpy() for key, array in record.items()}


def encode_train(instruction: TrainInstruction) -> RecordDict:
    """The content of a ``train`` message."""
    content = RecordDict(
        {
            MODEL: arrays_to_record(instruction.model),
            INSTRUCTION: ConfigRecord({"round": instruction.round, "seed": instruction.seed}),
        }
    )
    if instruction.previous is not None:
        content[PREVIOUS] = arrays_to_record(instruction.previous)
    return content


def decode_train(content: RecordDict) -> TrainInstruction:
    """The instruction a ``train`` message carries."""
    config = _record(content, INSTRUCTION, ConfigRecord)
    previous = content.get(PREVIOUS)
    return TrainInstruction(
        model=record_to_arrays(_record(content, MODEL, ArrayRecord)),
        round=int(config["round"]),
        seed=int(config["seed"]),
        previous=record_to_arrays(previous) if previous is not None else None,
    )


def encode_reply(update: ClientUpdate, report: ClientReport) -> RecordDict:
    """The content of a ``train`` reply: the update's fields (counts only when the update
    has them) and the report."""
    counts = (
        {}
        if update.cluster_counts is None
        else {
            UPDATE_COUNTS: arrays_to_record(
                {"cluster_counts": np.asarray(update.cluster_counts, dtype=np.int64)}
            )
        }
    )
    return RecordDict(
        {
            UPDATE_ARRAYS: arrays_to_record(update.arrays),
            **counts,
            UPDATE_SIZE: ConfigRecord({"n_samples": int(update.n_samples)}),
            REPORT: MetricRecord(_report_values(report)),
        }
    )


def decode_reply(content: RecordDict) -> tuple[ClientUpdate, ClientReport]:
    """The update and report of a ``train`` reply.

    Raises:
        FussbenchError: a record is missing or another record is present.
    """
    unexpected = sorted(set(content) - set(REPLY_RECORDS))
    if unexpected:
        raise FussbenchError(f"train reply carries unexpected records {unexpected}")
    counts = (
        record_to_arrays(_record(content, UPDATE_COUNTS, ArrayRecord))["cluster_counts"]
        if UPDATE_COUNTS in content
        else None
    )
    size = _record(content, UPDATE_SIZE, ConfigRecord)
    report = _record(content, REPORT, MetricRecord)
    update = ClientUpdate(
        arrays=record_to_arrays(_record(content, UPDATE_ARRAYS, ArrayRecord)),
        n_samples=int(size["n_samples"]),
        cluster_counts=counts,
    )
    return update, _report(report)


def encode_secure_train(instruction: TrainInstruction, plan: SumPlan) -> FitIns:
    """The train instruction of a SecAgg+ round, as the legacy ``FitIns`` Flower's
    workflow sends in its 'collect masked vectors' stage: the global model's arrays in
    key order, and the round, the seed, the keys and the plan as config.

    Raises:
        FussbenchError: the instruction carries a previous model (the server of a secure
            run never holds one).
    """
    if instruction.previous is not None:
        raise FussbenchError("a secure round's instruction carries no previous model")
    keys = sorted(instruction.model)
    config: dict[str, Scalar] = {
        "round": instruction.round,
        "seed": instruction.seed,
        "keys": json.dumps(keys),
        "plan": plan.to_json(),
    }
    parameters = ndarrays_to_parameters([instruction.model[key] for key in keys])
    return FitIns(parameters, config)


def decode_secure_train(content: RecordDict) -> tuple[TrainInstruction, SumPlan]:
    """The instruction and the plan of a SecAgg+ round's train message."""
    fitins = compat.recorddict_to_fitins(content, keep_input=True)
    config = fitins.config
    keys = json.loads(str(config["keys"]))
    arrays = parameters_to_ndarrays(fitins.parameters)
    instruction = TrainInstruction(
        model=dict(zip(keys, arrays, strict=True)),
        round=int(config["round"]),
        seed=int(config["seed"]),
    )
    return instruction, SumPlan.from_json(str(config["plan"]))


def encode_secure_reply(
    weight: int, summands: list[np.ndarray], report: ClientReport
) -> RecordDict:
    """The legacy ``FitRes`` a client hands Flower's SecAgg+ mod: its weight m_k as
    ``num_examples``, its summands (which the mod masks, then removes from the reply) and
    the report's four numbers."""
    parameters = ndarrays_to_parameters(summands)
    metrics: dict[str, Scalar] = dict(_report_values(report))
    return compat.fitres_to_recorddict(
        FitRes(Status(Code.OK, ""), parameters, weight, metrics), True
    )


def decode_secure_report(fitres: FitRes) -> ClientReport:
    """The report a client's SecAgg+ reply carries (its ``FitRes`` metrics)."""
    return _report(fitres.metrics)


def content_bytes(content: RecordDict) -> int:
    """Bytes of a message's content as Flower ships it: every object of its tree (the
    records, arrays and array chunks, each once), serialised; the message's metadata and
    the transport's framing are not counted."""
    return sum(len(item.deflate()) for item in get_all_nested_objects(content).values())


def encode_query(query: Query) -> RecordDict:
    """The content of a ``query.aggregator`` message: the query's type, arrays and config."""
    return RecordDict(
        {
            QUERY_TYPE: ConfigRecord({"type": query.type_name()}),
            QUERY_ARRAYS: arrays_to_record(query.arrays()),
            QUERY_CONFIG: ConfigRecord(query.config()),
        }
    )


def decode_query(content: RecordDict) -> Query:
    """The query of a ``query.aggregator`` message, rebuilt from its type.

    Raises:
        FussbenchError: a record is missing, or the type is not a Query of the fussbench
            package (:func:`~fussbench.federation.query.query_class`).
    """
    kind = query_class(str(_record(content, QUERY_TYPE, ConfigRecord)["type"]))
    arrays = record_to_arrays(_record(content, QUERY_ARRAYS, ArrayRecord))
    return kind.rebuild(arrays, dict(_record(content, QUERY_CONFIG, ConfigRecord)))


def encode_answer(answer: ModelArrays) -> RecordDict:
    """The content of a ``query.aggregator`` reply: the answer's arrays, nothing else."""
    return RecordDict({ANSWER: arrays_to_record(answer)})


def decode_answer(content: RecordDict) -> ModelArrays:
    """The answer of a ``query.aggregator`` reply (its array names are checked against the
    query by the exchange).

    Raises:
        FussbenchError: the answer record is missing or another record is present.
    """
    unexpected = sorted(set(content) - {ANSWER})
    if unexpected:
        raise FussbenchError(f"query reply carries unexpected records {unexpected}")
    return record_to_arrays(_record(content, ANSWER, ArrayRecord))


def encode_node(client: int) -> RecordDict:
    """The content of a ``query`` reply: which client this node serves."""
    return RecordDict({NODE: ConfigRecord({"client": client})})


def decode_node(content: RecordDict) -> int:
    """The client number in a ``query`` reply."""
    return int(_record(content, NODE, ConfigRecord)["client"])


def _report_values(report: ClientReport) -> dict[str, float]:
    """A report's four numbers by name, as a reply carries them."""
    return {
        "loss": float(report.loss),
        "train_seconds": float(report.train_seconds),
        "local_miou": float(report.local_miou),
        "local_accuracy": float(report.local_accuracy),
    }


def _report(values: Mapping[str, Any]) -> ClientReport:
    """The report of :func:`_report_values`."""
    return ClientReport(
        loss=float(values["loss"]),
        train_seconds=float(values["train_seconds"]),
        local_miou=float(values["local_miou"]),
        local_accuracy=float(values["local_accuracy"]),
    )


def _record(content: RecordDict, key: str, kind: type) -> ArrayRecord | ConfigRecord | MetricRecord:
    """``content[key]``, checked to be a ``kind``."""
    record = content.get(key)
    if not isinstance(record, kind):
        raise FussbenchError(f"Flower message lacks its '{key}' {kind.__name__}")
    return record

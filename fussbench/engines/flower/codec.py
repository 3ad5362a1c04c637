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

An aggregator's query, after training (``query.aggregator``, e.g. FedCC-Auto's candidates):
server to client, the query's type, arrays and config
(:class:`~fussbench.federation.query.Query`); client to server, the answer's arrays and
nothing else (for FedCC-Auto, exactly J float64 scores).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict

from fussbench.errors import FussbenchError
from fussbench.federation.messages import ClientUpdate
from fussbench.federation.outcome import ClientReport
from fussbench.federation.query import Query, query_class
from fussbench.model.head import ModelArrays

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
            REPORT: MetricRecord(
                {
                    "loss": float(report.loss),
                    "train_seconds": float(report.train_seconds),
                    "local_miou": float(report.local_miou),
                    "local_accuracy": float(report.local_accuracy),
                }
            ),
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
    return update, ClientReport(
        loss=float(report["loss"]),
        train_seconds=float(report["train_seconds"]),
        local_miou=float(report["local_miou"]),
        local_accuracy=float(report["local_accuracy"]),
    )


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


def _record(content: RecordDict, key: str, kind: type) -> ArrayRecord | ConfigRecord | MetricRecord:
    """``content[key]``, checked to be a ``kind``."""
    record = content.get(key)
    if not isinstance(record, kind):
        raise FussbenchError(f"Flower message lacks its '{key}' {kind.__name__}")
    return record

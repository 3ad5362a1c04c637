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

FedCC-Auto only, after training (``query.score``): server to client, the candidate global
models (their shared head once, the (J, n_clusters, dim) centroids, how many images to
score); client to server, exactly J float64 scores and nothing else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict

from fussbench.errors import FussbenchError
from fussbench.federation.auto import Candidates
from fussbench.federation.messages import ClientUpdate
from fussbench.model.head import ModelArrays

MODEL = "model"
PREVIOUS = "previous"
INSTRUCTION = "instruction"
UPDATE_ARRAYS = "update.arrays"
UPDATE_COUNTS = "update.cluster_counts"
UPDATE_SIZE = "update.n_samples"
REPORT = "report"
NODE = "node"
SCORE_MESSAGE = "query.score"
"""Message type of FedCC-Auto's scoring exchange (the ClientApp's ``query`` action
``score``)."""
CANDIDATE_HEAD = "candidates.head"
CANDIDATE_CENTROIDS = "candidates.centroids"
SCORING = "scoring"
SCORES = "scores"

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


@dataclass(frozen=True)
class ClientReport:
    """What the client reports besides its update (NaN scores: not evaluated).

    Attributes:
        loss: mean training loss of the round.
        train_seconds: wall time of local training.
        local_miou, local_accuracy: the trained model on the client's own images.
    """

    loss: float
    train_seconds: float
    local_miou: float
    local_accuracy: float


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


def encode_candidates(candidates: Candidates) -> RecordDict:
    """The content of a ``query.score`` message (the candidates' names stay on the server:
    the client answers in the order of the centroids)."""
    return RecordDict(
        {
            CANDIDATE_HEAD: arrays_to_record(candidates.head),
            CANDIDATE_CENTROIDS: arrays_to_record({"centroids": candidates.centroids}),
            SCORING: ConfigRecord({"max_images": int(candidates.max_images)}),
        }
    )


def decode_candidates(content: RecordDict) -> tuple[ModelArrays, np.ndarray, int]:
    """(shared head, (J, n_clusters, dim) centroids, images to score) of a ``query.score``
    message."""
    centroids = record_to_arrays(_record(content, CANDIDATE_CENTROIDS, ArrayRecord))
    return (
        record_to_arrays(_record(content, CANDIDATE_HEAD, ArrayRecord)),
        centroids["centroids"],
        int(_record(content, SCORING, ConfigRecord)["max_images"]),
    )


def encode_scores(scores: np.ndarray) -> RecordDict:
    """The content of a ``query.score`` reply: the (J,) scores as float64, nothing else."""
    values = np.asarray(scores, dtype=np.float64)
    return RecordDict({SCORES: arrays_to_record({SCORES: values})})


def decode_scores(content: RecordDict) -> np.ndarray:
    """The scores of a ``query.score`` reply.

    Raises:
        FussbenchError: the scores record is missing or another record is present.
    """
    unexpected = sorted(set(content) - {SCORES})
    if unexpected:
        raise FussbenchError(f"score reply carries unexpected records {unexpected}")
    record = record_to_arrays(_record(content, SCORES, ArrayRecord))
    if set(record) != {SCORES}:
        raise FussbenchError(f"score reply carries arrays {sorted(record)}, expected ['scores']")
    return record[SCORES]


def is_usable(update: ClientUpdate, loss: float) -> bool:
    """Whether an update may be aggregated: a finite loss and finite arrays."""
    return math.isfinite(loss) and all(np.isfinite(a).all() for a in update.arrays.values())


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

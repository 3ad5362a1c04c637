"""The ClientApp of the ``flower`` engine: one client's training on its own SuperNode.

The SuperNode's node config names the client and its data folder
(``--node-config 'partition-id=0 data-dir="/data/site0"'``); the ClientApp reads nothing
else. A ``train`` message runs :meth:`FederatedClient.fit` from the global model with the
seed the server sent, scores the trained model on the client's own images and replies
with the update; a ``query.aggregator`` message rebuilds the aggregator's query (e.g.
FedCC-Auto's candidates) and replies with its answer from the client's own images only.
The client's last model (FedMOON's "previous" model) stays in the node's Flower context
between rounds. An exception becomes an error reply naming it, so the server leaves the
client out of the round as the in-process engine does. Under ``privacy.mechanism: local``
the update is clipped and noised here, on the node, with the in-process engine's function
and seed. Under ``privacy.secure_aggregation`` every train message is a stage of Flower's
SecAgg+, answered through Flower's ``secaggplus_mod`` (:mod:`.secure`): the update is
masked here and never leaves the node as it is.
"""

from __future__ import annotations

import json
import math
import sys
import traceback
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
from flwr.app import ArrayRecord, Context, Error, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.common.constant import ErrorCode
from threadpoolctl import threadpool_limits

from fussbench.evaluation.predict import evaluate_model
from fussbench.federation.client import FederatedClient
from fussbench.federation.faults import misbehave
from fussbench.federation.messages import ClientUpdate
from fussbench.federation.outcome import ClientOutcome, ClientReport, is_usable
from fussbench.model.head import ModelArrays
from fussbench.model.training import ClientData
from fussbench.params import Params
from fussbench.privacy.mechanism import release

from .codec import (
    TrainInstruction,
    arrays_to_record,
    decode_query,
    decode_train,
    encode_answer,
    encode_node,
    encode_reply,
    record_to_arrays,
)
from .runconfig import (
    FAULT,
    OBJECTIVE,
    PARAMS,
    TRAIN_CACHE,
    config_value,
    fault_from_json,
    objective_from_json,
    params_from_json,
)
from .secure import secure_train
from .site import Site, open_site

PARTITION_ID = "partition-id"
DATA_DIR = "data-dir"
KEPT = "fussbench.previous"
"""Key of the client's last trained model in the node's Flower context."""

app = ClientApp()


@app.query()
def query(message: Message, context: Context) -> Message:
    """Which client this node serves (its data folder is checked on the way)."""
    return _reply(message, lambda: encode_node(_open_site(context).client))


@app.query("aggregator")
def answer(message: Message, context: Context) -> Message:
    """Answer the aggregator's query in ``message`` from this client's own images."""
    return _reply(message, lambda: _answer(message, context))


@app.train()
def train(message: Message, context: Context) -> Message:
    """One round of local training from the global model in ``message``; under
    ``privacy.secure_aggregation``, one stage of SecAgg+ (:func:`~.secure.secure_train`),
    whose third stage trains."""
    if _params(context).privacy.secure_aggregation:
        fit = partial(_fit, context=context)
        return _guarded(message, lambda: secure_train(message, context, fit))
    return _reply(message, lambda: _train(message, context))


def _reply(message: Message, work: Callable[[], RecordDict]) -> Message:
    """The reply with ``work()``'s content, or an error reply naming the exception."""
    return _guarded(message, lambda: Message(work(), reply_to=message))


def _guarded(message: Message, work: Callable[[], Message]) -> Message:
    """``work()``'s reply, or an error reply to ``message`` naming the exception."""
    try:
        return work()
    except Exception as error:  # the server records the reason and goes on without us
        traceback.print_exc(file=sys.stderr)
        reason = f"{type(error).__name__}: {error}"
        return Message(Error(ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason), reply_to=message)


def _params(context: Context) -> Params:
    """The run's params (the run config's JSON)."""
    return params_from_json(config_value(context.run_config, PARAMS))


def _open_site(context: Context) -> Site:
    """The node's data folder, checked against the run's training cache."""
    client = int(config_value(context.node_config, PARTITION_ID))
    directory = Path(config_value(context.node_config, DATA_DIR))
    expected = json.loads(config_value(context.run_config, TRAIN_CACHE))
    return open_site(directory, client, expected)


def _train(message: Message, context: Context) -> RecordDict:
    """The reply to a ``train`` message: what :func:`_fit` leaves to send."""
    sent = _fit(decode_train(message.content), context)
    return encode_reply(sent.update, sent.report)


def _fit(instruction: TrainInstruction, context: Context) -> ClientOutcome:
    """The client's round from ``instruction``: trained, scored on its own images, then
    changed by its fault and noised under ``privacy.mechanism: local``, as in-process (an
    unusable update is left as it is, with its failure)."""
    params = _params(context)
    objective = objective_from_json(config_value(context.run_config, OBJECTIVE))
    torch.set_num_threads(params.runtime.threads)
    threadpool_limits(params.runtime.threads)
    site = _open_site(context)
    config = params.train_config()
    data = ClientData.from_cache(site.cache.features, site.cache.pooled, config.knn_k)
    k_range = tuple(params.model.k_range) if params.model.auto else None
    client = FederatedClient(data, config, objective, k_range)
    kept = context.state.get(KEPT)
    if instruction.previous is not None:
        client.restore(instruction.previous)
    elif isinstance(kept, ArrayRecord):
        client.restore(record_to_arrays(kept))
    update, stats = client.fit(instruction.model, instruction.seed)
    trained = client.trained()  # stays here: the update may carry code sums instead
    context.state[KEPT] = arrays_to_record(trained)
    local = _score_locally(update, trained, stats.loss, site, params)
    fault = fault_from_json(config_value(context.run_config, FAULT))
    report = ClientReport(stats.loss, stats.seconds, *local)
    if not is_usable(update, stats.loss):  # the server leaves it out
        return ClientOutcome(update, report, failure="non-finite loss or weights")
    # as in-process: a fault changes a finished update, then local DP noises it
    sent = misbehave(
        ClientOutcome(update, report),
        instruction.model,
        fault,
        site.client,
        instruction.round,
        instruction.seed,
    )
    return release(sent, instruction.model, params.privacy, instruction.seed)


def _answer(message: Message, context: Context) -> RecordDict:
    """The client's answer to the query (:meth:`FederatedClient.answer`), the only reply."""
    params = _params(context)
    torch.set_num_threads(params.runtime.threads)
    threadpool_limits(params.runtime.threads)
    site = _open_site(context)
    query = decode_query(message.content)
    config = params.train_config()
    data = ClientData.from_cache(site.cache.features, site.cache.pooled, config.knn_k)
    return encode_answer(FederatedClient(data, config).answer(query))


def _score_locally(
    update: ClientUpdate, trained: ModelArrays, loss: float, site: Site, params: Params
) -> tuple[float, float]:
    """(mIoU, accuracy) of the ``trained`` model on at most ``evaluation.local_max_images``
    of the client's own images; NaN for a non-finite ``update``, which the server leaves
    out."""
    if not is_usable(update, loss):
        return math.nan, math.nan
    rows = site.local_rows(params.evaluation.local_max_images)
    evaluation = evaluate_model(
        trained,
        site.cache.features[rows],
        site.cache.labels[rows],
        params.dataset_spec().n_classes,
        params.evaluation.matching,
    )
    return evaluation.scores.miou, evaluation.scores.accuracy

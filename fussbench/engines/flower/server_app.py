"""The ServerApp of the ``flower`` engine: the round loop, next to the SuperLink.

It reads its job from the job folder named in the run config, waits for one SuperNode per
client, learns which node serves which client, runs :class:`FussbenchStrategy` and writes
the state after every round and the run's outcome into the job folder. The evaluation
split is read here, on the server, as in the in-process engine.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from flwr.app import Context, Message, MessageType, RecordDict
from flwr.serverapp import Grid, ServerApp
from threadpoolctl import threadpool_limits

from fussbench.errors import FussbenchError
from fussbench.evaluation.predict import Evaluation, evaluate_model
from fussbench.features.cache import open_split
from fussbench.federation.checkpoint import save_checkpoint
from fussbench.federation.run import FederationRun
from fussbench.model.head import ModelArrays

from .codec import arrays_to_record, decode_node
from .runconfig import JOB_DIR, JobFolder, config_value
from .strategy import FussbenchStrategy

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run the job of the run config's job folder; record how it ended."""
    folder = JobFolder(Path(config_value(context.run_config, JOB_DIR)))
    try:
        serve(grid, folder)
    except BaseException as error:
        reason = str(error) if isinstance(error, FussbenchError) else repr(error)
        folder.write_outcome(reason)
        raise
    folder.write_outcome(None)


def serve(grid: Grid, folder: JobFolder) -> None:
    """Run the remaining rounds of the job on ``grid``.

    Raises:
        FussbenchError: SuperNodes missing or serving the wrong clients, or a round with
            fewer than ``federation.min_clients`` finishing clients.
    """
    job = folder.read_job()
    params = job.params
    torch.set_num_threads(params.runtime.threads)
    threadpool_limits(params.runtime.threads)
    split = open_split(job.eval_dir, job.eval_fingerprint)

    def evaluate(arrays: ModelArrays) -> Evaluation:
        return evaluate_model(
            arrays, split.features, split.labels, job.n_classes, params.evaluation.matching
        )

    run = FederationRun(
        aggregator=job.aggregator,
        objective=job.objective,
        initial=job.initial,
        rounds=job.rounds,
        seed=job.seed,
        evaluate=evaluate,
        min_clients=job.min_clients,
        on_round=lambda done: save_checkpoint(folder.state_path(done.round), done, job.fingerprint),
        resume=job.resume,
        privacy=params.privacy,
    )
    nodes = discover_nodes(grid, job.n_clients, job.node_timeout)
    strategy = FussbenchStrategy(run, nodes, job.round_timeout, job.secure)
    state = strategy.state
    strategy.start(
        grid,
        arrays_to_record(state.models[0]),
        num_rounds=run.rounds - state.round,
        timeout=job.round_timeout,
        evaluate_fn=strategy.evaluate_round,
    )


def discover_nodes(grid: Grid, n_clients: int, timeout: float) -> dict[int, int]:
    """Wait for the SuperNodes and ask each which client it serves: node id -> client.

    Raises:
        FussbenchError: fewer than ``n_clients`` nodes within ``timeout`` seconds, or nodes
            that do not serve clients 0..n_clients-1 once each.
    """
    deadline = time.monotonic() + timeout
    while len(node_ids := sorted(grid.get_node_ids())) < n_clients:
        if time.monotonic() > deadline:
            raise FussbenchError(
                f"only {len(node_ids)} of {n_clients} SuperNodes connected within {timeout:g} s; "
                "start one flower-supernode per client with "
                "--node-config 'partition-id=K data-dir=\"SITE_K\"'"
            )
        time.sleep(0.5)
    queries = [
        Message(RecordDict(), dst_node_id=node, message_type=MessageType.QUERY) for node in node_ids
    ]
    nodes: dict[int, int] = {}
    problems: list[str] = []
    for reply in grid.send_and_receive(queries, timeout=timeout):
        if reply.has_error():
            problems.append(str(reply.error.reason))
        else:
            nodes[reply.metadata.src_node_id] = decode_node(reply.content)
    if sorted(nodes.values()) != list(range(n_clients)):
        raise FussbenchError(
            f"the SuperNodes serve clients {sorted(nodes.values())}, the partition has clients "
            f"0..{n_clients - 1}, one SuperNode each (node config partition-id)"
            + (f": {'; '.join(problems)}" if problems else "")
        )
    return nodes

"""Start, watch and always stop the Flower processes of a run.

Everything listens on 127.0.0.1, on free ports: the SuperLink (one HTTP port for its
Fleet, Control and runtime APIs) and each SuperNode (its runtime API). Every process runs
in its own session with its own ``FLWR_HOME`` inside the run's temporary folder, and is
stopped on the way out, also after a failure: SIGTERM to its process group, then SIGKILL.
Runtime installation of app dependencies (``uv sync``, which would go to the network) is
switched off; the apps run in this environment.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import tomli_w

from fussbench.errors import FussbenchError

CONNECTION = "fussbench"
"""Name of the SuperLink connection in the generated Flower configuration."""

STARTUP_TIMEOUT_S = 60.0
STOP_GRACE_S = 10.0


@dataclass(frozen=True)
class Connection:
    """How ``flwr run`` reaches a SuperLink.

    Attributes:
        address: ``host:port`` of the SuperLink.
        insecure: plain HTTP, no TLS (local runs only).
        root_certificates: CA certificate (PEM) that signed the SuperLink's certificate;
            None with TLS: the system's trust store.
    """

    address: str
    insecure: bool = False
    root_certificates: Path | None = None

    def toml(self) -> dict[str, object]:
        """This connection as a ``[superlink.<name>]`` table of Flower's configuration."""
        table: dict[str, object] = {"address": self.address, "insecure": self.insecure}
        if self.root_certificates is not None:
            table["root-certificates"] = str(self.root_certificates.resolve())
        return table


class ManagedProcess:
    """A Flower command running in its own session, its output going to ``log_path``."""

    def __init__(self, name: str, command: list[str], home: Path, log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        home.mkdir(parents=True, exist_ok=True)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "wb") as log:
            self.popen = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=flower_env(home),
                cwd=home,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self) -> None:
        """SIGTERM to the process group; after :data:`STOP_GRACE_S` seconds, SIGKILL to
        whatever is left of it."""
        with suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=STOP_GRACE_S)
        with suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait()

    def last_line(self) -> str:
        """The last message of the log, for error messages: its last non-empty line, or
        the text of the boxed error it ends with (as ``flwr`` prints errors)."""
        lines = [
            line.strip()
            for line in self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
            if line.strip()
        ]
        if not lines:
            return "(no output)"
        if not lines[-1].startswith("╰"):
            return lines[-1]
        top = max((i for i, line in enumerate(lines) if line.startswith("╭")), default=-1)
        return " ".join(line.strip("│ ") for line in lines[top + 1 : -1])


@dataclass(frozen=True)
class LocalFederation:
    """A running SuperLink and its SuperNodes, all on 127.0.0.1."""

    connection: Connection
    superlink: ManagedProcess
    supernodes: list[ManagedProcess]

    def check(self) -> None:
        """Raise FussbenchError when the SuperLink has exited (a SuperNode may stop: that
        is a client fault the server records)."""
        if not self.superlink.alive():
            raise FussbenchError(
                f"the Flower SuperLink exited with status {self.superlink.popen.returncode}: "
                f"{self.superlink.last_line()}"
            )


def flower_env(home: Path) -> dict[str, str]:
    """The environment of a Flower process: this Python's scripts first on PATH, its own
    ``FLWR_HOME``, no telemetry, no update check, no dependency installation."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["FLWR_HOME"] = str(home)
    env["FLWR_TELEMETRY_ENABLED"] = "0"
    env["FLWR_DISABLE_UPDATE_CHECK"] = "1"
    env["FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION"] = "1"
    return env


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_listening(process: ManagedProcess, port: int) -> None:
    """Wait until ``process`` accepts connections on 127.0.0.1:``port``."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if not process.alive():
            raise FussbenchError(
                f"Flower {process.name} exited with status {process.popen.returncode}: "
                f"{process.last_line()}"
            )
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise FussbenchError(
        f"Flower {process.name} did not listen on 127.0.0.1:{port} within "
        f"{STARTUP_TIMEOUT_S:g} s: {process.last_line()}"
    )


@contextmanager
def local_federation(root: Path, sites: list[Path]) -> Iterator[LocalFederation]:
    """A SuperLink and one SuperNode per site folder (partition id = position), on
    127.0.0.1, with homes and logs under ``root``; all stopped on exit."""
    scripts = Path(sys.executable).parent
    started: list[ManagedProcess] = []
    try:
        port = free_port()
        superlink = ManagedProcess(
            "superlink",
            [
                str(scripts / "flower-superlink"),
                "--insecure",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--disable-runtime-dependency-installation",
            ],
            root / "superlink",
            root / "logs" / "superlink.log",
        )
        started.append(superlink)
        _wait_listening(superlink, port)
        for client, site in enumerate(sites):
            node_config = f"partition-id={client} data-dir={json.dumps(str(site.resolve()))}"
            node = ManagedProcess(
                f"supernode {client}",
                [
                    str(scripts / "flower-supernode"),
                    "--insecure",
                    "--superlink",
                    f"127.0.0.1:{port}",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(free_port()),
                    "--node-config",
                    node_config,
                ],
                root / f"supernode-{client}",
                root / "logs" / f"supernode-{client}.log",
            )
            started.append(node)
        connection = Connection(f"127.0.0.1:{port}", insecure=True)
        yield LocalFederation(connection, superlink, started[1:])
    finally:
        for process in reversed(started):
            process.stop()


def write_app(directory: Path, config: dict[str, str]) -> Path:
    """Write a Flower app folder: a ``pyproject.toml`` naming fussbench's ServerApp and
    ClientApp and carrying the run config. ``flwr run`` may rewrite it: it is generated
    per run, never the project's own."""
    pyproject = {
        "project": {
            "name": "fussbench-federation",
            "version": "1.0.0",
            "description": "fussbench federated rounds (generated per run)",
            "dependencies": [],
        },
        "tool": {
            "flwr": {
                "app": {
                    "publisher": "fussbench",
                    "components": {
                        "serverapp": "fussbench.engines.flower.server_app:app",
                        "clientapp": "fussbench.engines.flower.client_app:app",
                    },
                    "config": config,
                }
            }
        },
    }
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "pyproject.toml").write_text(tomli_w.dumps(pyproject), encoding="utf-8")
    return directory


def submit(
    connection: Connection,
    app_dir: Path,
    root: Path,
    poll: Callable[[], bool],
    poll_seconds: float = 0.5,
) -> ManagedProcess:
    """Run ``flwr run APP_DIR`` against ``connection`` and wait for it to end.

    ``poll`` is called every ``poll_seconds`` while it runs; when it returns True (the
    ServerApp has finished), ``flwr run`` gets :data:`STOP_GRACE_S` seconds to end by
    itself. Exceptions from ``poll`` propagate; ``flwr run`` is stopped in any case.
    Returns the finished process (its log holds the run's streamed output).
    """
    home = root / "flwr-cli"
    home.mkdir(parents=True, exist_ok=True)
    config = {"superlink": {"default": CONNECTION, CONNECTION: connection.toml()}}
    (home / "config.toml").write_text(tomli_w.dumps(config), encoding="utf-8")
    command = [
        str(Path(sys.executable).parent / "flwr"),
        "run",
        str(app_dir.resolve()),
        CONNECTION,
        "--stream",
    ]
    process = ManagedProcess("flwr run", command, home, root / "logs" / "flwr-run.log")
    try:
        finished_at: float | None = None
        while process.alive():
            if poll() and finished_at is None:
                finished_at = time.monotonic()
            if finished_at is not None and time.monotonic() - finished_at > STOP_GRACE_S:
                break
            time.sleep(poll_seconds)
        poll()
    finally:
        process.stop()
    return process

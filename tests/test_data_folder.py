"""The ``folder`` dataset: importing any images/ + masks/ folder, its split, its errors and
the pipeline on it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from cli_workspace import cycle, invoke, make_workspace, rgb, run_pipeline
from PIL import Image

from fussbench.data.download import LocalSources, download_dataset
from fussbench.data.folder import FolderDataset
from fussbench.data.folder_import import FolderSource
from fussbench.data.registry import get_dataset
from fussbench.errors import FussbenchError

SIZE = (10, 6)
"""(width, height) of the miniature images."""

NAMES = [f"lineA/{index:03d}" for index in range(4)] + [f"lineB/{index:03d}" for index in range(3)]


BINARY = {"class_names": ("background", "defect")}
"""The ``folder`` dataset's settings, as ``folder.class_names`` in params would give."""


def make_folder(root: Path, names: list[str] = NAMES, values: tuple[int, ...] = (0, 0, 1, 255)):
    """``images/<name>.jpg`` with ``masks/<name>.png`` cycling through ``values``."""
    for number, name in enumerate(names):
        image, mask = root / "images" / f"{name}.jpg", root / "masks" / f"{name}.png"
        for path in (image, mask):
            path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rgb(*SIZE, number), "RGB").save(image)
        Image.fromarray(cycle(values, *SIZE), "L").save(mask)
    return root


def imported(tmp_path: Path, **source) -> Path:
    local = LocalSources(folder=FolderSource(root=tmp_path / "mine", **source))
    return download_dataset(
        get_dataset("folder", BINARY), tmp_path / "raw", tmp_path / "mirror", local=local
    )


def test_pairs_are_split_and_grouped_by_subfolder(tmp_path):
    make_folder(tmp_path / "mine")
    (tmp_path / "mine" / "images" / "notes.txt").write_text("not an image\n")
    dest = imported(tmp_path, test_fraction=0.3)
    spec = get_dataset("folder", BINARY)
    train, test = spec.samples(dest, "train"), spec.samples(dest, "test")
    assert len(test) == 2 and len(train) == 5
    assert sorted(sample.name for sample in train + test) == NAMES
    assert {sample.group for sample in train + test} == {"lineA", "lineB"}
    record = json.loads((dest / "SOURCE.json").read_text())
    assert record["samples_per_split"] == {"train": 5, "test": 2}
    assert record["split"] == "test_fraction 0.3, seed 0"
    again = imported(tmp_path, test_fraction=0.3)
    assert [sample.name for sample in spec.samples(again, "test")] == [s.name for s in test]
    label = spec.read_label(test[0].label)
    assert label.shape == (224, 224) and set(np.unique(label)) <= {0, 1, 255}


def test_split_file_names_the_test_pairs(tmp_path):
    make_folder(tmp_path / "mine")
    split_file = tmp_path / "test.txt"
    split_file.write_text("# held out\nlineB/000\n\nlineB/002\n")
    dest = imported(tmp_path, split_file=split_file)
    assert [sample.name for sample in get_dataset("folder", BINARY).samples(dest, "test")] == [
        "lineB/000",
        "lineB/002",
    ]
    split_file.write_text("lineC/000\n")
    with pytest.raises(FussbenchError, match=r"folder\.split_file=.*'lineC/000'"):
        imported(tmp_path, split_file=split_file)


def test_unmatched_pairs_and_missing_folders_are_named(tmp_path):
    root = make_folder(tmp_path / "mine")
    (root / "masks" / "lineA" / "001.png").unlink()
    Image.fromarray(cycle((0,), *SIZE), "L").save(root / "masks" / "extra.png")
    with pytest.raises(FussbenchError) as caught:
        imported(tmp_path)
    message = str(caught.value)
    assert "2 unmatched file(s)" in message
    assert "001.jpg: image has no mask" in message and "extra.png: mask has no image" in message
    with pytest.raises(FussbenchError, match=r"no such folder"):
        download_dataset(
            get_dataset("folder", BINARY),
            tmp_path / "raw",
            local=LocalSources(folder=FolderSource(root / "x")),
        )
    shutil.rmtree(root / "images")
    with pytest.raises(FussbenchError, match=r"images: no images/ folder here"):
        imported(tmp_path)
    with pytest.raises(FussbenchError, match="folder.root is not set"):
        download_dataset(get_dataset("folder", BINARY), tmp_path / "raw", local=LocalSources())
    assert not (tmp_path / "raw").exists()


def test_mask_values_outside_the_class_list_fail_validation(tmp_path):
    make_folder(tmp_path / "mine", values=(0, 1, 2))
    message = r"mine/masks/.*mask values 2 are outside folder\.label_values \[0, 1, 255\]"
    with pytest.raises(FussbenchError, match=message + ".*fix the file under folder.root"):
        imported(tmp_path)


def test_label_values_map_binary_masks_and_settings_are_checked(tmp_path):
    spec = FolderDataset(("ok", "defect"), label_values=(0, 255), ignore_index=None)
    raw = np.array([[0, 255], [255, 0]], np.uint8)
    assert spec.decode_label(raw, Path("m.png")).tolist() == [[0, 1], [1, 0]]
    with pytest.raises(FussbenchError, match="folder.class_names is empty"):
        FolderDataset(())
    with pytest.raises(FussbenchError, match="folder.label_values has 1 values for 2"):
        FolderDataset(("a", "b"), label_values=(0,))
    with pytest.raises(FussbenchError, match="folder.ignore_index 1 must be"):
        FolderDataset(("a", "b"), ignore_index=1)
    with pytest.raises(FussbenchError, match="folder.class_names is empty"):
        get_dataset("folder")


def test_pipeline_on_a_folder_with_one_dominant_client(tmp_path, monkeypatch):
    names = [f"{index:03d}" for index in range(10)]
    make_folder(tmp_path / "mine", names=names)
    folder = {"root": "mine", "class_names": ["background", "defect"], "image_size": [32, 32]}
    make_workspace(tmp_path, monkeypatch, {"folder": folder})
    metrics = run_pipeline("folder_quantity")
    summary = json.loads((tmp_path / "data/partitions/folder_quantity/partition.json").read_text())
    assert summary["client_sizes"] == [6, 1, 1]
    assert metrics["dataset"] == "folder" and metrics["eval_split"] == "test"
    assert metrics["n_clusters"] == 2 and 0.0 <= metrics["miou"] <= 100.0


def test_folder_settings_in_a_setup_are_refused(tmp_path, monkeypatch):
    make_workspace(tmp_path, monkeypatch, {})
    result = invoke(
        "partition", "-S", "setup=folder_quantity", "-S", "setups.folder_quantity.folder.root=x"
    )
    assert result.exit_code == 2
    assert "setups.folder_quantity sets 'folder'" in result.output

"""CamVid and magnetic tile specs, the registry and dataset validation, on tiny synthetic trees."""

from pathlib import Path

import numpy as np
import pytest
from synthetic import (
    CAMVID_COUNTS,
    CAMVID_NAMES,
    make_camvid,
    make_magnetic_tile,
    write_image,
    write_label,
)

from fussbench.data.camvid import CamVid
from fussbench.data.magnetic_tile import KIND_COUNTS, MagneticTile, count_splits, split_of
from fussbench.data.registry import DATASETS, get_dataset
from fussbench.data.samples import IGNORE_INDEX
from fussbench.data.validate import MAX_LISTED, validate_dataset
from fussbench.errors import FussbenchError


@pytest.fixture
def small_counts(monkeypatch):
    """Make both specs expect the synthetic trees' counts (2 pairs per magnetic tile kind)."""
    monkeypatch.setattr(CamVid, "split_counts", CAMVID_COUNTS)
    kind_counts = dict.fromkeys(KIND_COUNTS, 6)
    monkeypatch.setattr(MagneticTile, "split_counts", count_splits(kind_counts))
    return kind_counts


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_camvid_samples_pair_images_with_labels_and_group_by_sequence(tmp_path, suffix):
    root = make_camvid(tmp_path, suffix)
    samples = CamVid().samples(root, "train")
    assert [sample.name for sample in samples] == CAMVID_NAMES["train"]
    assert [sample.group for sample in samples] == ["0001TP", "0001TP", "0006R0"]
    assert samples[0].image == root / "train" / f"0001TP_000010{suffix}"
    assert samples[0].label == root / "trainannot" / "0001TP_000010.png"


def test_camvid_decodes_unlabelled_to_ignore_and_rejects_other_values(tmp_path):
    spec = CamVid()
    raw = np.array([[0, 10], [11, 5]], np.uint8)
    assert spec.decode_label(raw, tmp_path / "x.png").tolist() == [[0, 10], [IGNORE_INDEX, 5]]
    with pytest.raises(FussbenchError, match=r"x\.png: label values 12, 40 .*0\.\.11"):
        spec.decode_label(np.array([[12, 40, 3]], np.uint8), tmp_path / "x.png")


def test_camvid_read_label_resizes_to_image_size(tmp_path):
    make_camvid(tmp_path)
    spec = CamVid()
    label = spec.read_label(spec.samples(tmp_path, "val")[0].label)
    assert label.shape == spec.image_size and label.dtype == np.uint8
    assert set(np.unique(label)) <= {0, 3, 10, IGNORE_INDEX}


def test_camvid_unknown_split_lists_valid_ones(tmp_path):
    with pytest.raises(FussbenchError, match="unknown camvid split 'dev'.*train, val, test"):
        CamVid().samples(tmp_path, "dev")


def test_camvid_missing_folder_says_to_download(tmp_path):
    with pytest.raises(FussbenchError, match=r"train: folder missing.*fussbench download"):
        CamVid().samples(tmp_path, "train")


def test_camvid_image_and_label_without_partner_are_named(tmp_path):
    root = make_camvid(tmp_path)
    (root / "trainannot" / "0001TP_000010.png").unlink()
    write_label(root / "trainannot" / "0001TP_999999.png")
    with pytest.raises(FussbenchError) as caught:
        CamVid().samples(root, "train")
    message = str(caught.value)
    assert "0001TP_000010.jpg: image has no label" in message
    assert "0001TP_999999.png: label has no image" in message


def test_magnetic_tile_split_is_every_fifth_pair_per_kind(tmp_path):
    root = make_magnetic_tile(tmp_path, dict.fromkeys(KIND_COUNTS, 6))
    spec = MagneticTile()
    test = spec.samples(root, "test")
    train = spec.samples(root, "train")
    assert [sample.name for sample in test[:2]] == ["Blowhole__exp1_num_004", "Break__exp1_num_004"]
    assert len(test) == len(KIND_COUNTS) and len(train) == 5 * len(KIND_COUNTS)
    assert {sample.group for sample in train} == set(KIND_COUNTS)
    assert not {sample.name for sample in test} & {sample.name for sample in train}
    assert spec.samples(root, "test") == test


def test_magnetic_tile_counts_follow_the_split_rule():
    assert [split_of(index) for index in range(6)] == ["train"] * 4 + ["test", "train"]
    assert MagneticTile.split_counts == {"train": 435, "test": 107}
    for count in range(12):
        test = sum(split_of(index) == "test" for index in range(count))
        assert count_splits({"a": count, "b": 3}) == {"train": count + 3 - test, "test": test}


def test_magnetic_tile_thresholds_masks_at_128(tmp_path):
    raw = np.array([[0, 127, 128, 255]], np.uint8)
    assert MagneticTile().decode_label(raw, tmp_path / "m.png").tolist() == [[0, 0, 1, 1]]


def test_magnetic_tile_unknown_split_and_missing_kind(tmp_path):
    with pytest.raises(FussbenchError, match="valid splits: train, test"):
        MagneticTile().samples(tmp_path, "val")
    with pytest.raises(FussbenchError, match=r"MT_Blowhole/Imgs: folder missing"):
        MagneticTile().samples(tmp_path, "train")


def test_registry_returns_specs_and_lists_valid_names():
    assert set(DATASETS) == {"camvid", "magnetic_tile", "cityscapes", "cocostuff27", "folder"}
    assert isinstance(get_dataset("camvid"), CamVid)
    assert get_dataset("magnetic_tile").n_classes == 2
    with pytest.raises(FussbenchError, match="unknown dataset 'x'; valid names: camvid, magnetic"):
        get_dataset("x")


def test_validate_counts_a_sound_dataset(tmp_path, small_counts):
    assert validate_dataset(CamVid(), make_camvid(tmp_path / "c")) == CAMVID_COUNTS
    root = make_magnetic_tile(tmp_path / "m", small_counts)
    assert validate_dataset(MagneticTile(), root) == {"train": 30, "test": 6}


def _break_corrupt_image(root: Path) -> str:
    (root / "train" / "0001TP_000020.jpg").write_bytes(b"not a jpeg")
    return r"0001TP_000020\.jpg: not a readable image"


def _break_truncated_image(root: Path) -> str:
    path = root / "val" / "0016E5_07959.jpg"
    write_image(path.with_suffix(".tmp.jpg"))
    data = path.with_suffix(".tmp.jpg").read_bytes()
    path.with_suffix(".tmp.jpg").unlink()
    path.write_bytes(data[: len(data) // 2])
    return r"0016E5_07959\.jpg: not a readable image"


def _break_missing_label(root: Path) -> str:
    (root / "testannot" / "Seq05VD_f00000.png").unlink()
    return r"Seq05VD_f00000\.jpg: image has no label"


def _break_label_value(root: Path) -> str:
    write_label(root / "trainannot" / "0006R0_f00930.png", values=(1, 12, 200))
    return r"0006R0_f00930\.png: label values 12, 200 are outside 0\.\.11"


def _break_label_size(root: Path) -> str:
    write_label(root / "valannot" / "0016E5_07959.png", size=(4, 4))
    return r"0016E5_07959\.png: label is 4x4 but its image 0016E5_07959\.jpg is 8x6"


def _break_count(root: Path) -> str:
    for name in ("0001TP_008550.jpg", "0001TP_008550.png"):
        folder = "test" if name.endswith(".jpg") else "testannot"
        (root / folder / name).unlink()
    return r"split 'test': expected 2 samples, found 1"


@pytest.mark.parametrize(
    "breaker",
    [
        _break_corrupt_image,
        _break_truncated_image,
        _break_missing_label,
        _break_label_value,
        _break_label_size,
        _break_count,
    ],
)
def test_validate_names_the_broken_file_or_split(tmp_path, small_counts, breaker):
    root = make_camvid(tmp_path)
    expected = breaker(root)
    with pytest.raises(FussbenchError, match=expected) as caught:
        validate_dataset(CamVid(), root)
    assert "fussbench download" in str(caught.value).splitlines()[0]


def test_validate_lists_the_first_problems_and_counts_the_rest(tmp_path, monkeypatch):
    monkeypatch.setattr(CamVid, "split_counts", {"train": 1, "val": 1, "test": 1})
    root = tmp_path
    for index in range(MAX_LISTED + 3):
        write_image(root / "train" / f"0001TP_{index:06d}.jpg")
        write_label(root / "trainannot" / f"0001TP_{index:06d}.png", values=(99,))
    with pytest.raises(FussbenchError) as caught:
        validate_dataset(CamVid(), root)
    lines = str(caught.value).splitlines()
    assert lines[0].startswith(f"camvid at {root}: 16 problem(s)")
    assert lines[1] == f"  split 'train': expected 1 samples, found 13 under {root}"
    assert "val: folder missing" in lines[2]
    assert lines[-1] == "  ... and 6 more"
    assert len(lines) == MAX_LISTED + 2

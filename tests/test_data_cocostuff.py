"""COCO-Stuff-27: STEGO's fine-to-coarse table, the curated lists, the files' real layout
(COCO image zips, stuffthingmaps zip) and the pipeline with Dirichlet clients."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from cli_workspace import cycle, invoke, make_workspace, png_bytes, rgb, run_pipeline
from PIL import Image

from fussbench.data import cocostuff_download, cocostuff_fuss
from fussbench.data.cocostuff import CURATED_LIST, FINE_TO_COARSE, CocoStuff27
from fussbench.data.download import LocalSources, download_dataset
from fussbench.data.registry import get_dataset
from fussbench.errors import FussbenchError

IDS = {
    "train2017": ["000000000025", "000000000030", "000000000042", "000000000049"],
    "val2017": ["000000000139", "000000000285"],
}
UNLISTED = "000000000009"
"""An image of the zips that is not in the curated lists (COCO has 118k more)."""

FINE_VALUES = (156, 156, 156, 0, 2, 123, 255)
"""Mostly sky-other (-> sky), some person, car and unlabeled pixels."""


@pytest.fixture(autouse=True)
def miniature(monkeypatch):
    """Expect the miniature lists."""
    monkeypatch.setattr(CocoStuff27, "split_counts", {"train": 4, "val": 2})


def make_files(folder: Path) -> Path:
    """The five files in a ``download.cocostuff_files`` folder, in their real layouts."""
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(folder / cocostuff_download.LABELS_ZIP, "w") as labels:
        for split, ids in IDS.items():
            (folder / "curated" / split).mkdir(parents=True)
            (folder / "curated" / split / CURATED_LIST).write_text("\n".join(ids) + "\n")
            with zipfile.ZipFile(folder / f"{split}.zip", "w") as images:
                for number, image_id in enumerate([*ids, UNLISTED]):
                    width, height = (12, 8) if number % 2 else (8, 12)
                    pixels = rgb(width, height, number)
                    images.writestr(f"{split}/{image_id}.jpg", png_bytes(pixels, "RGB", "JPEG"))
                    label = png_bytes(cycle(FINE_VALUES, width, height), "L")
                    labels.writestr(f"{split}/{image_id}.png", label)
    return folder


def test_fine_to_coarse_is_stegos_table():
    assert len(FINE_TO_COARSE) == 182 and set(FINE_TO_COARSE) == set(range(27))
    spec = CocoStuff27()
    names = spec.class_names
    assert spec.n_classes == 27 and len(set(names)) == 27
    # person, bicycle, dog, pizza, tv; then stuff: sky-other, grass, wall-brick, sea
    for fine, coarse in [(0, "person"), (1, "vehicle"), (17, "animal"), (58, "food-things")]:
        assert names[FINE_TO_COARSE[fine]] == coarse
    for fine, coarse in [(71, "electronic"), (156, "sky"), (123, "plant"), (170, "wall")]:
        assert names[FINE_TO_COARSE[fine]] == coarse
    raw = np.array([[0, 156, 255], [181, 91, 2]], np.uint8)
    decoded = spec.decode_label(raw, Path("x.png"))
    assert decoded.tolist() == [[9, 23, 255], [24, 17, 11]]
    with pytest.raises(FussbenchError, match=r"x\.png: label values 182, 200 are outside"):
        spec.decode_label(np.array([[182, 200, 3]], np.uint8), Path("x.png"))


def test_images_are_scaled_to_cover_and_centre_cropped(tmp_path):
    spec = CocoStuff27(image_size=(4, 4))
    pixels = np.zeros((4, 8), np.uint8)
    pixels[:, 2:6] = 156  # the centre half of a wide label is sky
    Image.fromarray(pixels, "L").save(tmp_path / "wide.png")
    assert spec.read_label(tmp_path / "wide.png").tolist() == [[23] * 4] * 4
    Image.fromarray(rgb(6, 12), "RGB").save(tmp_path / "tall.png")
    assert spec.read_image(tmp_path / "tall.png").size == (4, 4)


def test_local_files_give_only_the_curated_images(tmp_path):
    files = make_files(tmp_path / "files")
    dest = download_dataset(
        get_dataset("cocostuff27"),
        tmp_path / "raw",
        None,
        local=LocalSources(cocostuff_files=files),
    )
    assert sorted(path.name for path in dest.iterdir()) == [
        "SOURCE.json",
        "annotations",
        "curated",
        "images",
    ]
    for split, ids in IDS.items():
        assert sorted(path.stem for path in (dest / "images" / split).iterdir()) == ids
        assert sorted(path.stem for path in (dest / "annotations" / split).iterdir()) == ids
    record = json.loads((dest / "SOURCE.json").read_text())
    assert record["obtained_from"] == "local"
    assert set(record["files_sha256"]) == set(cocostuff_download.FILES)
    assert record["samples_per_split"] == {"train": 4, "val": 2}
    samples = get_dataset("cocostuff27").samples(dest, "val")
    assert [sample.name for sample in samples] == IDS["val2017"]


def test_a_laid_out_copy_serves_as_mirror(tmp_path):
    local = LocalSources(cocostuff_files=make_files(tmp_path / "files"))
    download_dataset(get_dataset("cocostuff27"), tmp_path / "mirror" / "cocostuff27", local=local)
    dest = download_dataset(get_dataset("cocostuff27"), tmp_path / "raw", tmp_path / "mirror")
    record = json.loads((dest / "SOURCE.json").read_text())
    assert record["obtained_from"] == "mirror"
    assert record["samples_per_split"] == {"train": 4, "val": 2}


def test_download_fetches_the_official_urls(tmp_path):
    files = make_files(tmp_path / "files")
    calls: list[str] = []
    by_url = {url: files / name for name, url in cocostuff_download.FILES.items()}

    def fetch(url: str, target: Path) -> None:
        calls.append(url)
        if url not in by_url:
            raise OSError("not reachable")  # the FUSS lists: optional
        shutil.copyfile(by_url[url], target)

    download_dataset(get_dataset("cocostuff27"), tmp_path / "raw", None, fetch=fetch)
    assert calls[: len(by_url)] == list(cocostuff_download.FILES.values())
    assert calls[0] == "http://images.cocodataset.org/zips/train2017.zip"
    assert calls[2].endswith("cocostuffdataset/stuffthingmaps_trainval2017.zip")
    assert calls[3].endswith("/curated/train2017/Coco164kFull_Stuff_Coarse_7.txt")
    assert not (tmp_path / "raw" / cocostuff_download.DOWNLOADS).exists()


def test_failed_download_says_how_to_use_local_files(tmp_path):
    def offline(url: str, target: Path) -> None:
        raise OSError("network is unreachable")

    with pytest.raises(FussbenchError) as caught:
        download_dataset(get_dataset("cocostuff27"), tmp_path / "raw", None, fetch=offline)
    message = str(caught.value)
    assert "train2017.zip" in message and "download.cocostuff_files" in message
    assert not (tmp_path / "raw").exists()


def test_missing_or_wrong_files_are_named(tmp_path):
    files = make_files(tmp_path / "files")
    local = LocalSources(cocostuff_files=files)
    (files / "val2017.zip").unlink()
    with pytest.raises(FussbenchError, match=r"val2017\.zip missing there.*images\.cocodataset"):
        download_dataset(get_dataset("cocostuff27"), tmp_path / "raw", local=local)
    shutil.copyfile(files / "train2017.zip", files / "val2017.zip")
    with pytest.raises(FussbenchError, match=r"val2017\.zip: lacks 2 file\(s\).*000000000139"):
        download_dataset(get_dataset("cocostuff27"), tmp_path / "raw", local=local)
    (files / "curated" / "train2017" / CURATED_LIST).write_text("COCO_train2014_25\n")
    with pytest.raises(FussbenchError, match="'COCO_train2014_25' is not a 12-digit COCO"):
        download_dataset(get_dataset("cocostuff27"), tmp_path / "raw", local=local)


def test_pipeline_with_dirichlet_clients(tmp_path, monkeypatch):
    make_files(tmp_path / "files")
    make_workspace(tmp_path, monkeypatch, {"download": {"cocostuff_files": "files"}})
    metrics = run_pipeline(
        "cocostuff27_dirichlet01",
        "partition.n_clients=2",
        "partition.alpha=100",
        "cocostuff27.image_size=[32, 32]",
    )
    summary = json.loads(
        (tmp_path / "data/partitions/cocostuff27_dirichlet01/partition.json").read_text()
    )
    assert summary["method"] == "dirichlet" and summary["n_clients"] == 2
    assert sum(summary["client_sizes"]) == 4
    assert metrics["dataset"] == "cocostuff27" and metrics["eval_split"] == "val"
    assert metrics["n_clusters"] == 27 and 0.0 <= metrics["miou"] <= 100.0


# --------------------------------------------------------------------------- the FUSS lists

FUSS_CURATED = IDS["train2017"][:3]
"""The FUSS authors' curated list: a subset of IIC's (the miniature's first three)."""


def add_fuss_lists(folder: Path) -> Path:
    """The FUSS authors' curated list and 18 client lists under ``folder/fuss/``."""
    for name in cocostuff_fuss.FILES:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        ids = FUSS_CURATED if name.endswith(cocostuff_fuss.CURATED) else FUSS_CURATED[:1]
        path.write_text("\n".join(ids) + "\n")
    return folder


def test_download_fetches_the_fuss_lists_too_and_a_failure_leaves_them_out(
    tmp_path, capsys, monkeypatch
):
    files = add_fuss_lists(make_files(tmp_path / "files"))
    urls = {**cocostuff_download.FILES, **cocostuff_fuss.FILES}
    by_url = {url: files / name for name, url in urls.items()}
    calls: list[str] = []

    def fetch(url: str, target: Path) -> None:
        calls.append(url)
        shutil.copyfile(by_url[url], target)

    monkeypatch.setattr(CocoStuff27, "fuss_train_images", 3)
    spec = CocoStuff27(train_list="fuss")
    dest = download_dataset(spec, tmp_path / "raw", None, fetch=fetch)
    assert calls == list(urls.values())
    assert calls[-1] == (
        f"https://raw.githubusercontent.com/evanchar/FUSS/{cocostuff_fuss.FUSS_COMMIT}/"
        "fuss_data/cocostuff/partitioned_splits/train_MA18__client17.txt"
    )
    record = json.loads((dest / "SOURCE.json").read_text())
    assert record["samples_per_split"] == {"train": 3, "val": 2}
    assert set(record["fuss_lists_sha256"]) == set(cocostuff_fuss.FILES)
    assert [sample.name for sample in spec.samples(dest, "train")] == FUSS_CURATED

    def fuss_offline(url: str, target: Path) -> None:
        if "evanchar/FUSS" in url:
            raise OSError("network is unreachable")
        fetch(url, target)

    iic = get_dataset("cocostuff27")
    dest = download_dataset(iic, tmp_path / "raw2", None, fetch=fuss_offline)
    assert "could not fetch the FUSS authors' lists" in capsys.readouterr().out
    assert not (dest / cocostuff_fuss.FUSS_DIR).exists()
    assert json.loads((dest / "SOURCE.json").read_text())["fuss_lists"] == "missing"
    with pytest.raises(FussbenchError, match=r"Coco164kFull_Stuff_Coarse\.txt: missing"):
        spec.samples(dest, "train")


def test_fuss_lists_from_local_files_and_the_mirror(tmp_path, monkeypatch):
    monkeypatch.setattr(CocoStuff27, "fuss_train_images", 3)
    local = LocalSources(cocostuff_files=add_fuss_lists(make_files(tmp_path / "files")))
    spec = CocoStuff27(train_list="fuss")
    download_dataset(spec, tmp_path / "mirror" / "cocostuff27", local=local)
    dest = download_dataset(spec, tmp_path / "raw", tmp_path / "mirror")
    assert (dest / "fuss" / "partitioned_splits" / "train_MA18__client0.txt").is_file()
    assert json.loads((dest / "SOURCE.json").read_text())["samples_per_split"]["train"] == 3
    with pytest.raises(FussbenchError, match="cocostuff27.train_list must be one of iic, fuss"):
        CocoStuff27(train_list="stego")


def test_partition_by_client_lists(tmp_path, monkeypatch):
    """Method `lists` on the FUSS curated set: sizes and label skew reported; a listed image
    outside the curated set is named with its list file."""
    monkeypatch.setattr(CocoStuff27, "fuss_train_images", 3)
    add_fuss_lists(make_files(tmp_path / "files"))
    make_workspace(tmp_path, monkeypatch, {"download": {"cocostuff_files": "files"}})
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "client0.txt").write_text(f"{FUSS_CURATED[2]}\n{FUSS_CURATED[0]}\n")
    (lists / "client1.txt").write_text(f"\n{FUSS_CURATED[1]}\n")
    args = [
        "-S",
        "setup=cocostuff27_fuss18",
        "-S",
        "cocostuff27.train_list=fuss",
        "-S",
        "partition.client_lists=['lists/client{client}.txt']",
        "-S",
        "partition.n_clients=2",
    ]
    assert invoke("download", *args).exit_code == 0
    result = invoke("partition", *args)
    assert result.exit_code == 0, result.output
    assert "2 client lists: 3 of the split's 3 images, 1 to 2 per client" in result.output
    folder = tmp_path / "data/partitions/cocostuff27_fuss18"
    summary = json.loads((folder / "partition.json").read_text())
    assert summary["method"] == "lists" and summary["client_sizes"] == [2, 1]
    assert summary["meta"]["lists"] == {"lists/client0.txt": 2, "lists/client1.txt": 1}
    assert len(summary["label_skew"]["js_per_client"]) == 2
    client0 = json.loads((folder / "client_00.json").read_text())
    assert client0["samples"] == sorted(FUSS_CURATED[::2])

    (lists / "client1.txt").write_text(f"{FUSS_CURATED[1]}\n{IDS['train2017'][3]}\n")
    result = invoke("partition", *args)
    assert result.exit_code == 2
    assert "lists/client1.txt: 1 of its 2 images are not in the training split" in result.output
    assert IDS["train2017"][3] in result.output

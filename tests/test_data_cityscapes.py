"""Cityscapes: label decoding, the official zips' layout, the login download and the
pipeline by city, on a miniature copy (one tiny frame per city)."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from cli_workspace import REPO, cycle, invoke, make_workspace, png_bytes, rgb, run_pipeline

from fussbench.data import cityscapes_download
from fussbench.data.cityscapes import TRAIN_CITIES, VAL_CITIES, Cityscapes
from fussbench.data.download import LocalSources, download_dataset
from fussbench.data.registry import get_dataset
from fussbench.errors import FussbenchError

SIZE = (16, 8)
"""(width, height) of the miniature frames (the real ones are 2048x1024)."""

LABEL_IDS = (0, 1, 7, 8, 11, 21, 23, 26, 33)
LEFT, FINE = (package.file for package in cityscapes_download.PACKAGES)
SECRET = "s3cret-pa55"


@pytest.fixture(autouse=True)
def miniature(monkeypatch):
    """Expect one frame per city at :data:`SIZE`."""
    monkeypatch.setattr(Cityscapes, "raw_size", SIZE)
    monkeypatch.setattr(
        Cityscapes, "split_counts", {"train": len(TRAIN_CITIES), "val": len(VAL_CITIES)}
    )


def frame_key(city: str) -> str:
    return f"{city}_000000_000019"


def make_zips(folder: Path, size: tuple[int, int] = SIZE) -> Path:
    """The two official zips in their real layout: ``leftImg8bit/<split>/<city>/...`` and
    ``gtFine/<split>/<city>/...`` (color, instanceIds, labelIds, polygons), README and
    license.txt, with a test split whose labels are all void."""
    folder.mkdir(parents=True, exist_ok=True)
    splits = {"train": TRAIN_CITIES, "val": VAL_CITIES, "test": ("berlin",)}
    width, height = size
    with (
        zipfile.ZipFile(folder / LEFT, "w") as left,
        zipfile.ZipFile(folder / FINE, "w") as fine,
    ):
        for bundle in (left, fine):
            bundle.writestr("README", "The Cityscapes Dataset\n")
            bundle.writestr("license.txt", "terms\n")
        for split, cities in splits.items():
            for number, city in enumerate(cities):
                key = frame_key(city)
                image = png_bytes(rgb(width, height, number), "RGB")
                left.writestr(f"leftImg8bit/{split}/{city}/{key}_leftImg8bit.png", image)
                ids = LABEL_IDS if split != "test" else (0,)
                base = f"gtFine/{split}/{city}/{key}_gtFine"
                fine.writestr(f"{base}_labelIds.png", png_bytes(cycle(ids, width, height), "L"))
                fine.writestr(f"{base}_color.png", image)
                fine.writestr(f"{base}_instanceIds.png", png_bytes(cycle(ids, width, height), "L"))
                fine.writestr(f"{base}_polygons.json", json.dumps({"objects": []}))
    return folder


def test_labels_7_to_33_become_classes_0_to_26_and_the_rest_is_ignored(tmp_path):
    spec = Cityscapes()
    assert spec.n_classes == 27 and spec.class_names[0] == "road"
    assert spec.class_names[-1] == "bicycle" and spec.class_names[17] == "person"
    decoded = spec.decode_label(np.array([[0, 6, 7, 8], [23, 24, 33, 1]], np.uint8), Path("x"))
    assert decoded.tolist() == [[255, 255, 0, 1], [16, 17, 26, 255]]
    with pytest.raises(FussbenchError, match=r"y\.png: label values 34, 255 are outside 0\.\.33"):
        spec.decode_label(np.array([[7, 34, 255]], np.uint8), Path("y.png"))


def test_zips_are_laid_out_with_only_train_and_val_frames_and_label_ids(tmp_path):
    zips = make_zips(tmp_path / "zips")
    dest = download_dataset(
        get_dataset("cityscapes"), tmp_path / "raw", None, local=LocalSources(cityscapes_zips=zips)
    )
    assert sorted(path.name for path in dest.iterdir()) == ["SOURCE.json", "gtFine", "leftImg8bit"]
    assert sorted(path.name for path in (dest / "gtFine").iterdir()) == ["train", "val"]
    aachen = dest / "gtFine" / "train" / "aachen"
    assert [path.name for path in aachen.iterdir()] == ["aachen_000000_000019_gtFine_labelIds.png"]
    record = json.loads((dest / "SOURCE.json").read_text())
    assert record["obtained_from"] == "local" and record["location"] == str(zips)
    assert record["archives_sha256"][LEFT] == hashlib.sha256((zips / LEFT).read_bytes()).hexdigest()
    assert record["samples_per_split"] == {"train": 18, "val": 3}
    spec = get_dataset("cityscapes")
    val = spec.samples(dest, "val")
    assert [(sample.name, sample.group) for sample in val] == [
        (frame_key(city), city) for city in VAL_CITIES
    ]
    label = spec.read_label(val[0].label)
    assert label.shape == (160, 320) and set(np.unique(label)) <= {0, 1, 4, 14, 16, 19, 26, 255}


def test_a_laid_out_copy_serves_as_mirror(tmp_path):
    zips = make_zips(tmp_path / "zips")
    local = LocalSources(cityscapes_zips=zips)
    download_dataset(get_dataset("cityscapes"), tmp_path / "mirror" / "cityscapes", local=local)
    dest = download_dataset(get_dataset("cityscapes"), tmp_path / "raw", tmp_path / "mirror")
    record = json.loads((dest / "SOURCE.json").read_text())
    assert record["obtained_from"] == "mirror"
    assert record["samples_per_split"] == {"train": 18, "val": 3}


def test_missing_zip_names_the_file_and_the_fix(tmp_path):
    zips = make_zips(tmp_path / "zips")
    (zips / LEFT).unlink()
    with pytest.raises(FussbenchError) as caught:
        download_dataset(
            get_dataset("cityscapes"), tmp_path / "raw", local=LocalSources(cityscapes_zips=zips)
        )
    message = str(caught.value)
    assert LEFT in message and "download.cityscapes_zips" in message
    assert "cityscapes-dataset.com/downloads/" in message
    assert not (tmp_path / "raw").exists()


def test_swapped_or_corrupt_zips_are_named(tmp_path):
    zips = make_zips(tmp_path / "zips")
    (zips / LEFT).write_bytes((zips / FINE).read_bytes())
    with pytest.raises(FussbenchError, match=rf"{LEFT}: holds no leftImg8bit/.*packageID=3"):
        download_dataset(
            get_dataset("cityscapes"), tmp_path / "raw", local=LocalSources(cityscapes_zips=zips)
        )
    (zips / LEFT).write_bytes(b"<html>login</html>")
    with pytest.raises(FussbenchError, match=rf"{LEFT}: not a readable zip archive"):
        download_dataset(
            get_dataset("cityscapes"), tmp_path / "raw", local=LocalSources(cityscapes_zips=zips)
        )


def test_frames_of_the_wrong_size_fail_validation(tmp_path):
    zips = make_zips(tmp_path / "zips", size=(8, 8))
    with pytest.raises(FussbenchError, match=r"image is 8x8 but cityscapes images are 16x8"):
        download_dataset(
            get_dataset("cityscapes"), tmp_path / "raw", local=LocalSources(cityscapes_zips=zips)
        )


def test_missing_credentials_say_which_variables_without_values(tmp_path):
    with pytest.raises(FussbenchError) as caught:
        cityscapes_download.obtain_cityscapes(tmp_path, None, environ={})
    message = str(caught.value)
    assert "CITYSCAPES_USERNAME and CITYSCAPES_PASSWORD are not set" in message
    assert "download.cityscapes_zips" in message and "\n" not in message
    environ = {"CITYSCAPES_USERNAME": "someone", "CITYSCAPES_PASSWORD": ""}
    with pytest.raises(FussbenchError, match="CITYSCAPES_PASSWORD is not set") as caught:
        cityscapes_download.obtain_cityscapes(tmp_path, None, environ=environ)
    assert "someone" not in str(caught.value)


def test_cli_download_without_credentials_is_one_line(tmp_path, monkeypatch):
    make_workspace(tmp_path, monkeypatch, {})
    monkeypatch.delenv("CITYSCAPES_USERNAME", raising=False)
    monkeypatch.delenv("CITYSCAPES_PASSWORD", raising=False)
    result = invoke("download", "-S", "setup=cityscapes_city3")
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "CITYSCAPES_USERNAME" in lines[0]
    assert not (tmp_path / "data" / "raw" / "cityscapes").exists()


class FakeSite(http.server.BaseHTTPRequestHandler):
    """The few pages of cityscapes-dataset.com the login download uses."""

    zips: Path
    password = SECRET

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/login/":
            self._answer(200, b"<form>", "text/html", {"Set-Cookie": "session=anon; Path=/"})
        elif "session=user" not in self.headers.get("Cookie", ""):
            self._answer(302, b"", "text/html", {"Location": "/login/"})
        elif self.path.startswith(("/md5-sum/", "/file-handling/")):
            package_id = int(self.path.rsplit("=", 1)[1])
            name = {1: FINE, 3: LEFT}[package_id]
            body = (self.zips / name).read_bytes()
            if self.path.startswith("/md5-sum/"):
                self._answer(200, f"{hashlib.md5(body).hexdigest()}  {name}".encode(), "text/plain")
            else:
                self._answer(200, body, "application/zip")
        else:
            self._answer(404, b"", "text/html")

    def do_POST(self) -> None:
        form = self.rfile.read(int(self.headers["Content-Length"])).decode()
        if f"password={self.password}" in form and "session=anon" in self.headers["Cookie"]:
            self._answer(
                302, b"", "text/html", {"Location": "/", "Set-Cookie": "session=user; Path=/"}
            )
        else:
            self._answer(200, b"<form>wrong</form>", "text/html")

    def _answer(self, code: int, body: bytes, kind: str, headers: dict | None = None) -> None:
        self.send_response(code)
        for key, value in {"Content-Type": kind, **(headers or {})}.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def site(tmp_path):
    """A local stand-in of the download site at http://127.0.0.1:<port>."""
    FakeSite.zips = make_zips(tmp_path / "served")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeSite)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_login_download_keeps_the_session_and_checks_md5(tmp_path, site):
    environ = {"CITYSCAPES_USERNAME": "someone", "CITYSCAPES_PASSWORD": SECRET}
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    origin = cityscapes_download.obtain_cityscapes(tmp, None, environ=environ, base_url=site)
    assert origin["obtained_from"] == "download"
    assert sorted(path.name for path in tmp.iterdir()) == ["gtFine", "leftImg8bit"]
    assert len(get_dataset("cityscapes").samples(tmp, "train")) == len(TRAIN_CITIES)


def test_refused_login_names_the_variables_not_the_password(tmp_path, site):
    environ = {"CITYSCAPES_USERNAME": "someone", "CITYSCAPES_PASSWORD": "wrong"}
    with pytest.raises(FussbenchError, match="refused the login") as caught:
        cityscapes_download.obtain_cityscapes(tmp_path, None, environ=environ, base_url=site)
    assert "CITYSCAPES_PASSWORD" in str(caught.value) and "wrong" not in str(caught.value)


def test_city_setups_use_every_train_city_once():
    setups = yaml.safe_load((REPO / "params.yaml").read_text())["setups"]
    for name, clients in (
        ("cityscapes_city3", 3),
        ("cityscapes_city6", 6),
        ("cityscapes_city18", 18),
    ):
        setup = setups[name]
        assert setup["dataset"] == "cityscapes" and setup["partition"]["method"] == "groups"
        groups = setup["partition"]["groups"]
        assert len(groups) == clients
        assert sorted(city for group in groups for city in group) == sorted(TRAIN_CITIES)


def test_pipeline_by_city_runs_one_round_and_evaluates_on_val(tmp_path, monkeypatch):
    make_zips(tmp_path / "zips")
    make_workspace(tmp_path, monkeypatch, {"download": {"cityscapes_zips": "zips"}})
    metrics = run_pipeline("cityscapes_city3", "cityscapes.image_size=[32, 64]")
    manifests = sorted((tmp_path / "data/partitions/cityscapes_city3").glob("client_*.json"))
    sizes = [json.loads(path.read_text())["n_images"] for path in manifests]
    assert sizes == [6, 6, 6]
    assert metrics["dataset"] == "cityscapes" and metrics["eval_split"] == "val"
    assert metrics["n_clients"] == 3 and metrics["n_clusters"] == 27
    assert 0.0 <= metrics["miou"] <= 100.0
    images = (tmp_path / "runs/x/images.csv").read_text().splitlines()
    assert len(images) == 1 + len(VAL_CITIES)

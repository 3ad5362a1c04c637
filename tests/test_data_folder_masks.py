"""Your own folder as it comes: soft, colour, 16-bit and suffixed masks, no masks at all,
`fussbench inspect`, and errors that name the user's files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_workspace import invoke, make_workspace, rgb, run_pipeline
from PIL import Image
from synthetic import make_camvid

from fussbench.data.download import LocalSources, download_dataset
from fussbench.data.folder import FolderDataset
from fussbench.data.folder_import import FolderSource
from fussbench.data.masks import mask_rule, read_raw_mask
from fussbench.data.registry import get_dataset
from fussbench.errors import FussbenchError

SIZE = (16, 12)
"""(width, height) of the miniature images."""

NAMES = [f"{index:03d}" for index in range(10)]

RED, BLUE, BLACK = (255, 0, 0), (0, 0, 255), (0, 0, 0)


def soft_mask(number: int) -> np.ndarray:
    """(H, W) uint8: background 0, a defect square of 255 with soft edges (every value of a
    ramp), like the masks many tools write."""
    width, height = SIZE
    mask = np.zeros((height, width), np.uint8)
    mask[3:9, 4 + number % 3 : 10 + number % 3] = 255
    mask[2, :] = np.linspace(0, 254, width).astype(np.uint8)
    return mask


def write_folder(root: Path, mask_of, suffix: str = "", names: list[str] = NAMES) -> Path:
    """``images/<name>.jpg`` with ``masks/<name><suffix>.png`` = ``mask_of(number)`` (an
    array, or None for no mask)."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    for number, name in enumerate(names):
        Image.fromarray(rgb(*SIZE, number), "RGB").save(root / "images" / f"{name}.jpg")
        mask = mask_of(number)
        if mask is not None:
            (root / "masks").mkdir(exist_ok=True)
            mode = "RGB" if mask.ndim == 3 else "L"
            Image.fromarray(mask, mode).save(root / "masks" / f"{name}{suffix}.png")
    return root


def folder_params(**changes) -> dict:
    """The ``folder:`` section of a test workspace: tiny images, two classes."""
    return {"root": "mine", "class_names": ["background", "defect"], "image_size": [32, 32]} | (
        changes
    )


# --- mask modes ---------------------------------------------------------------------------


def test_threshold_nearest_exact_and_palette_decode_raw_masks():
    raw = np.array([[0, 100, 127, 128, 255]], np.uint8)
    path = Path("m.png")
    assert mask_rule(2, "threshold").decode(raw, path, "").tolist() == [[0, 0, 0, 1, 1]]
    assert mask_rule(2, "threshold", threshold=100).decode(raw, path, "").tolist() == [
        [0, 1, 1, 1, 1]
    ]
    nearest = mask_rule(2, "nearest", label_values=[0, 255])
    assert nearest.decode(raw, path, "").tolist() == [[0, 0, 0, 1, 1]]
    three = mask_rule(3, "nearest", label_values=[0, 128, 255], ignore_index=100)
    assert three.decode(raw, path, "").tolist() == [[0, 255, 1, 1, 2]]
    binary = mask_rule(2)  # defaults: exact, 0/1 and 0/255 both read
    assert binary.decode(np.array([[0, 1, 255]]), path, "").tolist() == [[0, 1, 1]]
    with pytest.raises(FussbenchError, match=r"m\.png: mask values 100, 127, 128.*threshold"):
        binary.decode(raw, path, "fix it")
    sixteen = mask_rule(2, "threshold", threshold=32768)
    assert sixteen.decode(np.array([[0, 40000]], np.int32), path, "").tolist() == [[0, 1]]
    colours = np.array([[RED, BLUE, RED]], np.uint8)
    palette = mask_rule(2, "palette", palette=[BLUE, RED])
    assert palette.decode(colours, path, "").tolist() == [[1, 0, 1]]
    with pytest.raises(FussbenchError, match=r"mask colours \(0, 0, 0\) are not in folder\.pal"):
        palette.decode(np.array([[BLACK]], np.uint8), path, "")


def test_mask_settings_that_do_not_fit_are_named():
    with pytest.raises(FussbenchError, match="folder.mask_mode 'soft' is not one of"):
        mask_rule(2, "soft")
    with pytest.raises(FussbenchError, match="threshold needs exactly 2 folder.class_names"):
        mask_rule(3, "threshold")
    with pytest.raises(FussbenchError, match="folder.palette with one .r, g, b. per class"):
        mask_rule(2, "palette", palette=[RED])
    with pytest.raises(FussbenchError, match="folder.palette is set but folder.mask_mode"):
        mask_rule(2, "exact", palette=[RED, BLUE])
    with pytest.raises(FussbenchError, match="folder.ignore_index 1 must be"):
        mask_rule(2, ignore_index=1)


def test_grey_16_bit_exif_rotated_and_one_bit_files_are_read(tmp_path):
    deep = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000).astype(np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    spec = FolderDataset(("a", "b"))
    image = np.asarray(spec.open_image(tmp_path / "deep.png"))
    assert image.shape == (3, 4, 3) and image[2, 3, 0] == round(55000 / 257)
    assert read_raw_mask(tmp_path / "deep.png", colour=False).max() == 55000
    rotated = Image.fromarray(rgb(6, 4), "RGB")
    exif = rotated.getexif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to view
    rotated.save(tmp_path / "rotated.jpg", exif=exif.tobytes())
    assert spec.open_image(tmp_path / "rotated.jpg").size == (4, 6)
    Image.fromarray(np.array([[0, 255]], np.uint8), "L").convert("1").save(tmp_path / "bit.png")
    assert spec.decode_label(read_raw_mask(tmp_path / "bit.png", False), Path()).tolist() == [
        [0, 1]
    ]


# --- errors name the user's files ---------------------------------------------------------


def test_every_validation_error_names_a_file_under_folder_root(tmp_path):
    root = write_folder(tmp_path / "mine", soft_mask)
    Image.fromarray(soft_mask(0)[:5], "L").save(root / "masks" / "001.png")  # wrong size
    (root / "images" / "002.jpg").write_bytes(b"not a jpeg")
    local = LocalSources(folder=FolderSource(root))
    with pytest.raises(FussbenchError) as caught:
        download_dataset(FolderDataset(("background", "defect")), tmp_path / "raw", local=local)
    header, *problems = str(caught.value).splitlines()
    assert header.startswith(f"folder.root={root}: 10 problem(s); fix the file under folder.root")
    assert "re-download" not in str(caught.value)
    assert len(problems) == 10 and all(line.strip().startswith(str(root)) for line in problems)
    assert any("001.png: label is 16x5" in line for line in problems)
    assert any("002.jpg: not a readable image" in line for line in problems)
    assert any("mask values" in line and "threshold" in line for line in problems)
    assert not (tmp_path / "raw").exists()


def test_mirror_errors_name_the_mirror_file_and_say_re_download(tmp_path):
    mirror = tmp_path / "mirror"
    make_camvid(mirror / "camvid")
    bad = mirror / "camvid" / "trainannot" / "0001TP_000010.png"
    Image.fromarray(np.full((6, 8), 50, np.uint8), "L").save(bad)
    with pytest.raises(FussbenchError) as caught:
        download_dataset(get_dataset("camvid"), tmp_path / "raw", mirror)
    message = str(caught.value)
    assert message.startswith(f"camvid at {mirror / 'camvid'}: ")
    assert f"{bad}: label values 50" in message
    assert ".tmp" not in message and "re-run `fussbench download`" in message


# --- the pipeline through the CLI ---------------------------------------------------------


def test_soft_binary_masks_run_with_threshold_mode(tmp_path, monkeypatch):
    write_folder(tmp_path / "mine", soft_mask)
    make_workspace(tmp_path, monkeypatch, {"folder": folder_params(mask_mode="threshold")})
    inspected = invoke("inspect", "-S", "setup=folder_quantity")
    assert inspected.exit_code == 0, inspected.output
    assert "mask_mode: threshold" in inspected.output and "mask_threshold: 128" in inspected.output
    assert "all 10 masks decode" in inspected.output
    assert not (tmp_path / "data").exists()  # inspect writes nothing
    metrics = run_pipeline("folder_quantity")
    assert metrics["labels"] is True and 0.0 <= metrics["miou"] <= 100.0
    assert isinstance(metrics["collapsed"], bool)
    assert {"collapsed", "largest_cluster_share"} <= set(metrics["models"][0]["collapse"])


def test_rgb_palette_masks_run_with_palette_mode(tmp_path, monkeypatch):
    def colour_mask(number: int) -> np.ndarray:
        mask = np.zeros((SIZE[1], SIZE[0], 3), np.uint8)
        mask[...] = BLUE
        mask[2:6, number % 4 : 8] = RED
        return mask

    write_folder(tmp_path / "mine", colour_mask)
    palette = [list(BLUE), list(RED)]
    make_workspace(
        tmp_path, monkeypatch, {"folder": folder_params(mask_mode="palette", palette=palette)}
    )
    inspected = invoke("inspect", "-S", "setup=folder_quantity")
    assert inspected.exit_code == 0 and "mask_mode: palette" in inspected.output
    metrics = run_pipeline("folder_quantity")
    assert metrics["labels"] is True and 0.0 <= metrics["miou"] <= 100.0


def test_masks_named_with_a_suffix_pair_with_their_images(tmp_path, monkeypatch):
    write_folder(tmp_path / "mine", lambda n: (soft_mask(n) > 127).astype(np.uint8) * 255, "_mask")
    make_workspace(tmp_path, monkeypatch, {"folder": folder_params(mask_suffix="_mask")})
    metrics = run_pipeline("folder_quantity")
    assert metrics["labels"] is True
    copied = [p.name for p in (tmp_path / "data/raw/folder/test/masks").iterdir()]
    assert len(copied) == 2 and not any("_mask" in name for name in copied)


def test_a_folder_without_masks_trains_and_writes_predictions(tmp_path, monkeypatch):
    write_folder(tmp_path / "mine", lambda n: None)
    make_workspace(
        tmp_path, monkeypatch, {"folder": folder_params(preview_images=2, collapse_share=0.5)}
    )
    inspected = invoke("inspect", "-S", "setup=folder_quantity")
    assert inspected.exit_code == 0 and "no masks (unlabelled)" in inspected.output
    assert "masks: null" in inspected.output
    metrics = run_pipeline("folder_quantity")
    run = tmp_path / "runs/x"
    assert metrics["labels"] is False and metrics["miou"] is None
    assert len(metrics["clusters_per_client"]) == 3
    assert all(sum(row) > 0 for row in metrics["clusters_per_client"])
    assert "min_offdiagonal" in metrics["models"][0]["centroids"]
    assert metrics["collapsed"] == any(c["collapsed"] for c in metrics["collapse_per_client"])
    previews = sorted(p.relative_to(run).as_posix() for p in (run / "predictions").rglob("*.png"))
    assert len(previews) == 2 * (2 + 1 + 1)  # two images of client 0, one of each other
    mask = Image.open(run / previews[0])
    assert mask.mode == "P" and mask.size == (32, 32)
    assert (run / "clusters.csv").read_text().startswith("client,cluster,pixels,share\n")
    assert not (run / "images.csv").exists()
    assert json.loads((run / "metrics.json").read_text())["labels"] is False

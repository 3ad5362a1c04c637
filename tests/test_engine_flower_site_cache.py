"""Per-site caches: a site caches its own client's raw images and gets exactly the rows the
central export would have sliced for it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from cli_workspace import REPO, invoke
from synthetic import CAMVID_COUNTS, make_camvid

from fussbench.data.camvid import CamVid
from fussbench.engines.flower.export import export_sites
from fussbench.engines.flower.site import open_site
from fussbench.engines.flower.site_cache import IMAGES, build_site_cache
from fussbench.errors import FussbenchError
from fussbench.features.cache import cache_fingerprint
from fussbench.params import load_params

SMALL = [
    "features.preprocess=stego",
    "features.train_size=32",
    "features.eval_size=32",
    "features.batch_size=16",
]
"""Five 32-pixel crops per training image: three images in one central batch, two at the site."""


@pytest.fixture
def workspace(tmp_path, monkeypatch) -> Path:
    monkeypatch.setattr(CamVid, "split_counts", CAMVID_COUNTS)
    make_camvid(tmp_path / "mirror" / "camvid")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["download"]["mirror"] = str(tmp_path / "mirror")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_site_caches_its_own_images_as_the_central_slice(workspace, capsys):
    args = [arg for item in SMALL for arg in ("-S", item)]
    for stage in ("download", "partition", "features"):
        result = invoke(stage, *args)
        assert result.exit_code == 0, result.output
    central = export_sites(Path("params.yaml"), SMALL, Path("central"))
    sites = export_sites(Path("params.yaml"), SMALL, Path("sites"), images=True)
    assert [folder.name for folder in sites] == ["client_00", "client_01"]
    assert not (sites[0] / "train").exists()

    # site 0 holds its own two images (and labels) only, in the dataset's layout
    listed = json.loads((sites[0] / IMAGES).read_text())["samples"]
    assert [entry["name"] for entry in listed] == ["0001TP_000010", "0001TP_000020"]
    raw = workspace / "site0_raw"
    for entry in listed:
        for key in ("image", "label"):
            (raw / entry[key]).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path("data/raw/camvid") / entry[key], raw / entry[key])

    params = load_params("params.yaml", SMALL)
    build_site_cache(sites[0], 0, params, raw)
    assert "site cache sites/client_00/train:" in capsys.readouterr().out
    spec = params.dataset_spec()
    expected = cache_fingerprint(spec, "train", params.backbone_config())
    own, sliced = open_site(sites[0], 0, expected).cache, open_site(central[0], 0, expected).cache
    assert own.names == sliced.names
    assert own.features.shape == (10, 432, 2, 2)
    for array in ("features", "labels", "pooled"):
        assert np.array_equal(getattr(own, array), getattr(sliced, array)), array

    (raw / listed[1]["image"]).unlink()
    with pytest.raises(FussbenchError, match=r"1 file\(s\) of client 0's images missing"):
        build_site_cache(sites[0], 0, params, raw)
    with pytest.raises(FussbenchError, match="lists client 1, not 0"):
        build_site_cache(sites[1], 0, params, raw)

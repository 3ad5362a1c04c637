"""The feature cache's size for every paper dataset × backbone × preprocessing, as Markdown.

Every figure comes from :mod:`fussbench.features.size`: image counts from the dataset
modules (``split_counts``), channels and stride from :data:`BACKBONES` (models built on
the meta device, no weights), views from :mod:`fussbench.features.views`. ``fussbench
cache-sizes`` writes it to ``reports/cache_sizes.md``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fussbench.atomic import write_text
from fussbench.data.cocostuff_fuss import CLIENT_LIST, FUSS_DIR, N_CLIENTS
from fussbench.data.registry import get_dataset
from fussbench.data.samples import DatasetSpec
from fussbench.errors import FussbenchError
from fussbench.features.backbones import BACKBONES, get_entry
from fussbench.features.config import BackboneConfig
from fussbench.features.size import SplitSize, dataset_sizes, human, split_size
from fussbench.features.views import PREPROCESSINGS, Preprocessing
from fussbench.params import Params, dataset_settings
from fussbench.paths import raw_dir

PAPER_DATASETS = ("camvid", "magnetic_tile", "cityscapes", "cocostuff27")
FUSS_CLIENT_SIZES = {0: 374, 17: 751}
"""Images of the FUSS authors' COCO-Stuff clients 0 and 17, as issue 15 gives them (read
from ``partitioned_splits/train_MA18__client{0,17}.txt`` of ``evanchar/FUSS``); used when the
lists themselves are not under ``data/raw/cocostuff27/fuss/``."""


@dataclass(frozen=True)
class Variant:
    """One dataset as the table lists it: its spec and how its row is labelled."""

    label: str
    spec: DatasetSpec


def paper_variants(params: Params) -> list[Variant]:
    """The paper's datasets at ``params``' image sizes; COCO-Stuff with either train list."""
    settings = dataset_settings(params)
    variants = []
    for name in PAPER_DATASETS:
        if name != "cocostuff27":
            variants.append(Variant(name, get_dataset(name, settings.get(name))))
            continue
        for train_list, label in (("iic", "IIC curated list"), ("fuss", "FUSS authors' list")):
            spec = get_dataset(name, {**settings[name], "train_list": train_list})
            variants.append(Variant(f"{name} ({label})", spec))
    return variants


def geometries(params: Params) -> dict[str, tuple[int, int]]:
    """(channels, stride) of every backbone, with ``params``' EfficientNet layers."""
    return {
        name: get_entry(name).geometry(BackboneConfig(name=name, layers=params.features.layers))
        for name in BACKBONES
    }


def preprocessings(params: Params) -> list[Preprocessing]:
    """Every ``features.preprocess`` mode at ``params``' stego sizes."""
    return [
        Preprocessing(mode, params.features.train_size, params.features.eval_size)
        for mode in PREPROCESSINGS
    ]


def _sizes(
    spec: DatasetSpec, preprocessing: Preprocessing, geometry: tuple[int, int]
) -> list[SplitSize] | None:
    """Every cached split's size; None when the views do not fit the stride."""
    counts = {split: int(count or 0) for split, count in spec.split_counts.items()}
    try:
        return dataset_sizes(spec, counts, preprocessing, *geometry)
    except FussbenchError:
        return None


def dataset_table(params: Params) -> list[str]:
    """Markdown rows: dataset, backbone, preprocessing, train and every split's size."""
    rows = [
        "| dataset | backbone | preprocess | train images × views | per train image | train "
        "| per eval image | all splits |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    shapes = geometries(params)
    for variant in paper_variants(params):
        spec = variant.spec
        for name, geometry in shapes.items():
            for preprocessing in preprocessings(params):
                sizes = _sizes(spec, preprocessing, geometry)
                cells = [variant.label, name, preprocessing.mode]
                if sizes is None:
                    rows.append(
                        "| " + " | ".join(cells) + " | views not a multiple of the "
                        f"stride {geometry[1]} | | | | |"
                    )
                    continue
                by_split = {size.split: size for size in sizes}
                train, evaluation = by_split[spec.train_split], by_split[spec.eval_split]
                cells += [
                    f"{train.images} × {train.views}",
                    human(train.bytes_per_image),
                    human(train.total_bytes),
                    human(evaluation.bytes_per_image),
                    human(sum(size.total_bytes for size in sizes)),
                ]
                rows.append("| " + " | ".join(cells) + " |")
    return rows


def fuss_client_sizes(raw: Path) -> tuple[dict[int, int], str]:
    """Images per FUSS client: from the lists under ``raw/fuss/`` when all are there, else
    :data:`FUSS_CLIENT_SIZES`; with where the numbers come from."""
    paths = [raw / FUSS_DIR / CLIENT_LIST.format(client=k) for k in range(N_CLIENTS)]
    if all(path.is_file() for path in paths):
        sizes = {k: len(path.read_text(encoding="utf-8").split()) for k, path in enumerate(paths)}
        return sizes, f"counted in the lists under {raw / FUSS_DIR}"
    return dict(FUSS_CLIENT_SIZES), (
        "clients 0 and 17 as issue 15 gives them (the lists were not under "
        f"{raw / FUSS_DIR} when this table was written)"
    )


def site_table(params: Params, client_sizes: dict[int, int]) -> list[str]:
    """Markdown rows: the training cache one COCO-Stuff site (SuperNode) holds, per client."""
    spec = get_dataset("cocostuff27", {**dataset_settings(params)["cocostuff27"]})
    clients = sorted(client_sizes)
    rows = [
        "| backbone | preprocess | "
        + " | ".join(f"client {k} ({client_sizes[k]} images)" for k in clients)
        + " |",
        "| --- | --- |" + " ---: |" * len(clients),
    ]
    for name, (channels, stride) in geometries(params).items():
        for preprocessing in preprocessings(params):
            try:
                cells = [
                    human(
                        split_size(
                            spec.train_split,
                            client_sizes[k],
                            True,
                            spec.image_size,
                            preprocessing,
                            channels,
                            stride,
                        ).total_bytes
                    )
                    for k in clients
                ]
            except FussbenchError:
                cells = [f"not a multiple of the stride {stride}"] + [""] * (len(clients) - 1)
            rows.append(f"| {name} | {preprocessing.mode} | " + " | ".join(cells) + " |")
    return rows


def cache_size_report(params: Params, raw: Path | None = None) -> str:
    """The whole Markdown page."""
    raw = raw_dir("cocostuff27") if raw is None else raw
    client_sizes, source = fuss_client_sizes(raw)
    features = dataclasses.asdict(params.features)
    return "\n".join(
        [
            "# Feature cache sizes",
            "",
            "Written by `fussbench cache-sizes` from `fussbench/features/size.py`: the bytes "
            "`fussbench features` writes (`features.npy` float16, `labels.npy` uint8, "
            "`pooled.npy` float32, headers included; `index.json` left out), for every paper "
            "dataset × backbone × preprocessing. Image counts are the dataset modules' "
            "`split_counts`; channels and stride come from `fussbench/features/backbones.py` "
            "(no weights loaded). Image sizes: CamVid 240×320, magnetic tile 224×224, "
            f"Cityscapes {'×'.join(map(str, params.cityscapes.image_size))}, COCO-Stuff "
            f"{'×'.join(map(str, params.cocostuff27.image_size))} (`resize`); `stego`: five "
            f"{features['train_size']}-pixel crops per training image, one "
            f"{features['eval_size']}-pixel crop per evaluation image. EfficientNet layers "
            f'`{features["layers"]}`. Units are decimal (1 GB = 10^9 bytes). "all splits" '
            "is every split the features stage caches (CamVid: train, val and test).",
            "",
            *dataset_table(params),
            "",
            "## One COCO-Stuff site of the FUSS authors' 18 clients",
            "",
            "On the Flower engine each SuperNode caches only its own client's training images "
            "(README, Flower section: `python -m fussbench.engines.flower.site_cache`). Client "
            f"sizes: {source}.",
            "",
            *site_table(params, client_sizes),
            "",
        ]
    )


def write_report(params: Params, out: Path, raw: Path | None = None) -> Sequence[str]:
    """Write :func:`cache_size_report` to ``out`` atomically; returns its lines."""
    text = cache_size_report(params, raw)
    write_text(out, text)
    return text.splitlines()

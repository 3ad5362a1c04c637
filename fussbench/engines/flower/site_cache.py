"""A site builds its own feature cache from its own raw images: nothing but its client's
images is ever cached (or copied) there.

``python -m fussbench.engines.flower.export sites/ --images`` writes, per client, the
manifest ``client_XX.json`` and ``images.json``: each sample's name, group, and the paths of
its image and label relative to the dataset's root folder. At site K, with its own images
under ``RAW`` in the dataset's layout (the same relative paths)::

    python -m fussbench.engines.flower.site_cache DATA_DIR --client K --raw RAW [-S ...]

runs the frozen backbone over those images only and writes ``DATA_DIR/train/``, the same
cache (:mod:`fussbench.features.cache`) the central export would have sliced for the client,
after printing its size and checking the disk (:mod:`fussbench.features.size`). The params
(backbone, ``features.*``, the dataset's section) must be the run's.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from fussbench.atomic import write_json
from fussbench.data.partition import client_file
from fussbench.data.samples import Sample
from fussbench.errors import FussbenchError
from fussbench.features.cache import build_split
from fussbench.features.device import resolve_placement
from fussbench.features.size import check_free_space, dataset_sizes, describe_sizes
from fussbench.params import Params, load_params

from .site import CACHE

IMAGES = "images.json"
"""The site's image list: ``{"client": k, "samples": [{"name", "group", "image", "label"}]}``."""


def write_image_list(directory: Path, client: int, samples: Sequence[Sample], root: Path) -> None:
    """Write client ``client``'s manifest and image list (paths relative to ``root``, the
    dataset folder) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)

    def relative(path: Path | None) -> str | None:
        return None if path is None else Path(os.path.relpath(path, root)).as_posix()

    entries = [
        {
            "name": sample.name,
            "group": sample.group,
            "image": relative(sample.image),
            "label": relative(sample.label),
        }
        for sample in samples
    ]
    names = [sample.name for sample in samples]
    write_json(directory / IMAGES, {"client": client, "samples": entries})
    write_json(
        directory / client_file(client),
        {"client": client, "n_images": len(names), "samples": names},
    )


def read_image_list(directory: Path, client: int, raw: Path) -> list[Sample]:
    """The client's samples, their files under ``raw``.

    Raises:
        FussbenchError: a missing or foreign list, or missing image files (naming the first).
    """
    path = directory / IMAGES
    if not path.is_file():
        raise FussbenchError(
            f"{path}: no image list; write it with `python -m fussbench.engines.flower.export "
            "OUT --images`"
        )
    payload = json.loads(path.read_text(encoding="utf-8"))
    if payload.get("client") != client:
        raise FussbenchError(f"{path}: lists client {payload.get('client')}, not {client}")
    samples = [
        Sample(
            name=entry["name"],
            image=raw / entry["image"],
            label=None if entry["label"] is None else raw / entry["label"],
            group=entry["group"],
        )
        for entry in payload["samples"]
    ]
    missing = [
        str(file)
        for sample in samples
        for file in (sample.image, sample.label)
        if file is not None and not file.is_file()
    ]
    if missing:
        raise FussbenchError(
            f"{raw}: {len(missing)} file(s) of client {client}'s images missing, first "
            f"{missing[0]}; --raw must hold the site's images in the dataset's layout"
        )
    return samples


def build_site_cache(directory: Path, client: int, params: Params, raw: Path) -> Path:
    """Cache client ``client``'s training images from ``raw`` into ``directory/train/``.

    Returns:
        The cache folder.
    """
    from fussbench.features.backbones import build_backbone  # imports timm: only here

    spec = params.dataset_spec()
    samples = read_image_list(directory, client, raw)
    settings = params.features
    config = params.backbone_config()
    placement = resolve_placement(settings.device, settings.precision)
    backbone = build_backbone(config).to(placement.device)
    out = directory / CACHE
    sizes = dataset_sizes(
        spec,
        {spec.train_split: len(samples)},
        config.preprocessing,
        backbone.channels,
        backbone.stride,
    )
    print("\n".join([f"site cache {out}:", *describe_sizes(sizes)]), flush=True)
    check_free_space(sizes, out)
    build_split(
        spec,
        samples,
        spec.train_split,
        config,
        backbone,
        out,
        settings.batch_size,
        placement,
        settings.loader_workers,
    )
    return out


def main(
    directory: Annotated[Path, typer.Argument(help="The site's data folder (data-dir).")],
    client: Annotated[int, typer.Option(help="The site's client number (partition-id).")],
    raw: Annotated[Path, typer.Option(help="The site's own images, in the dataset's layout.")],
    params: Annotated[Path, typer.Option("--params", "-p", help="The params file.")] = Path(
        "params.yaml"
    ),
    overrides: Annotated[
        list[str] | None, typer.Option("--set", "-S", help="Override a param (repeatable).")
    ] = None,
) -> None:
    """Build this site's feature cache from its own raw images."""
    try:
        out = build_site_cache(directory, client, load_params(params, overrides or []), raw)
    except FussbenchError as error:
        typer.secho(f"fussbench: error: {error}", err=True, fg=typer.colors.RED)
        raise typer.Exit(code=2) from None
    typer.echo(f"client {client}: features cached in {out}")


if __name__ == "__main__":
    typer.run(main)

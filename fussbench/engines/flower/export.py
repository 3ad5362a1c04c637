"""Write the clients' data folders for SuperNodes on other machines.

``python -m fussbench.engines.flower.export OUT_DIR [-p params.yaml] [-S key=value]``
writes ``OUT_DIR/client_XX/`` for every client of the setup's partition (see
:mod:`.site`), from the feature cache of ``fussbench features``. Copy each folder to its
site and start that site's SuperNode with ``--node-config 'partition-id=K
data-dir="<folder>"'``.

With ``--images`` it writes no features, only each client's manifest and image list (from
the partition and the raw dataset): each site then caches its own images itself
(:mod:`.site_cache`), and no central feature cache is needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fussbench.data.partition import read_partition
from fussbench.errors import FussbenchError
from fussbench.features.cache import cache_fingerprint, open_split
from fussbench.params import load_params
from fussbench.paths import features_dir, partition_dir, raw_dir

from .site import write_site
from .site_cache import write_image_list


def export_sites(
    params_path: Path, overrides: list[str], out_dir: Path, images: bool = False
) -> list[Path]:
    """Write every client's data folder under ``out_dir``; return the folders.

    Args:
        images: write only the manifest and the image list (:mod:`.site_cache`), no features.
    """
    params = load_params(params_path, overrides)
    spec = params.dataset_spec()
    split = spec.train_split
    if images:
        root = raw_dir(spec.name)
        by_name = {sample.name: sample for sample in spec.samples(root, split)}
        folders = []
        for client, names in enumerate(read_partition(partition_dir(params.setup))):
            folder = out_dir / f"client_{client:02d}"
            write_image_list(folder, client, [by_name[name] for name in names], root)
            folders.append(folder)
        return folders
    train = open_split(
        features_dir(spec.name, params.backbone) / split,
        cache_fingerprint(spec, split, params.backbone_config()),
    )
    clients = read_partition(partition_dir(params.setup))
    return [
        write_site(out_dir / f"client_{client:02d}", client, train, train.rows(names))
        for client, names in enumerate(clients)
    ]


def main(
    out_dir: Annotated[Path, typer.Argument(help="Folder to write client_XX/ into.")],
    params: Annotated[Path, typer.Option("--params", "-p", help="The params file.")] = Path(
        "params.yaml"
    ),
    overrides: Annotated[
        list[str] | None, typer.Option("--set", "-S", help="Override a param (repeatable).")
    ] = None,
    images: Annotated[
        bool,
        typer.Option(
            "--images", help="Write only the image lists: each site caches its own images."
        ),
    ] = False,
) -> None:
    """Write each client's data folder (its manifest and its rows of the training feature
    cache, or with --images its image list) for a SuperNode on another machine."""
    try:
        folders = export_sites(params, overrides or [], out_dir, images)
    except FussbenchError as error:
        typer.secho(f"fussbench: error: {error}", err=True, fg=typer.colors.RED)
        raise typer.Exit(code=2) from None
    for client, folder in enumerate(folders):
        typer.echo(f"client {client}: {folder}")


if __name__ == "__main__":
    typer.run(main)

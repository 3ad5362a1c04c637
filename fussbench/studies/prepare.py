"""Make setups trainable: download, cache the features of and partition each setup that
lacks them (the studies train setups the pipeline has not prepared).

The three steps are the pipeline's stages, passed in (:class:`SetupSteps`), since
``fussbench`` never imports ``stages``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from fussbench.errors import FussbenchError
from fussbench.params import Params
from fussbench.paths import features_dir, partition_dir, raw_dir


@dataclass(frozen=True)
class SetupSteps:
    """The steps that prepare one setup, each called with that setup's params and
    returning the folder it wrote.

    Attributes:
        download: lays the raw dataset out under ``data/raw/<dataset>``.
        features: caches the backbone's features under ``data/features/<dataset>/<backbone>``.
        partition: writes the client manifests under ``data/partitions/<setup>``.
    """

    download: Callable[[Params], Path]
    features: Callable[[Params], Path]
    partition: Callable[[Params], Path]


def prepare_setups(
    setups: Sequence[str],
    params_for: Callable[[str], Params],
    steps: SetupSteps,
    say: Callable[[str], None],
) -> None:
    """Run each step of ``steps`` whose folder is missing, for each of ``setups``.

    Args:
        params_for: the params with a setup chosen (``load_params(file, [..., "setup=s"])``).
        say: prints one line per step run, naming the folder it wrote.
    """
    for setup in setups:
        settings = params_for(setup)
        dataset = settings.dataset_spec().name
        if not raw_dir(dataset).is_dir():
            say(f"dataset ready at {steps.download(settings)}")
        if not features_dir(dataset, settings.backbone).is_dir():
            say(f"features cached in {steps.features(settings)}")
        if not partition_dir(setup).is_dir():
            say(f"partition written to {steps.partition(settings)}")


def check_setups(names: Sequence[str], params: Params, param: str) -> None:
    """Every one of ``names`` is a key of ``setups``.

    Raises:
        FussbenchError: naming ``param`` (e.g. ``study.setups``), the unknown setup and the
            valid ones.
    """
    for setup in names:
        if setup not in params.setups:
            raise FussbenchError(
                f"{param} names '{setup}', which is not a key of setups; "
                f"valid: {', '.join(params.setups)}"
            )

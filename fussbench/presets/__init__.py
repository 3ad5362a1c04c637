"""Ready-made params presets: each of the paper's settings as a file of ``-S`` overrides.

A preset is a YAML file in this folder with a ``description`` and a ``set`` mapping of
dotted params keys to values (``features.preprocess: stego``). Applied on top of
``params.yaml`` (``dvc exp run -S key=value ...``, which ``fussbench preset NAME`` prints
or runs), it selects the dataset, setup, backbone and preprocessing of one setting; the
setups in ``params.yaml`` carry the setting's loss weights, rounds and local steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fussbench.errors import FussbenchError

PRESETS_DIR = Path(__file__).parent
"""Where the preset files live: ``<name>.yaml``."""


@dataclass(frozen=True)
class Preset:
    """One preset.

    Attributes:
        name: the file name without ``.yaml``.
        description: what the setting is, for ``fussbench preset``'s listing.
        values: dotted params key → value, in file order.
    """

    name: str
    description: str
    values: dict[str, Any]

    def overrides(self) -> list[str]:
        """The values as ``key=value`` overrides (values in YAML flow style), the form
        ``-S`` takes in ``dvc exp run`` and every fussbench command."""
        return [f"{key}={_flow(value)}" for key, value in self.values.items()]


def _flow(value: Any) -> str:
    """``value`` as one line of YAML: ``[cityscapes]``, ``stego``, ``0.5``, ``null``."""
    return (
        yaml.safe_dump(value, default_flow_style=True, width=10_000, sort_keys=False)
        .strip()
        .removesuffix("\n...")
    )


def preset_names() -> list[str]:
    """The names of the presets, sorted."""
    return sorted(path.stem for path in PRESETS_DIR.glob("*.yaml"))


def load_preset(name: str) -> Preset:
    """Read the preset ``name``.

    Raises:
        FussbenchError: for an unknown name (listing the valid ones) or a file that is not
            a mapping with a ``description`` string and a non-empty ``set`` mapping.
    """
    path = PRESETS_DIR / f"{name}.yaml"
    if not path.is_file():
        raise FussbenchError(f"unknown preset '{name}'; valid: {', '.join(preset_names())}")
    content = yaml.safe_load(path.read_text())
    if (
        not isinstance(content, dict)
        or not isinstance(content.get("description"), str)
        or not isinstance(content.get("set"), dict)
        or not content["set"]
    ):
        raise FussbenchError(
            f"{path}: a preset must be a mapping with a `description` string and a "
            "non-empty `set` mapping of dotted params keys to values"
        )
    return Preset(name, " ".join(content["description"].split()), dict(content["set"]))

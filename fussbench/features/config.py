"""Which backbone a feature cache is built with: a plain record, cheap to import.

Kept apart from :mod:`fussbench.features.backbones` so that reading a cache (training,
evaluation) never imports timm.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fussbench.features.views import Preprocessing

STORES = ("cache", "online")
"""Valid ``features.store`` values: train on the feature cache, or run the backbone on the
images during federate (:mod:`fussbench.features.online`)."""


@dataclass(frozen=True)
class BackboneConfig:
    """Which backbone to run and with which weights.

    Attributes:
        name: a key of :data:`fussbench.features.backbones.BACKBONES`.
        layers: EfficientNet only: "16" (stride-16 map) or "16+32" (stride-16 map plus the
            stride-32 map upsampled to it, each L2-normalised over channels). ViTs ignore it.
        pretrained: False = random initialisation (the control experiment).
        checkpoint: a local weight file that replaces the default pretrained weights.
        preprocessing: how each image becomes the views fed to the backbone.
    """

    name: str
    layers: str = "16+32"
    pretrained: bool = True
    checkpoint: str | None = None
    preprocessing: Preprocessing = field(default_factory=Preprocessing)

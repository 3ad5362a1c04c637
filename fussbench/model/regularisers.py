"""Client-side terms that some aggregators add to the local loss.

Both act on the head's nonlinear branch, as in the FUSS paper's baselines:
- FedProx (Li et al., MLSys 2020): μ/2 · ‖w − w_global‖² over the branch's weights;
- FedMOON (Li, He and Song, CVPR 2021): a model-contrastive loss that pulls the branch's
  output towards the global model's and away from the client's previous local model's.

A regulariser is called once per step with the model being trained and the (dropped-out)
features the head saw, (B, C, h, w), and returns a scalar to add to the loss.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from fussbench.model.head import SegmentationModel

Regulariser = Callable[[SegmentationModel, torch.Tensor], torch.Tensor]


class ProximalTerm:
    """FedProx: μ/2 · Σ ‖w − w_global‖² over the nonlinear branch's parameters."""

    def __init__(self, global_model: SegmentationModel, mu: float) -> None:
        self.mu = mu
        self.anchor = [p.detach().clone() for p in global_model.head.nonlinear.parameters()]

    def __call__(self, model: SegmentationModel, head_input: torch.Tensor) -> torch.Tensor:
        squared = sum(
            (weight - anchor).pow(2).sum()
            for weight, anchor in zip(model.head.nonlinear.parameters(), self.anchor, strict=True)
        )
        return 0.5 * self.mu * squared


class ModelContrastiveTerm:
    """FedMOON: weight · mean over pixels of
    −log( e^{cos(z, z_glob)/τ} / (e^{cos(z, z_glob)/τ} + e^{cos(z, z_prev)/τ}) ),
    where z is the nonlinear branch's output (B, D, h, w) of the model being trained,
    z_glob the global model's and z_prev the client's previous local model's."""

    def __init__(
        self,
        global_model: SegmentationModel,
        previous_model: SegmentationModel,
        temperature: float,
        weight: float,
    ) -> None:
        self.global_head = global_model.head.eval()
        self.previous_head = previous_model.head.eval()
        self.temperature = temperature
        self.weight = weight

    def __call__(self, model: SegmentationModel, head_input: torch.Tensor) -> torch.Tensor:
        output = model.head.nonlinear_branch(head_input)
        with torch.no_grad():
            towards = self.global_head.nonlinear_branch(head_input)
            away = self.previous_head.nonlinear_branch(head_input)
        positive = F.cosine_similarity(output, towards, dim=1) / self.temperature
        negative = F.cosine_similarity(output, away, dim=1) / self.temperature
        return self.weight * F.softplus(negative - positive).mean()

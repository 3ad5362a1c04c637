"""STEGO's correspondence distillation loss and the cluster loss.

Shapes: features f (B, C, h, w) from the frozen backbone, codes s (B, D, h, w) from the
head, sampling coordinates (B, S, S', 2) in [-1, 1] (x, y order, as ``grid_sample`` wants).
Sampled points are kept point-major, (B, P, C) with P = S·S' points per image, and already
L2-normalised over channels (:func:`sample_unit_points`): each point is normalised once
per step, not once per term, and every correlation is one batched matrix product of
(B, P, C) by its transpose, with no copy.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sample_points(maps: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Bilinearly sample (B, C, h, w) maps at (B, S, S', 2) coordinates → (B, C, S, S')."""
    return F.grid_sample(maps, coords, mode="bilinear", align_corners=True)


def sample_unit_points(maps: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Sampled points, point-major (B, S·S', C), each L2-normalised over channels."""
    points = sample_points(maps, coords).flatten(2).transpose(1, 2).contiguous()
    return F.normalize(points, dim=2)


def cosine_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every unit point of a (B, P, C) with every unit point of b
    (B, Q, C): (B, P, Q), entry [n, i, j] compares a[n, i] with b[n, j]."""
    return torch.bmm(a, b.transpose(1, 2))


def centred_feature_correlation(f_a: torch.Tensor, f_b: torch.Tensor) -> torch.Tensor:
    """Feature cosine F (B, P, Q), "pointwise" centred: each point of a has the mean over
    b's points subtracted, then the global mean is added back. No gradient."""
    with torch.no_grad():
        correlation = cosine_correlation(f_a, f_b)
        global_mean = correlation.mean()
        correlation = correlation - correlation.mean(dim=2, keepdim=True)
        return correlation - correlation.mean() + global_mean


def correspondence_term(
    f_a: torch.Tensor, f_b: torch.Tensor, s_a: torch.Tensor, s_b: torch.Tensor, shift: float
) -> torch.Tensor:
    """One pairing's loss: mean of −max(S_code, 0) · (F − shift), a scalar.

    Args:
        f_a, f_b: sampled unit features (B, P, C) and (B, Q, C).
        s_a, s_b: sampled unit codes (B, P, D) and (B, Q, D).
    """
    feature_corr = centred_feature_correlation(f_a, f_b)
    code_corr = cosine_correlation(s_a, s_b)
    return -(code_corr.clamp(min=0.0) * (feature_corr - shift)).mean()


def raw_feature_cosine(f_a: torch.Tensor, f_b: torch.Tensor) -> float:
    """Mean raw (uncentred) cosine between sampled unit features (B, P, C)."""
    with torch.no_grad():
        return float(cosine_correlation(f_a, f_b).mean())


def assign_clusters(codes: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every pixel's code to every centroid.

    Args:
        codes: (B, D, h, w).
        centroids: (K, D).

    Returns:
        (B, K, h, w) cosine similarities; argmax over dim 1 is the cluster.
    """
    return torch.einsum("bdhw,kd->bkhw", F.normalize(codes, dim=1), F.normalize(centroids, dim=1))


def cluster_loss(codes: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """−mean over pixels of the best cosine between a code and any centroid.

    Args:
        codes: (B, D, h, w); detach them first so the loss trains the centroids only.
        centroids: (K, D).
    """
    return -assign_clusters(codes, centroids).max(dim=1).values.mean()

"""STEGO's correspondence distillation loss and the cluster loss.

Shapes: features f (B, C, h, w) from the frozen backbone, codes s (B, D, h, w) from the
head, sampling coordinates (M, N, 2) in [-1, 1] (x, y order, as ``grid_sample`` wants).
Maps are read as pixel tables (B·h·w, C), one row per pixel (:func:`pixel_table`; a view of
channels-last maps), and sampled as weighted sums of table rows (:func:`bilinear_taps`,
:func:`sample_rows`): the points of every image and every grid come out of one call, already
point-major. Sampled point sets are kept as (M, P, C), P points per set, L2-normalised over
channels once per step. A step's K pairings are an index matrix (B, K) into the M point sets:
set n (n < B) is image n's anchor, and pairing k compares it with set ``pairings[n, k]``, so
all pairings' correlations are one batched matrix product (:func:`pairing_correlations`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pixel_table(maps: torch.Tensor) -> torch.Tensor:
    """Maps (B, C, h, w) as a pixel table (B·h·w, C): row n·h·w + y·w + x is pixel (y, x) of
    map n. A view for channels-last maps (the layout of the head's input and output)."""
    return maps.permute(0, 2, 3, 1).reshape(-1, maps.shape[1])


def bilinear_taps(
    coords: torch.Tensor, maps: torch.Tensor, height: int, width: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The four table rows and weights of bilinear sampling, as ``grid_sample`` with
    ``align_corners=True`` and zero padding computes them.

    Args:
        coords: (M, N, 2) points in [-1, 1], (x, y) order; set m is read from map ``maps[m]``.
        maps: (M,) int64 index of each point set's map in a pixel table of h × w maps.
        height, width: h and w.

    Returns:
        rows (M·N, 4) int64 and weights (M·N, 4) float32, corners in the order north-west,
        north-east, south-west, south-east. With x = (u + 1)(w − 1)/2, y = (v + 1)(h − 1)/2,
        a = x − ⌊x⌋ and b = y − ⌊y⌋, the weights are (1 − b)(1 − a), (1 − b)a, b(1 − a), ba;
        a corner outside the map gets weight 0 (and any valid row).
    """
    x = (coords[..., 0] + 1) * ((width - 1) / 2)
    y = (coords[..., 1] + 1) * ((height - 1) / 2)
    west, north = x.floor(), y.floor()
    east_share, south_share = x - west, y - north
    west_share, north_share = 1 - east_share, 1 - south_share
    weights = torch.stack(
        [
            north_share * west_share,
            north_share * east_share,
            south_share * west_share,
            south_share * east_share,
        ],
        dim=-1,
    )
    column = west.long().unsqueeze(-1) + torch.tensor([0, 1, 0, 1])
    row = north.long().unsqueeze(-1) + torch.tensor([0, 0, 1, 1])
    inside = (column >= 0) & (column < width) & (row >= 0) & (row < height)
    pixel = (maps.view(-1, 1, 1) * height + row) * width + column
    rows = torch.where(inside, pixel, 0).flatten(0, 1)
    return rows, (weights * inside).flatten(0, 1)


class _SampleRows(torch.autograd.Function):
    """Weighted sums of table rows: forward ``embedding_bag``, backward ``index_add_``
    (``embedding_bag``'s own backward sorts the rows first, which costs more than the sum)."""

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        table: torch.Tensor,
        rows: torch.Tensor,
        weights: torch.Tensor,
    ) -> torch.Tensor:
        ctx.save_for_backward(rows, weights)
        ctx.table_rows = table.shape[0]  # type: ignore[attr-defined]
        return F.embedding_bag(rows, table, per_sample_weights=weights, mode="sum")

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor
    ) -> tuple[torch.Tensor, None, None]:
        rows, weights = ctx.saved_tensors  # type: ignore[attr-defined]
        shares = (weights.unsqueeze(2) * grad.unsqueeze(1)).flatten(0, 1)  # (M·N·T, C)
        table_grad = grad.new_zeros(ctx.table_rows, grad.shape[1])  # type: ignore[attr-defined]
        return table_grad.index_add_(0, rows.flatten(), shares), None, None


def sample_rows(table: torch.Tensor, rows: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Σ_t weights[i, t] · table[rows[i, t]] for every point i: (R, C) table, (M·N, T) rows
    and weights → (M·N, C), in one gather-and-sum; its backward adds each point's gradient,
    times the weights, into the rows it read."""
    return _SampleRows.apply(table, rows, weights)


def sample_unit_points(maps: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Maps (B, C, h, w) bilinearly sampled at (B, S, S', 2) coordinates → point-major
    (B, S·S', C), each point L2-normalised over channels."""
    batch, channels, height, width = maps.shape
    taps = bilinear_taps(coords.flatten(1, 2), torch.arange(batch), height, width)
    points = sample_rows(pixel_table(maps), *taps)
    return F.normalize(points, dim=1).view(batch, -1, channels)


def cosine_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every unit point of a (B, P, C) with every unit point of b
    (B, Q, C): (B, P, Q), entry [n, i, j] compares a[n, i] with b[n, j]."""
    return torch.bmm(a, b.transpose(1, 2))


def pairing_correlations(
    points: torch.Tensor, pairings: torch.Tensor, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Cosines of every anchor point with every point of its K partner sets, one product.

    Args:
        points: (M, P, C) unit points; sets 0..B−1 are the anchors.
        pairings: (B, K) int64, the partner set of anchor n in pairing k.
        dtype: the product's operand type (bfloat16: accumulated in float32, rounded to
            bfloat16); the result is float32.

    Returns:
        (B, P, K, P); entry [n, i, k, j] compares points[n, i] with points[pairings[n, k], j].
    """
    batch, pairs = pairings.shape
    _, size, channels = points.shape
    points = points.to(dtype)
    partners = points.index_select(0, pairings.flatten()).view(batch, pairs * size, channels)
    correlations = cosine_correlation(points[:batch], partners)
    return correlations.float().view(batch, size, pairs, size)


def correspondence_loss(
    feature_points: torch.Tensor,
    code_points: torch.Tensor,
    pairings: torch.Tensor,
    lambdas: torch.Tensor,
    shifts: torch.Tensor,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """L_corr = Σ_k λ_k · mean over (n, i, j) of −max(S_k, 0) · (F_k − b_k), a scalar.

    S_k[n, i, j] is the code cosine and F_k[n, i, j] the "pointwise" centred feature cosine
    of anchor point i of image n with point j of its partner set in pairing k: each anchor
    point's mean over the partner's points is subtracted and pairing k's global mean added
    back, F_k = G_k − mean_j G_k + mean_{n,i,j} G_k, G_k the raw feature cosines (no
    gradient). That is STEGO's per-pairing term; its second centring (subtracting the mean
    of the row-centred cosines) subtracts exactly zero and is left out.

    Args:
        feature_points: (M, P, C) unit features; code_points: (M, P, D) unit codes.
        pairings: (B, K) int64 partner sets (:func:`pairing_correlations`).
        lambdas, shifts: (K,) float32 weight λ_k and shift b_k of each pairing.
        dtype: operand type of the correlations' products (:func:`pairing_correlations`);
            everything else is float32.

    The loss is one dot product of max(S, 0) with a weight tensor W = −λ_k/(B·P²) ·
    (F_k − b_k), so its backward is two passes over S.
    """
    batch, pairs = pairings.shape
    size = feature_points.shape[1]
    with torch.no_grad():
        raw = pairing_correlations(feature_points, pairings, dtype)  # (B, P, K, P)
        row_means = raw.mean(dim=3, keepdim=True)
        global_means = row_means.mean(dim=(0, 1), keepdim=True)
        scale = (lambdas / -(batch * size * size)).view(1, 1, pairs, 1)
        offset = (global_means - shifts.view(1, 1, pairs, 1) - row_means) * scale
        weights = torch.addcmul(offset, raw, scale)
    code_corr = pairing_correlations(code_points, pairings, dtype)
    return torch.dot(code_corr.relu().flatten(), weights.flatten())


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

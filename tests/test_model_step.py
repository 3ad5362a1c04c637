"""The fused training step against the straightforward formulas it replaces: bilinear
sampling as ``grid_sample``, one correlation product for all pairings as one term per
pairing, and a whole step's loss and gradients as the per-pairing step computed them."""

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_model import WEIGHTS, client, config

from fussbench.model.head import SegmentationModel, initial_arrays
from fussbench.model.losses import (
    bilinear_taps,
    correspondence_loss,
    pairing_correlations,
    pixel_table,
    sample_rows,
)
from fussbench.model.training import _correspondence_loss, _derangement, train_locally


def reference_term(f_a, f_b, s_a, s_b, shift):
    """One pairing's term as STEGO writes it: mean of −max(S, 0)·(F − shift), F the feature
    cosine centred per anchor point, then centred again, plus its global mean."""
    correlation = torch.bmm(f_a, f_b.transpose(1, 2))
    global_mean = correlation.mean()
    correlation = correlation - correlation.mean(dim=2, keepdim=True)
    feature_corr = correlation - correlation.mean() + global_mean
    code_corr = torch.bmm(s_a, s_b.transpose(1, 2))
    return -(code_corr.clamp(min=0.0) * (feature_corr - shift)).mean()


def reference_points(maps, coords):
    """Unit points (B, S·S', C) of maps (B, C, h, w) at (B, S, S', 2), with grid_sample."""
    sampled = F.grid_sample(maps, coords, mode="bilinear", align_corners=True)
    return F.normalize(sampled.flatten(2).transpose(1, 2), dim=2)


def reference_loss(model, data, rows, partners, train_config, generator):
    """L_corr of one batch as the per-pairing step computed it (same draws, same order)."""
    weights, count = train_config.weights, len(rows)
    features = data.batch(np.concatenate([rows, partners]))
    keep = torch.rand(len(features), data.channels, 1, 1, generator=generator)
    head_input = features * ((keep >= train_config.dropout) / (1.0 - train_config.dropout))
    codes = model.head(head_input)
    side = train_config.feature_samples
    coords = torch.rand((count, side, side, 2), generator=generator) * 2 - 1
    partner_coords = torch.rand((count, side, side, 2), generator=generator) * 2 - 1
    both = torch.cat([coords, partner_coords], dim=2)
    f_a, f_c = reference_points(features[:count], both).chunk(2, dim=1)
    s_a, s_c = reference_points(codes[:count], both).chunk(2, dim=1)
    f_b = reference_points(features[count:], partner_coords)
    s_b = reference_points(codes[count:], partner_coords)
    loss = weights.lambda_self * reference_term(f_a, f_a, s_a, s_a, weights.shift_self)
    loss = loss + weights.lambda_knn * reference_term(f_a, f_b, s_a, s_b, weights.shift_knn)
    negatives = []
    for _ in range(train_config.n_negatives):
        order = _derangement(count, generator)
        negatives.append(reference_term(f_a, f_c[order], s_a, s_c[order], weights.shift_rand))
    return loss + weights.lambda_rand * torch.stack(negatives).mean()


@pytest.mark.parametrize("channels_last", [False, True])
def test_bilinear_sampling_matches_grid_sample_and_its_gradient(channels_last):
    generator = torch.Generator().manual_seed(0)
    maps = torch.randn(3, 5, 4, 6, generator=generator)
    if channels_last:
        maps = maps.contiguous(memory_format=torch.channels_last)
    maps.requires_grad_(True)
    coords = torch.rand(3, 7, 2, generator=generator) * 2.4 - 1.2  # some points outside
    coords[0, 0] = torch.tensor([1.0, 1.0])  # the far corner exactly
    expected = F.grid_sample(maps, coords.unsqueeze(1), mode="bilinear", align_corners=True)
    expected = expected.squeeze(2).transpose(1, 2).reshape(-1, 5)
    taps = bilinear_taps(coords, torch.arange(3), 4, 6)
    sampled = sample_rows(pixel_table(maps), *taps)
    torch.testing.assert_close(sampled, expected, rtol=1e-6, atol=1e-6)
    upstream = torch.randn(sampled.shape, generator=generator)
    (expected_grad,) = torch.autograd.grad(expected, maps, upstream)
    (grad,) = torch.autograd.grad(sampled, maps, upstream)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-6, atol=1e-6)


def test_taps_read_any_map_of_the_table():
    maps = torch.arange(24.0).reshape(2, 1, 3, 4)
    coords = torch.tensor([[[-1.0, -1.0]], [[-1.0, -1.0]], [[1.0, 1.0]]])
    taps = bilinear_taps(coords, torch.tensor([1, 0, 1]), 3, 4)
    assert sample_rows(pixel_table(maps), *taps).flatten().tolist() == [12.0, 0.0, 23.0]


def test_one_product_holds_every_pairing():
    generator = torch.Generator().manual_seed(1)
    points = F.normalize(torch.randn(6, 5, 8, generator=generator), dim=2)
    pairings = torch.tensor([[0, 2, 5], [1, 3, 4]])
    correlations = pairing_correlations(points, pairings)
    assert correlations.shape == (2, 5, 3, 5)
    for anchor in range(2):
        for pair in range(3):
            partner = points[pairings[anchor, pair]]
            expected = points[anchor] @ partner.T
            torch.testing.assert_close(correlations[anchor, :, pair], expected)


def test_correspondence_loss_equals_the_sum_of_per_pairing_terms():
    generator = torch.Generator().manual_seed(2)
    count, size = 4, 9
    features = F.normalize(torch.randn(3 * count, size, 16, generator=generator), dim=2)
    codes = torch.randn(3 * count, size, 6, generator=generator, requires_grad=True)
    orders = [_derangement(count, generator) for _ in range(2)]
    batch = torch.arange(count)
    pairings = torch.stack([batch, batch + count, *(2 * count + order for order in orders)], 1)
    lambdas = torch.tensor([1.0, 0.577, 0.453, 0.453])
    shifts = torch.tensor([0.46, 0.2, 0.4, 0.4])
    unit = F.normalize(codes, dim=2)
    loss = correspondence_loss(features, unit, pairings, lambdas, shifts)
    (grad,) = torch.autograd.grad(loss, codes)

    unit = F.normalize(codes, dim=2)
    f_a, f_b, f_c = features.split(count)
    s_a, s_b, s_c = unit.split(count)
    expected = reference_term(f_a, f_a, s_a, s_a, 0.46)
    expected = expected + 0.577 * reference_term(f_a, f_b, s_a, s_b, 0.2)
    negatives = [reference_term(f_a, f_c[order], s_a, s_c[order], 0.4) for order in orders]
    expected = expected + 0.906 * torch.stack(negatives).mean()
    (expected_grad,) = torch.autograd.grad(expected, codes)
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-4, atol=1e-8)


def test_bf16_products_keep_the_loss_close():
    generator = torch.Generator().manual_seed(3)
    features = F.normalize(torch.randn(6, 25, 432, generator=generator).abs(), dim=2)
    codes = F.normalize(torch.randn(6, 25, 70, generator=generator), dim=2)
    pairings = torch.tensor([[0, 2, 4], [1, 3, 5]])
    lambdas, shifts = torch.tensor([1.0, 0.5, 0.5]), torch.tensor([0.46, 0.2, 0.4])
    fp32 = correspondence_loss(features, codes, pairings, lambdas, shifts)
    bf16 = correspondence_loss(features, codes, pairings, lambdas, shifts, torch.bfloat16)
    assert abs(float(bf16 - fp32)) < 2e-3 * abs(float(fp32)) + 1e-4


def test_step_loss_and_gradients_match_the_per_pairing_step():
    data = client(n=10, channels=8)
    train_config = config()
    model = SegmentationModel.from_arrays(initial_arrays(8, 16, 3, seed=0))
    rows, partners = np.array([0, 3, 5, 7]), np.array([1, 2, 9, 4])

    loss, codes, head_input = _correspondence_loss(
        model, data, rows, partners, train_config, torch.Generator().manual_seed(4), False
    )
    grads = torch.autograd.grad(loss, list(model.head.parameters()))
    expected = reference_loss(
        model, data, rows, partners, train_config, torch.Generator().manual_seed(4)
    )
    expected_grads = torch.autograd.grad(expected, list(model.head.parameters()))

    assert codes.shape == (4, 16, 4, 5) and head_input.shape == (4, 8, 4, 5)
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-7)
    for grad, expected_grad in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(grad, expected_grad, rtol=1e-4, atol=1e-7)
    assert WEIGHTS.lambda_rand > 0 and train_config.n_negatives == 2


def test_training_without_random_pairings_or_dropout_runs():
    data = client()
    train_config = dataclasses.replace(config(), n_negatives=0, dropout=0.0)
    model = SegmentationModel.from_arrays(initial_arrays(8, 16, 3, seed=0))
    assert train_locally(model, data, train_config, seed=1).finite

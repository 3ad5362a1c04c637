import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fussbench.model.config import CorrespondenceWeights, TrainConfig
from fussbench.model.head import (
    CENTROIDS_KEY,
    SegmentationHead,
    SegmentationModel,
    initial_arrays,
)
from fussbench.model.losses import (
    bilinear_taps,
    cluster_loss,
    correspondence_loss,
    pixel_table,
    sample_rows,
    sample_unit_points,
)
from fussbench.model.neighbours import nearest_neighbours
from fussbench.model.training import ClientData, _derangement, train_locally

WEIGHTS = CorrespondenceWeights(1.0, 0.577, 0.906, 0.46, 0.20, 0.40)


def config(steps: int = 3) -> TrainConfig:
    return TrainConfig(
        local_steps=steps,
        batch_size=4,
        lr_head=5e-4,
        lr_centroids=5e-3,
        feature_samples=5,
        knn_k=2,
        n_negatives=2,
        dropout=0.1,
        weights=WEIGHTS,
    )


def train_arrays(arrays, data, train_config, seed):
    model = SegmentationModel.from_arrays(arrays)
    stats = train_locally(model, data, train_config, seed)
    return model.to_arrays(), stats


def client(n: int = 6, channels: int = 8, seed: int = 0) -> ClientData:
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, channels, 4, 5)).astype(np.float16)
    return ClientData.from_cache(features, features.mean(axis=(2, 3)), knn_k=2)


def test_head_shapes_and_arrays_round_trip():
    model = SegmentationModel(in_channels=8, dim=70, n_clusters=5)
    codes = model.head(torch.zeros(2, 8, 4, 5))
    assert codes.shape == (2, 70, 4, 5)
    arrays = model.to_arrays()
    assert arrays[CENTROIDS_KEY].shape == (5, 70)
    other = SegmentationModel(8, 70, 5)
    other.load_arrays(arrays)
    for key, value in other.to_arrays().items():
        np.testing.assert_array_equal(value, arrays[key])


def test_initial_arrays_are_seeded_and_leave_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    first = initial_arrays(8, 16, 4, seed=7)
    assert torch.rand(1) == expected
    second = initial_arrays(8, 16, 4, seed=7)
    third = initial_arrays(8, 16, 4, seed=8)
    assert all(np.array_equal(first[k], second[k]) for k in first)
    assert not np.array_equal(first[CENTROIDS_KEY], third[CENTROIDS_KEY])


def test_correspondence_loss_rewards_codes_that_follow_features():
    generator = torch.Generator().manual_seed(0)
    points = torch.randn(2, 25, 16, generator=generator)
    unit = torch.nn.functional.normalize(points, dim=2)
    pairings, one = torch.arange(2).unsqueeze(1), torch.ones(1)
    aligned = correspondence_loss(unit, unit, pairings, one, 0 * one)
    flipped = correspondence_loss(unit, -unit, pairings, one, 0 * one)
    assert aligned.item() < flipped.item() + 1e-6
    assert aligned.item() < 0


def test_cluster_loss_trains_only_what_it_is_given():
    codes = torch.randn(2, 6, 3, 3, requires_grad=True)
    centroids = torch.randn(4, 6, requires_grad=True)
    cluster_loss(codes.detach(), centroids).backward()
    assert codes.grad is None
    assert centroids.grad is not None and centroids.grad.abs().sum() > 0


def test_sampling_at_corners_reads_corner_pixels():
    maps = torch.arange(12.0).reshape(1, 1, 3, 4)
    coords = torch.tensor([[[-1.0, -1.0], [1.0, 1.0]]])
    taps = bilinear_taps(coords, torch.zeros(1, dtype=torch.long), 3, 4)
    assert sample_rows(pixel_table(maps), *taps).flatten().tolist() == [0.0, 11.0]


@pytest.mark.parametrize("size", [1, 2, 5, 8])
def test_derangement_has_no_fixed_point(size):
    generator = torch.Generator().manual_seed(size)
    for _ in range(20):
        order = _derangement(size, generator)
        assert sorted(order.tolist()) == list(range(size))
        if size > 1:
            assert (order != torch.arange(size)).all()


def test_nearest_neighbours_excludes_self_and_ranks_by_cosine():
    pooled = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [-1.0, 0.0]])
    neighbours = nearest_neighbours(pooled, k=2)
    assert neighbours.shape == (4, 2)
    assert neighbours[0, 0] == 1 and neighbours[2, 0] == 1
    assert all(row not in neighbours[row] for row in range(4))
    assert nearest_neighbours(pooled[:1], k=3).tolist() == [[0]]


def test_training_is_deterministic_and_changes_the_model():
    data = client()
    initial = initial_arrays(8, 16, 3, seed=0)
    first, stats = train_arrays(initial, data, config(), seed=5)
    second, _ = train_arrays(initial, data, config(), seed=5)
    third, _ = train_arrays(initial, data, config(), seed=6)
    assert stats.finite and stats.steps == 3
    assert all(np.array_equal(first[k], second[k]) for k in first)
    assert not all(np.array_equal(first[k], third[k]) for k in first)
    assert not np.array_equal(first[CENTROIDS_KEY], initial[CENTROIDS_KEY])


def test_head_as_matrix_products_equals_its_convolutions():
    torch.manual_seed(0)
    head = SegmentationHead(12, 5)
    features = torch.randn(3, 12, 4, 6)
    by_convolution = head.linear(features) + head.nonlinear(features)
    assert torch.allclose(head(features), by_convolution, atol=1e-5)
    assert torch.allclose(head.nonlinear_branch(features), head.nonlinear(features), atol=1e-5)


def test_sampled_points_are_point_major_unit_vectors():
    maps = torch.randn(2, 7, 5, 6)
    coords = torch.rand(2, 3, 4, 2) * 2 - 1
    points = sample_unit_points(maps, coords)
    assert points.shape == (2, 12, 7)
    assert torch.allclose(points.norm(dim=2), torch.ones(2, 12))
    expected = F.grid_sample(maps, coords, mode="bilinear", align_corners=True)[1, :, 2, 3]
    assert torch.allclose(points[1, 2 * 4 + 3], expected / expected.norm())


def test_client_batches_are_read_from_the_cache_as_float32():
    features = np.random.default_rng(0).normal(size=(6, 4, 3, 5)).astype(np.float16)
    data = ClientData.from_cache(features, features.mean(axis=(2, 3)), knn_k=2, rows=[5, 1, 3])
    batch = data.batch(np.array([2, 0]))
    assert batch.dtype == torch.float32
    assert torch.equal(batch, torch.from_numpy(features[[3, 5]].astype(np.float32)))
    assert data.n_samples == 3 and data.neighbours.max() < 3

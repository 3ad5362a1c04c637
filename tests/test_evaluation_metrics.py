import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fussbench.errors import FussbenchError
from fussbench.evaluation.metrics import (
    confusion_matrix,
    hungarian_match,
    majority_match,
    match_clusters,
    per_image_miou,
    scores_from_confusion,
)
from fussbench.evaluation.predict import cluster_maps
from fussbench.evaluation.subsets import evenly_spaced


def test_confusion_skips_ignore_label():
    clusters = np.array([0, 1, 1, 2])
    labels = np.array([1, 0, 255, 0])
    confusion = confusion_matrix(clusters, labels, n_clusters=3, n_classes=2)
    assert confusion.tolist() == [[0, 1], [1, 0], [1, 0]]


def test_permuted_clusters_score_perfectly():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, size=(5, 6, 7))
    permutation = np.array([2, 0, 3, 1])
    confusion = confusion_matrix(permutation[labels], labels, 4, 4)
    mapping = hungarian_match(confusion)
    assert (mapping[permutation] == np.arange(4)).all()
    scores = scores_from_confusion(confusion, mapping)
    assert scores.miou == pytest.approx(100.0)
    assert scores.accuracy == pytest.approx(100.0)


def test_known_iou_values():
    # class 0: 3 px, class 1: 1 px; cluster 0 covers two class-0 pixels and the class-1 pixel
    labels = np.array([0, 0, 0, 1])
    clusters = np.array([0, 0, 1, 0])
    confusion = confusion_matrix(clusters, labels, 2, 2)
    mapping = hungarian_match(confusion)
    assert mapping.tolist() == [0, 1]
    scores = scores_from_confusion(confusion, mapping)
    # class 0: TP 2, FP 1, FN 1 -> 2/4; class 1: TP 0 -> 0
    assert scores.per_class_iou.tolist() == pytest.approx([50.0, 0.0])
    assert scores.miou == pytest.approx(25.0)
    assert scores.accuracy == pytest.approx(50.0)


def test_absent_classes_are_excluded_from_the_mean():
    labels = np.array([0, 0, 1, 1])
    confusion = confusion_matrix(labels, labels, 3, 3)
    scores = scores_from_confusion(confusion, hungarian_match(confusion))
    assert np.isnan(scores.per_class_iou[2])
    assert scores.miou == pytest.approx(100.0)


def test_extra_clusters_count_as_misses():
    labels = np.array([0, 0, 1, 1])
    clusters = np.array([0, 2, 1, 1])  # cluster 2 cannot be matched to a third class
    confusion = confusion_matrix(clusters, labels, 3, 2)
    mapping = hungarian_match(confusion)
    assert (mapping == -1).sum() == 1
    scores = scores_from_confusion(confusion, mapping)
    assert scores.accuracy == pytest.approx(75.0)


def test_per_image_miou_uses_the_shared_matching():
    labels = np.array([[0, 0], [1, 1]])
    clusters = np.array([[1, 1], [0, 0]])
    confusions = np.stack(
        [confusion_matrix(c, lab, 2, 2) for c, lab in zip(clusters, labels, strict=True)]
    )
    mapping = hungarian_match(confusions.sum(axis=0))
    assert per_image_miou(confusions, mapping).tolist() == pytest.approx([100.0, 100.0])


def test_majority_matching_merges_clusters_of_one_class():
    # clusters 0 and 2 are both mostly class 1; cluster 1 is mostly class 0; cluster 3 empty
    confusion = np.array([[1, 9], [8, 2], [0, 5], [0, 0]])
    mapping = majority_match(confusion)
    assert mapping.tolist() == [1, 0, 1, -1]
    scores = scores_from_confusion(confusion, mapping)
    # class 0: 8 hits, predicted 10, actual 9 -> 8/11; class 1: 14 hits, predicted 15, actual 16
    assert scores.per_class_iou == pytest.approx([100 * 8 / 11, 100 * 14 / 17])
    # one-to-one matching must leave one of the class-1 clusters unmatched
    assert (hungarian_match(confusion) == -1).sum() == 2


def test_unknown_matching_lists_the_valid_names():
    with pytest.raises(FussbenchError, match="hungarian, majority"):
        match_clusters(np.eye(2, dtype=np.int64), "greedy")


@pytest.mark.parametrize("batch_size", [1, 3, 32])
def test_cluster_maps_is_the_argmax_of_the_upsampled_scores(batch_size):
    rng = np.random.default_rng(5)
    features = rng.normal(size=(7, 4, 5, 6)).astype(np.float16)
    projection = torch.from_numpy(rng.normal(size=(9, 4)).astype(np.float32))

    def score(batch: torch.Tensor) -> torch.Tensor:
        return torch.einsum("kc,bchw->bkhw", projection, batch)

    clusters = cluster_maps(features, score, n_clusters=9, size=(23, 31), batch_size=batch_size)
    scores = score(torch.from_numpy(features.astype(np.float32)))
    upsampled = F.interpolate(scores, size=(23, 31), mode="bilinear", align_corners=False)
    assert clusters.dtype == np.uint8
    np.testing.assert_array_equal(clusters, upsampled.argmax(dim=1).numpy())


def test_evenly_spaced_keeps_the_ends_and_never_repeats():
    assert evenly_spaced(10, 4).tolist() == [0, 3, 6, 9]
    assert evenly_spaced(3, 5).tolist() == [0, 1, 2]
    assert evenly_spaced(4, None).tolist() == [0, 1, 2, 3]
    picked = evenly_spaced(233, 32)
    assert len(np.unique(picked)) == 32 and picked[0] == 0 and picked[-1] == 232

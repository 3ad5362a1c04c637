"""Feature skew of a partition, on hand-made pooled features."""

import numpy as np
import pytest

from fussbench.features.skew import feature_skew


def test_feature_skew_grows_as_clients_drift_apart():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(40, 16)) + 3.0
    rows = [np.arange(0, 20), np.arange(20, 40)]
    alike = feature_skew(base, rows)["cosine_mean"]
    drifted = base.copy()
    drifted[20:, :8] += 6.0
    assert feature_skew(drifted, rows)["cosine_mean"] > alike + 0.01
    same = feature_skew(np.tile(base[:1], (40, 1)), rows)
    assert same["cosine_mean"] == pytest.approx(0.0, abs=1e-12)
    assert len(same["cosine_per_client"]) == 2

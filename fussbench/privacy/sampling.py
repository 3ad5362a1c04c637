"""Which clients take part in a round: Poisson sampling at rate q = ``privacy.sample_rate``.

Each round r, client k takes part when u_{r,k} < q, with u_{r,k} ~ U[0, 1) independent over
clients and rounds, drawn from the run seed and the round only, so both engines (and a
resumed run) sample the same clients. The number taking part varies (it may be 0); its
expectation is q K. The sampling amplifies privacy only against someone who does not see
who took part (the readers of the central model, not the server): the accountant
(:mod:`.accounting`) counts it under ``central`` only. For reproducibility the draw comes
from the run seed; a deployment that counts on the amplification must keep that seed
secret.
"""

from __future__ import annotations

import numpy as np

SAMPLING_STREAM = 2901
"""Tags the sampling's random stream apart from the run's other draws of the same seed."""


def participants(seed: int, round_index: int, n_clients: int, sample_rate: float) -> list[bool]:
    """Whether each of ``n_clients`` clients takes part in round ``round_index`` (1-based)
    of the run of ``seed``: (K,) booleans, all True at ``sample_rate`` 1."""
    if sample_rate >= 1.0:
        return [True] * n_clients
    rng = np.random.default_rng(np.random.SeedSequence([seed, round_index, SAMPLING_STREAM]))
    return [bool(draw < sample_rate) for draw in rng.random(n_clients)]

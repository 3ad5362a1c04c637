"""ε of a run, from the Rényi accountant of Google's dp-accounting, and σ for a target ε.

Calibration (:mod:`.mechanism`): each block b of a client's update is clipped to
||Delta_b|| <= C_b and gets Gaussian noise of std sigma C_b per coordinate. Dividing block b
by C_b (public constants, so post-processing) makes a round one Gaussian mechanism on the
whitened, concatenated update with noise std sigma per coordinate and L2 sensitivity
sqrt(1 + 1): it is the composition of two Gaussian mechanisms of noise multiplier sigma,
i.e. one of multiplier sigma / sqrt(2) (Rényi DP adds: 2 alpha / (2 sigma^2)). The
accountant is handed exactly that structure.

One round of ``central`` (the global model anyone receives; add or remove one client
changes the sum of clipped deltas by at most C_h in the head block and C_c in the centroid
block)::

    PoissonSampledDpEvent(q, ComposedDpEvent([GaussianDpEvent(sigma), GaussianDpEvent(sigma)]))

Both blocks come from the same sampled clients, so they sit under one sampling event:
composing two separately sampled events would understate ε when q < 1.

One round of ``local`` (what the server receives from one client): any two datasets of
that client may give any two clipped deltas in the ball of radius C_b, so the sensitivity
is 2 C_b per block and the multiplier sigma / 2; the server sees who sent, so sampling
does not amplify::

    ComposedDpEvent([GaussianDpEvent(sigma / 2), GaussianDpEvent(sigma / 2)])

The same accountant serves every client (each one's own release, every round in the
worst case: a client that took part in fewer rounds spent less). R rounds compose the
round's event R times; ε at δ comes from the accountant's RDP-to-(ε, δ) conversion. The
clients' reports (training loss, time, their own mIoU) and image counts are outside the
guarantee, as the training metrics are in Flower's DP strategies.

dp-accounting directly, not Flower's ``RdpAccountant`` that wraps it: Flower's
``GaussianPrivacyEvent`` carries one noise multiplier and states q as integer sample and
population sizes, so it can neither hold the two blocks under one sampling event nor a
rate q that K does not divide; on the equivalent single Gaussian (multiplier sigma / sqrt(2))
it gives the same ε (``tests/test_privacy.py``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from dp_accounting import dp_event, mechanism_calibration, rdp

from fussbench.errors import FussbenchError
from fussbench.params import PrivacyParams


def round_event(privacy: PrivacyParams) -> dp_event.DpEvent:
    """The privacy event of one round under ``privacy.mechanism`` (module docstring).

    Raises:
        FussbenchError: ``mechanism`` none (nothing is released with noise).
    """
    if privacy.mechanism == "central":
        blocks = dp_event.ComposedDpEvent([dp_event.GaussianDpEvent(privacy.noise_multiplier)] * 2)
        if privacy.sample_rate >= 1.0:
            return blocks
        return dp_event.PoissonSampledDpEvent(privacy.sample_rate, blocks)
    if privacy.mechanism == "local":
        multiplier = privacy.noise_multiplier / 2.0  # sensitivity 2 C_b: any two datasets
        return dp_event.ComposedDpEvent([dp_event.GaussianDpEvent(multiplier)] * 2)
    raise FussbenchError(
        f"privacy.mechanism {privacy.mechanism} spends no privacy budget; choose central or local"
    )


@contextmanager
def _quiet_orders() -> Iterator[None]:
    """Silence dp-accounting's warning that it left out a Rényi order whose series did
    not converge (sampled rounds at small orders): ε is the minimum over the orders kept,
    so leaving one out can only make it larger."""
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def epsilon(privacy: PrivacyParams, rounds: int) -> float:
    """ε at ``privacy.delta`` after ``rounds`` rounds (0 after none; inf without noise,
    σ = 0, or when the accountant finds no finite bound)."""
    if rounds == 0:
        return 0.0
    if privacy.noise_multiplier == 0:
        return math.inf  # clipping alone bounds no privacy loss
    accountant = rdp.RdpAccountant()
    with _quiet_orders():
        accountant.compose(round_event(privacy), rounds)
        return float(accountant.get_epsilon(privacy.delta))


def noise_for_epsilon(privacy: PrivacyParams, rounds: int, target: float) -> float:
    """The smallest σ (within 1e-4) whose ε after ``rounds`` rounds is at most ``target``,
    the other settings those of ``privacy`` (bisection over the accountant:
    dp-accounting's ``calibrate_dp_mechanism``, which guarantees ε <= target).

    Raises:
        FussbenchError: a target that is not a positive number, or no rounds.
    """
    if not (target > 0 and math.isfinite(target)) or rounds < 1:
        raise FussbenchError(
            f"a noise level needs a positive target epsilon and at least one round, got "
            f"epsilon {target} over {rounds} rounds"
        )

    def event(sigma: float) -> dp_event.DpEvent:
        return dp_event.SelfComposedDpEvent(
            round_event(dataclasses.replace(privacy, noise_multiplier=sigma)), rounds
        )

    with _quiet_orders():
        return float(
            mechanism_calibration.calibrate_dp_mechanism(
                rdp.RdpAccountant,
                event,
                target,
                privacy.delta,
                mechanism_calibration.LowerEndpointAndGuess(1e-3, 1.0),
                tol=1e-4,
            )
        )


def calibrated(privacy: PrivacyParams, rounds: int) -> PrivacyParams:
    """``privacy`` with the σ a run of ``rounds`` rounds uses: :func:`noise_for_epsilon`
    of ``privacy.target_epsilon`` when one is set, else ``privacy`` itself (σ =
    ``noise_multiplier``). σ is rounded up to 4 decimals (more noise, so ε stays within
    the target) and is the same for the same settings."""
    if privacy.target_epsilon is None or not privacy.on:
        return privacy
    sigma = noise_for_epsilon(privacy, rounds, privacy.target_epsilon)
    return dataclasses.replace(privacy, noise_multiplier=math.ceil(sigma * 1e4) / 1e4)


def budget_table(privacy: PrivacyParams, rounds: int, targets: Sequence[float]) -> str:
    """A Markdown table of what ``privacy`` spends over ``rounds`` rounds: ε of its σ,
    then, for each of ``targets``, the σ (:func:`noise_for_epsilon`) that stays within
    it and the ε it spends; for ``privacy.mechanism`` none, rows for both mechanisms."""
    mechanisms = [privacy.mechanism] if privacy.on else ["central", "local"]
    lines = [
        "| mechanism | rounds | sample rate q | delta | noise multiplier sigma | epsilon |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for mechanism in mechanisms:
        chosen = dataclasses.replace(privacy, mechanism=mechanism)
        sigmas = [chosen.noise_multiplier]
        sigmas += [noise_for_epsilon(chosen, rounds, target) for target in targets]
        for sigma in sigmas:
            spent = epsilon(dataclasses.replace(chosen, noise_multiplier=sigma), rounds)
            lines.append(
                f"| {mechanism} | {rounds} | {chosen.sample_rate:g} | {chosen.delta:g} "
                f"| {sigma:.3f} | {spent:.3f} |"
            )
    return "\n".join(lines) + "\n"

"""Trust-region quantities for decentralised PPO: ratios, clipping, divergences, joint measurements.

Pure JAX functions after Sun et al., "Monotonic Improvement Guarantees under Non-stationarity for
Decentralized PPO" (2022), written for one state (one agent, or one set of agents) with batch axes
added by broadcasting over leading axes (or by ``jax.vmap``).  Every function checks its shapes at
entry and is jittable; nothing here carries state.

Array layout (the one used throughout the package)::

    logits, avail_mask            [batch..., agent, action]   (per-agent categorical policies)
    mean, log_std                 [batch..., agent, action_dim] (per-agent diagonal Gaussians)
    sampled log-probs, active     [batch..., agent]

``batch...`` is any number (zero included) of leading axes, e.g. ``[time, env]``.  ``avail_mask``
marks actions an agent may take (SMAC/SMAX style); unavailable actions get probability zero in
both policies.  ``active_mask`` marks (state, agent) entries that count (e.g. alive agents);
inactive entries are left out of every mean and are treated as *unchanged* policies in joint
quantities (their ratio is 1 and their divergence 0).

Notation: ``p = pi_old`` (the behaviour policy that collected the data) and ``q = pi_new``.
Divergences are KL(p || q) and D_TV(p, q) = 1/2 sum_a |p(a) - q(a)|, taken over *full* action
distributions, not only the sampled actions.

Paper references:
  * eq. 3 / 4  -- PPO clipped surrogate with independent (per-agent) ratios (IPPO/MAPPO).
  * eq. 7 and Algorithm 1 -- JR-PPO: joint ratio prod_k pi~_k(a_k|s_k) / pi_k(a_k|s_k).
  * Theorem 4.3 -- alpha = sum_i E_s D_TV(pi_i, pi~_i), the centralised trust region.
  * Proposition 5.1 -- D_TV(p, q) = sum_{a: q(a) >= p(a)} (q(a) - p(a)).
  * Theorem 5.3 -- ratios within [1/(1+eps), 1+eps] for every action => E_s D_TV <= eps.
  * Section 6.2 (eq. 10) -- per-agent budget alpha/N, ratios in [1 - alpha/N, 1 + alpha/N] or
    [N/(N+alpha), (N+alpha)/N].

Modules (every public name is re-exported here, so ``from trustmarl import trust_region as TR`` and
``TR.clip_bounds(...)`` work as well as ``from trustmarl.trust_region.bounds import clip_bounds``):
  * ``bounds``      -- what the trust region allows: clip ranges, ratios, clipped surrogate, the TV a
                       ratio range permits.
  * ``divergences`` -- TV and KL of one agent's categorical or diagonal-Gaussian policies.
  * ``measure``     -- joint (product-policy) divergences and estimators, and the measurement of an
                       update (``UpdateMeasures``, ``measure_update``, ``measure_update_gaussian``).
"""

from __future__ import annotations

from trustmarl.trust_region.bounds import (
    CLIP_KINDS,
    clip_bounds,
    clip_fraction,
    clipped_surrogate,
    eps_from_alpha,
    independent_log_ratio,
    joint_log_ratio,
    tv_bound_from_ratio_bounds,
)
from trustmarl.trust_region.divergences import (
    GAUSSIAN_TV_METHODS,
    _gaussian_log_prob,  # noqa: F401  (private, used by tests)
    categorical_kl,
    categorical_tv,
    gaussian_kl,
    gaussian_tv,
    gaussian_tv_1d,
    masked_log_softmax,
)
from trustmarl.trust_region.measure import (
    TV_SAMPLES,
    UpdateMeasures,
    joint_kl,
    joint_tv_coupling_bound,
    joint_tv_exact,
    joint_tv_from_samples,
    joint_tv_mc,
    joint_tv_upper_bound,
    measure_update,
    measure_update_gaussian,
)

__all__ = [
    "CLIP_KINDS",
    "GAUSSIAN_TV_METHODS",
    "TV_SAMPLES",
    "UpdateMeasures",
    "eps_from_alpha",
    "clip_bounds",
    "tv_bound_from_ratio_bounds",
    "independent_log_ratio",
    "joint_log_ratio",
    "clipped_surrogate",
    "clip_fraction",
    "masked_log_softmax",
    "categorical_tv",
    "categorical_kl",
    "gaussian_kl",
    "gaussian_tv_1d",
    "gaussian_tv",
    "joint_kl",
    "joint_tv_upper_bound",
    "joint_tv_coupling_bound",
    "joint_tv_mc",
    "joint_tv_from_samples",
    "joint_tv_exact",
    "measure_update",
    "measure_update_gaussian",
]

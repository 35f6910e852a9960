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
"""

from __future__ import annotations

import math
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr

__all__ = [
    "CLIP_KINDS",
    "GAUSSIAN_TV_METHODS",
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
    "joint_tv_exact",
    "measure_update",
    "measure_update_gaussian",
]

CLIP_KINDS = ("symmetric", "multiplicative")
GAUSSIAN_TV_METHODS = ("auto", "exact", "bound", "mc")

# Logit given to unavailable actions.  Finite (not -inf) so that masked terms never produce
# 0 * inf = nan, in values or in gradients; exp(-1e9 - logsumexp) is exactly 0 in float32.
_MASKED_LOGIT = -1e9


# --------------------------------------------------------------------------------------------
# checks
# --------------------------------------------------------------------------------------------


def _assert_min_rank(x: chex.Array, min_rank: int, name: str) -> None:
    if jnp.ndim(x) < min_rank:
        raise ValueError(f"{name} must have rank >= {min_rank}, got shape {jnp.shape(x)}")


def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _check_positive(value, name: str, allowed: str) -> None:
    """Raise a one-line ValueError if a concrete ``value`` is not > 0 (tracers pass unchecked)."""
    if not _is_concrete(value):
        return
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} is not a number; allowed: {allowed}") from None
    if not (np.all(arr > 0) and np.all(np.isfinite(arr))):
        raise ValueError(f"{name}={value!r} is invalid; allowed: {allowed}")


def _bool_mask(mask: chex.Array | None, shape: tuple[int, ...], name: str) -> chex.Array:
    if mask is None:
        return jnp.ones(shape, dtype=bool)
    if tuple(jnp.shape(mask)) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(jnp.shape(mask))}")
    mask = jnp.asarray(mask)
    return mask if mask.dtype == jnp.bool_ else mask > 0


# --------------------------------------------------------------------------------------------
# clipping ranges
# --------------------------------------------------------------------------------------------


def eps_from_alpha(alpha, num_agents: int):
    """Per-agent clip value for a centralised trust region of size ``alpha`` (Section 6.2, eq. 10).

    ``eps = alpha / N``: bounding every agent's E_s D_TV by alpha/N keeps the centralised trust
    region of Theorem 4.3, sum_i E_s D_TV(pi_i, pi~_i), below alpha.  Use with
    ``clip_bounds(eps, "symmetric")`` for [1 - alpha/N, 1 + alpha/N] or with
    ``clip_bounds(eps, "multiplicative")`` for [N/(N+alpha), (N+alpha)/N].
    """
    if isinstance(num_agents, bool) or not isinstance(num_agents, int) or num_agents < 1:
        raise ValueError(f"num_agents={num_agents!r} is invalid; allowed: an int >= 1")
    _check_positive(alpha, "alpha", "a number > 0")
    return alpha / num_agents


def clip_bounds(eps, kind: str = "symmetric"):
    """Ratio clipping range ``(low, high)``.

    * ``"symmetric"``:      (1 - eps, 1 + eps)            -- PPO/IPPO/MAPPO, eq. 3-4 and Section 6.2.
    * ``"multiplicative"``: (1 / (1 + eps), 1 + eps)      -- the range of Theorem 5.3; with
      eps = alpha/N it is [N/(N+alpha), (N+alpha)/N] (Section 5).

    ``eps`` may be a Python float, an array (e.g. one value per agent) or a tracer; concrete
    values must be > 0.  Returns values of the same kind as ``eps``.
    """
    if kind not in CLIP_KINDS:
        raise ValueError(f"clip kind {kind!r} is invalid; allowed: {', '.join(CLIP_KINDS)}")
    _check_positive(eps, "clip eps", "a number > 0")
    if kind == "symmetric":
        return 1.0 - eps, 1.0 + eps
    return 1.0 / (1.0 + eps), 1.0 + eps


def tv_bound_from_ratio_bounds(low, high):
    """Largest D_TV(p, q) possible when q(a)/p(a) lies in [low, high] for *every* action a.

    With P+ = p-mass where q > p (Proposition 5.1):
    D_TV = sum_{q>p} (q - p) <= (high - 1) P+   and   D_TV = sum_{q<p} (p - q) <= (1 - low)(1 - P+),
    so D_TV <= max_x min((high-1) x, (1-low)(1-x)) = (high - 1)(1 - low) / (high - low).
    The bound is attained (put mass (1-low)/(high-low) on actions with ratio ``high``, the rest on
    ``low``).  For (1-eps, 1+eps) it is eps/2; for (1/(1+eps), 1+eps) it is eps/(2+eps) -- both
    tighter than Theorem 5.3's ``E_s D_TV <= eps`` (which they imply, state by state).
    Requires low <= 1 <= high (a normalised q forces both); returns 0 when low == high == 1.
    """
    up = jnp.maximum(jnp.asarray(high, dtype=jnp.float32) - 1.0, 0.0)
    down = jnp.maximum(1.0 - jnp.asarray(low, dtype=jnp.float32), 0.0)
    denom = up + down
    return jnp.where(denom > 0, up * down / jnp.where(denom > 0, denom, 1.0), 0.0)


# --------------------------------------------------------------------------------------------
# ratios and the clipped surrogate
# --------------------------------------------------------------------------------------------


def independent_log_ratio(logp_new: chex.Array, logp_old: chex.Array) -> chex.Array:
    """Log of the independent ratio of eq. 4: log lambda_k = log pi~_k(a_k|s_k) - log pi_k(a_k|s_k).

    Elementwise: any shape, e.g. [batch..., agent]; the ratio is ``exp`` of the result.
    """
    chex.assert_equal_shape([logp_new, logp_old])
    return logp_new - logp_old


def joint_log_ratio(
    logp_new: chex.Array,
    logp_old: chex.Array,
    active_mask: chex.Array | None = None,
    axis: int = -1,
) -> chex.Array:
    """Log of the joint ratio of JR-PPO (eq. 7, Algorithm 1), summed over active agents.

    log lambda_joint = sum_{k active} [log pi~_k(a_k|s_k) - log pi_k(a_k|s_k)], so the joint ratio
    prod_k pi~_k / pi_k = exp(result).  Inactive agents contribute ratio 1.  Inputs
    [batch..., agent] (``axis`` names the agent axis); output [batch...].  With one agent it equals
    ``independent_log_ratio``.
    """
    chex.assert_equal_shape([logp_new, logp_old])
    _assert_min_rank(logp_new, 1, "logp_new")
    active = _bool_mask(active_mask, jnp.shape(logp_new), "active_mask")
    return jnp.sum(jnp.where(active, logp_new - logp_old, 0.0), axis=axis)


def clipped_surrogate(ratio: chex.Array, advantage: chex.Array, low, high) -> chex.Array:
    """PPO clipped surrogate (eq. 3, per agent eq. 4, joint eq. 7), elementwise.

    min(r A, clip(r, low, high) A) -- an objective to *maximise*; the loss is minus its (masked)
    mean.  ``ratio`` and ``advantage`` have the same shape; ``low``/``high`` broadcast (e.g. from
    ``clip_bounds``).
    """
    chex.assert_equal_shape([ratio, advantage])
    return jnp.minimum(ratio * advantage, jnp.clip(ratio, low, high) * advantage)


def clip_fraction(
    ratio: chex.Array,
    low,
    high,
    mask: chex.Array | None = None,
    advantage: chex.Array | None = None,
) -> chex.Array:
    """Fraction of (masked) entries whose ratio lies outside [low, high].

    With ``advantage`` given, counts only entries where the clip *binds* in ``clipped_surrogate``
    (the clipped branch is selected and has zero gradient): (A > 0 and r > high) or
    (A < 0 and r < low).  Returns a scalar; 0 when the mask selects nothing.
    """
    outside = (ratio < low) | (ratio > high)
    if advantage is not None:
        chex.assert_equal_shape([ratio, advantage])
        outside = ((advantage > 0) & (ratio > high)) | ((advantage < 0) & (ratio < low))
    m = _bool_mask(mask, jnp.shape(ratio), "mask")
    count = jnp.sum(m)
    return jnp.sum(outside & m) / jnp.maximum(count, 1)


# --------------------------------------------------------------------------------------------
# divergences of categorical policies
# --------------------------------------------------------------------------------------------


def masked_log_softmax(logits: chex.Array, avail_mask: chex.Array | None = None) -> chex.Array:
    """log softmax over the last axis with unavailable actions given (effectively) zero probability.

    ``logits`` [..., action]; ``avail_mask`` same shape (bool or 0/1), at least one action
    available per row.  Unavailable entries get log-probability about -1e9 (finite on purpose).
    """
    _assert_min_rank(logits, 1, "logits")
    if avail_mask is not None:
        avail = _bool_mask(avail_mask, jnp.shape(logits), "avail_mask")
        logits = jnp.where(avail, logits, _MASKED_LOGIT)
    return jax.nn.log_softmax(logits, axis=-1)


def _categorical_pair(logits_p, logits_q, avail_mask):
    chex.assert_equal_shape([logits_p, logits_q])
    _assert_min_rank(logits_p, 1, "logits_p")
    avail = _bool_mask(avail_mask, jnp.shape(logits_p), "avail_mask")
    return masked_log_softmax(logits_p, avail), masked_log_softmax(logits_q, avail), avail


def categorical_tv(
    logits_p: chex.Array, logits_q: chex.Array, avail_mask: chex.Array | None = None
) -> chex.Array:
    """Exact total variation of two categorical distributions, over the last axis.

    D_TV(p, q) = 1/2 sum_a |p(a) - q(a)| = sum_{a: q(a) > p(a)} (q(a) - p(a))  (Proposition 5.1),
    summed over available actions.  Inputs [..., action]; output [...], in [0, 1].
    """
    logp, logq, avail = _categorical_pair(logits_p, logits_q, avail_mask)
    diff = jnp.where(avail, jnp.exp(logp) - jnp.exp(logq), 0.0)
    return 0.5 * jnp.sum(jnp.abs(diff), axis=-1)


def categorical_kl(
    logits_p: chex.Array, logits_q: chex.Array, avail_mask: chex.Array | None = None
) -> chex.Array:
    """Exact KL(p || q) = sum_a p(a) (log p(a) - log q(a)) over available actions, last axis.

    Use p = pi_old, q = pi_new (the direction of TRPO's constraint).  Inputs [..., action];
    output [...], >= 0.
    """
    logp, logq, avail = _categorical_pair(logits_p, logits_q, avail_mask)
    terms = jnp.where(avail, jnp.exp(logp) * (logp - logq), 0.0)
    return jnp.maximum(jnp.sum(terms, axis=-1), 0.0)


# --------------------------------------------------------------------------------------------
# divergences of diagonal Gaussian policies
# --------------------------------------------------------------------------------------------


def _gaussian_pair(mean_p, log_std_p, mean_q, log_std_q):
    chex.assert_equal_shape([mean_p, log_std_p, mean_q, log_std_q])
    _assert_min_rank(mean_p, 1, "mean_p")


def gaussian_kl(mean_p, log_std_p, mean_q, log_std_q) -> chex.Array:
    """Exact KL(p || q) of diagonal Gaussians, summed over the last (action-dimension) axis.

    KL = sum_d [log(s_q/s_p) + (s_p^2 + (m_p - m_q)^2) / (2 s_q^2) - 1/2].
    Inputs [..., action_dim] (all four the same shape); output [...].
    """
    _gaussian_pair(mean_p, log_std_p, mean_q, log_std_q)
    var_ratio = jnp.exp(2.0 * (log_std_p - log_std_q))
    sq = jnp.square((mean_p - mean_q) * jnp.exp(-log_std_q))
    return jnp.sum(log_std_q - log_std_p + 0.5 * (var_ratio + sq) - 0.5, axis=-1)


def gaussian_tv_1d(mean_p, log_std_p, mean_q, log_std_q) -> chex.Array:
    """Exact total variation between two 1-D Gaussians, elementwise (no reduction).

    Equal scales:  D_TV = 2 Phi(|m_p - m_q| / (2 s)) - 1.
    Otherwise, with the narrower density N(0, 1) after standardising (k = s_wide/s_narrow > 1,
    d = (m_wide - m_narrow)/s_narrow), the densities cross at the roots z_1 < z_2 of
    (1 - k^2) z^2 - 2 d z + d^2 + 2 k^2 log k = 0 and the narrower one dominates in between:
    D_TV = [Phi(z_2) - Phi(z_1)] - [Phi((z_2 - d)/k) - Phi((z_1 - d)/k)].
    The root near the modes is computed in the cancellation-free form (d^2 + 2k^2 log k)/(d + sgn(d) k r).
    """
    mean_p, log_std_p, mean_q, log_std_q = jnp.broadcast_arrays(
        *(jnp.asarray(x, dtype=jnp.result_type(float, x)) for x in (mean_p, log_std_p, mean_q, log_std_q))
    )
    p_narrow = log_std_p <= log_std_q
    m1 = jnp.where(p_narrow, mean_p, mean_q)
    m2 = jnp.where(p_narrow, mean_q, mean_p)
    ls1 = jnp.where(p_narrow, log_std_p, log_std_q)
    ls2 = jnp.where(p_narrow, log_std_q, log_std_p)
    log_k = ls2 - ls1  # >= 0
    d = (m2 - m1) * jnp.exp(-ls1)

    # equal scales (also used when the scales differ by < 1e-6 relatively: error O(1e-6))
    same = log_k < 1e-6
    tv_same = 2.0 * ndtr(jnp.abs(d) * 0.5) - 1.0

    log_k_s = jnp.where(same, 1.0, log_k)  # safe value, branch discarded below
    k = jnp.exp(log_k_s)
    k2 = k * k
    r = jnp.sqrt(jnp.square(d) + 2.0 * (k2 - 1.0) * log_k_s)
    sgn = jnp.where(d >= 0, 1.0, -1.0)
    z_far = (d + sgn * k * r) / (1.0 - k2)
    z_near = (jnp.square(d) + 2.0 * k2 * log_k_s) / (d + sgn * k * r)
    z1 = jnp.minimum(z_far, z_near)
    z2 = jnp.maximum(z_far, z_near)
    mass_narrow = ndtr(z2) - ndtr(z1)
    mass_wide = ndtr((z2 - d) / k) - ndtr((z1 - d) / k)
    tv_diff = mass_narrow - mass_wide
    return jnp.clip(jnp.where(same, tv_same, tv_diff), 0.0, 1.0)


def _gaussian_tv_upper_bound(mean_p, log_std_p, mean_q, log_std_q):
    # Four valid upper bounds on D_TV of product measures; the smallest is reported.
    tv_d = gaussian_tv_1d(mean_p, log_std_p, mean_q, log_std_q)
    coupling = 1.0 - jnp.prod(1.0 - tv_d, axis=-1)  # independent maximal couplings per dimension
    kl = gaussian_kl(mean_p, log_std_p, mean_q, log_std_q)
    pinsker = jnp.sqrt(0.5 * kl)
    bretagnolle_huber = jnp.sqrt(-jnp.expm1(-kl))
    # Bhattacharyya coefficient factorises; D_TV <= sqrt(1 - BC^2).
    var_p, var_q = jnp.exp(2.0 * log_std_p), jnp.exp(2.0 * log_std_q)
    log_bc = jnp.sum(
        0.5 * (math.log(2.0) + log_std_p + log_std_q - jnp.log(var_p + var_q))
        - jnp.square(mean_p - mean_q) / (4.0 * (var_p + var_q)),
        axis=-1,
    )
    hellinger = jnp.sqrt(-jnp.expm1(2.0 * log_bc))
    bound = jnp.minimum(jnp.minimum(coupling, pinsker), jnp.minimum(bretagnolle_huber, hellinger))
    return jnp.clip(bound, 0.0, 1.0)


def _gaussian_log_prob(x, mean, log_std):
    z = (x - mean) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * jnp.square(z) - log_std - 0.5 * math.log(2.0 * math.pi), axis=-1)


def gaussian_tv(
    mean_p,
    log_std_p,
    mean_q,
    log_std_q,
    method: str = "auto",
    key: chex.PRNGKey | None = None,
    num_samples: int = 64,
) -> chex.Array:
    """Total variation between diagonal Gaussians p = N(m_p, s_p^2), q = N(m_q, s_q^2) over the last axis.

    D_TV has no closed form for diagonal Gaussians in more than one dimension; ``method``:

    * ``"exact"``: closed form, only for action_dim == 1 (``gaussian_tv_1d``).
    * ``"bound"`` (deterministic): the smallest of four upper bounds,
      1 - prod_d (1 - D_TV,d) (product coupling, exact per-dimension TV), sqrt(KL/2) (Pinsker),
      sqrt(1 - exp(-KL)) (Bretagnolle-Huber) and sqrt(1 - BC^2) (Bhattacharyya coefficient).
      Exact when action_dim == 1 through the first term.
    * ``"mc"`` (unbiased, needs ``key``): mean over ``num_samples`` draws x ~ p of (1 - q(x)/p(x))_+,
      since E_p[(1 - q/p)_+] = sum_{p > q} (p - q) = D_TV (Proposition 5.1).
    * ``"auto"`` (default): ``"exact"`` for action_dim == 1, else ``"bound"``.

    Inputs [..., action_dim]; output [...].
    """
    if method not in GAUSSIAN_TV_METHODS:
        raise ValueError(f"gaussian tv method {method!r} is invalid; allowed: {', '.join(GAUSSIAN_TV_METHODS)}")
    _gaussian_pair(mean_p, log_std_p, mean_q, log_std_q)
    dim = jnp.shape(mean_p)[-1]
    if method == "auto":
        method = "exact" if dim == 1 else "bound"
    if method == "exact":
        if dim != 1:
            raise ValueError(f"gaussian tv method 'exact' needs action_dim 1, got {dim}; allowed: 'bound', 'mc'")
        return gaussian_tv_1d(mean_p, log_std_p, mean_q, log_std_q)[..., 0]
    if method == "bound":
        return _gaussian_tv_upper_bound(mean_p, log_std_p, mean_q, log_std_q)
    if key is None:
        raise ValueError("gaussian tv method 'mc' needs a PRNG key; allowed: key=jax.random.PRNGKey(...)")
    noise = jax.random.normal(key, (num_samples,) + jnp.shape(mean_p), dtype=jnp.result_type(mean_p, float))
    x = mean_p + jnp.exp(log_std_p) * noise
    log_ratio = _gaussian_log_prob(x, mean_q, log_std_q) - _gaussian_log_prob(x, mean_p, log_std_p)
    return jnp.mean(jax.nn.relu(-jnp.expm1(log_ratio)), axis=0)


# --------------------------------------------------------------------------------------------
# joint (product) policies over agents
# --------------------------------------------------------------------------------------------


def joint_kl(kl_per_agent: chex.Array, active_mask: chex.Array | None = None, axis: int = -1) -> chex.Array:
    """KL between product policies: KL(prod_i p_i || prod_i q_i) = sum_i KL(p_i || q_i) (exact).

    ``kl_per_agent`` [batch..., agent] -> [batch...]; inactive agents contribute 0.
    """
    _assert_min_rank(kl_per_agent, 1, "kl_per_agent")
    active = _bool_mask(active_mask, jnp.shape(kl_per_agent), "active_mask")
    return jnp.sum(jnp.where(active, kl_per_agent, 0.0), axis=axis)


def joint_tv_upper_bound(
    tv_per_agent: chex.Array, active_mask: chex.Array | None = None, axis: int = -1
) -> chex.Array:
    """Union bound on the joint TV: D_TV(prod_i p_i, prod_i q_i) <= min(1, sum_i D_TV(p_i, q_i)).

    The per-state sum is the quantity whose expectation is alpha in Theorem 4.3.
    ``tv_per_agent`` [batch..., agent] -> [batch...].
    """
    _assert_min_rank(tv_per_agent, 1, "tv_per_agent")
    active = _bool_mask(active_mask, jnp.shape(tv_per_agent), "active_mask")
    return jnp.minimum(1.0, jnp.sum(jnp.where(active, tv_per_agent, 0.0), axis=axis))


def joint_tv_coupling_bound(
    tv_per_agent: chex.Array, active_mask: chex.Array | None = None, axis: int = -1
) -> chex.Array:
    """Tighter product bound: D_TV(prod p_i, prod q_i) <= 1 - prod_i (1 - D_TV(p_i, q_i)).

    Coupling each agent's pair maximally and independently, the joint actions differ with
    probability 1 - prod_i(1 - TV_i).  Always <= ``joint_tv_upper_bound`` and >= max_i TV_i.
    """
    _assert_min_rank(tv_per_agent, 1, "tv_per_agent")
    active = _bool_mask(active_mask, jnp.shape(tv_per_agent), "active_mask")
    return 1.0 - jnp.prod(jnp.where(active, 1.0 - tv_per_agent, 1.0), axis=axis)


def _joint_logps(old_logits, new_logits, avail_mask, active_mask):
    """Masked log-probs [..., agent, action]; inactive agents get the old policy as the new one."""
    chex.assert_equal_shape([old_logits, new_logits])
    _assert_min_rank(old_logits, 2, "old_logits [batch..., agent, action]")
    logp, logq, _ = _categorical_pair(old_logits, new_logits, avail_mask)
    active = _bool_mask(active_mask, jnp.shape(old_logits)[:-1], "active_mask")
    logq = jnp.where(active[..., None], logq, logp)
    return logp, logq


def joint_tv_mc(
    key: chex.PRNGKey,
    old_logits: chex.Array,
    new_logits: chex.Array,
    avail_mask: chex.Array | None = None,
    active_mask: chex.Array | None = None,
    num_samples: int = 16,
) -> chex.Array:
    """Unbiased Monte-Carlo estimate of the joint TV of product categorical policies.

    D_TV(P, Q) = E_{a ~ P}[(1 - Q(a)/P(a))_+] (Proposition 5.1 as an expectation), with
    P = prod_i p_i (old), Q = prod_i q_i (new) and Q/P = exp(sum_{i active} log q_i(a_i) - log p_i(a_i)).
    Draws ``num_samples`` joint actions per state, each agent sampling from its old policy.
    Each sample term lies in [0, 1], so the standard error is <= 1/(2 sqrt(num_samples)).
    Inputs [batch..., agent, action]; output [batch...].
    """
    logp, logq = _joint_logps(old_logits, new_logits, avail_mask, active_mask)
    batch_shape = jnp.shape(logp)[:-1]
    actions = jax.random.categorical(key, logp, axis=-1, shape=(num_samples,) + batch_shape)
    idx = actions[..., None]
    lp = jnp.take_along_axis(jnp.broadcast_to(logp, (num_samples,) + logp.shape), idx, axis=-1)[..., 0]
    lq = jnp.take_along_axis(jnp.broadcast_to(logq, (num_samples,) + logq.shape), idx, axis=-1)[..., 0]
    log_ratio = jnp.sum(lq - lp, axis=-1)  # [K, batch...]
    return jnp.mean(jax.nn.relu(-jnp.expm1(log_ratio)), axis=0)


def joint_tv_from_samples(log_ratio: chex.Array, active_mask: chex.Array | None = None, axis: int = -1) -> chex.Array:
    """Joint TV estimated from the actions the rollout already sampled, at no sampling cost.

    The rollout's joint action at each state is one draw from the old joint policy P, so the single-sample
    estimate (1 - Q(a)/P(a))_+ with Q/P = exp(sum_{i active} log q_i(a_i) - log p_i(a_i)) is unbiased for
    D_TV(P, Q) = E_{a~P}[(1 - Q(a)/P(a))_+] (Proposition 5.1). Averaged over the rollout's states it
    estimates E_s D_TV of the joint policies, with standard error <= 1/(2 sqrt(#states)).
    ``log_ratio`` [batch..., agent] (new minus old log-prob of the sampled actions); output [batch...].
    """
    active = _bool_mask(active_mask, jnp.shape(log_ratio), "active_mask")
    joint = jnp.sum(jnp.where(active, log_ratio, 0.0), axis=axis)
    return jax.nn.relu(-jnp.expm1(joint))


def joint_tv_exact(
    old_logits: chex.Array,
    new_logits: chex.Array,
    avail_mask: chex.Array | None = None,
    active_mask: chex.Array | None = None,
    max_joint_actions: int = 4096,
) -> chex.Array:
    """Exact joint TV of product categorical policies by enumerating all A^N joint actions.

    D_TV = 1/2 sum_{a_1..a_N} |prod_i p_i(a_i) - prod_i q_i(a_i)|.  Cost and memory are
    O(batch * A^N); raises ValueError when A^N > ``max_joint_actions`` (use ``joint_tv_mc`` or
    the bounds then).  Inputs [batch..., agent, action]; output [batch...].
    """
    logp, logq = _joint_logps(old_logits, new_logits, avail_mask, active_mask)
    n_agents, n_actions = jnp.shape(logp)[-2:]
    size = n_actions**n_agents
    if size > max_joint_actions:
        raise ValueError(
            f"joint action space {n_actions}^{n_agents}={size} is too large to enumerate; "
            f"allowed: <= max_joint_actions={max_joint_actions}"
        )

    def outer(lx):
        joint = lx[..., 0, :]
        for i in range(1, n_agents):
            joint = joint[..., None] + jnp.expand_dims(lx[..., i, :], tuple(range(-i - 1, -1)))
        return joint.reshape(joint.shape[: joint.ndim - n_agents] + (size,))

    jp, jq = outer(logp), outer(logq)
    return jnp.clip(0.5 * jnp.sum(jnp.abs(jnp.exp(jp) - jnp.exp(jq)), axis=-1), 0.0, 1.0)


# --------------------------------------------------------------------------------------------
# one call per update / epoch: the measurements the trainer logs
# --------------------------------------------------------------------------------------------


class UpdateMeasures(NamedTuple):
    """Trust-region measurements of one policy update (all under stop_gradient).

    Per agent, shape [agent] (NaN for an agent with no active entry):
      ratio_min, ratio_max: min / max of pi_new(a|s)/pi_old(a|s) over active *sampled* actions (eq. 4).
      dist_ratio_min, dist_ratio_max: the same over *every available action* of the full
        distributions, i.e. the premise of Theorem 5.3.
      tv_mean: E_s D_TV(pi_old_i(.|s), pi_new_i(.|s)) over states where agent i is active.
      kl_mean: E_s KL(pi_old_i || pi_new_i), same states.
      count: number of active entries.
    Scalars (over states with at least one active agent):
      sum_tv: sum_i tv_mean_i -- alpha of Theorem 4.3 (the centralised trust region).
      joint_tv_bound: E_s min(1, sum_i D_TV_i(s)) (union bound on the joint TV).
      joint_tv_coupling: E_s [1 - prod_i (1 - D_TV_i(s))] (tighter bound).
      joint_tv_mc: E_s of the unbiased Monte-Carlo joint-TV estimate.
      joint_tv_exact: E_s of the enumerated joint TV, NaN when A^N exceeds the limit (or for Gaussians).
      joint_kl: E_s sum_i KL_i(s) (exact joint KL for product policies).
      joint_ratio_min, joint_ratio_max: range of the joint ratio (Algorithm 1) over sampled actions.
    """

    ratio_min: chex.Array
    ratio_max: chex.Array
    dist_ratio_min: chex.Array
    dist_ratio_max: chex.Array
    tv_mean: chex.Array
    kl_mean: chex.Array
    count: chex.Array
    sum_tv: chex.Array
    joint_tv_bound: chex.Array
    joint_tv_coupling: chex.Array
    joint_tv_mc: chex.Array
    joint_tv_exact: chex.Array
    joint_kl: chex.Array
    joint_ratio_min: chex.Array
    joint_ratio_max: chex.Array

    def to_row(self) -> dict[str, float]:
        """Flat host-side dict named like the columns of ``trust_region.csv`` / ``metrics.csv``.

        ratio_min, ratio_max (over agents), sum_tv, joint_tv_bound, joint_tv_mc, joint_kl, ...,
        and per agent ratio_min_<i>, ratio_max_<i>, tv_<i>, kl_<i>.  Not for use inside jit.
        """
        lo, hi = np.asarray(self.ratio_min, dtype=float), np.asarray(self.ratio_max, dtype=float)
        row: dict[str, float] = {
            "ratio_min": float(np.nanmin(lo)) if np.isfinite(lo).any() else math.nan,
            "ratio_max": float(np.nanmax(hi)) if np.isfinite(hi).any() else math.nan,
        }
        for name in (
            "sum_tv", "joint_tv_bound", "joint_tv_coupling", "joint_tv_mc", "joint_tv_exact",
            "joint_kl", "joint_ratio_min", "joint_ratio_max",
        ):
            row[name] = float(getattr(self, name))
        per_agent = {
            "ratio_min": self.ratio_min, "ratio_max": self.ratio_max,
            "dist_ratio_min": self.dist_ratio_min, "dist_ratio_max": self.dist_ratio_max,
            "tv": self.tv_mean, "kl": self.kl_mean,
        }
        for prefix, values in per_agent.items():
            for i, v in enumerate(np.asarray(values).reshape(-1)):
                row[f"{prefix}_{i}"] = float(v)
        return row


def _masked_mean(x, mask, axes):
    count = jnp.sum(mask, axis=axes)
    total = jnp.sum(jnp.where(mask, x, 0.0), axis=axes)
    return jnp.where(count > 0, total / jnp.maximum(count, 1), jnp.nan), count


def _masked_min_max(x, mask, axes):
    lo = jnp.min(jnp.where(mask, x, jnp.inf), axis=axes)
    hi = jnp.max(jnp.where(mask, x, -jnp.inf), axis=axes)
    has = jnp.any(mask, axis=axes)
    return jnp.where(has, lo, jnp.nan), jnp.where(has, hi, jnp.nan)


def _assemble(tv, kl, log_ratio_sampled, dist_lr_min, dist_lr_max, active, joint_mc, joint_exact):
    """Reduce per-(state, agent) quantities [batch..., agent] to UpdateMeasures."""
    batch_axes = tuple(range(active.ndim - 1))
    tv_mean, count = _masked_mean(tv, active, batch_axes)
    kl_mean, _ = _masked_mean(kl, active, batch_axes)
    ratio = jnp.exp(log_ratio_sampled)
    ratio_min, ratio_max = _masked_min_max(ratio, active, batch_axes)
    dist_ratio_min, _ = _masked_min_max(jnp.exp(dist_lr_min), active, batch_axes)
    _, dist_ratio_max = _masked_min_max(jnp.exp(dist_lr_max), active, batch_axes)

    any_active = jnp.any(active, axis=-1)  # [batch...]
    all_axes = tuple(range(any_active.ndim))
    smean = lambda x: _masked_mean(x, any_active, all_axes)[0]  # noqa: E731
    jlr = jnp.exp(joint_log_ratio(log_ratio_sampled, jnp.zeros_like(log_ratio_sampled), active))
    joint_ratio_min, joint_ratio_max = _masked_min_max(jlr, any_active, all_axes)
    return UpdateMeasures(
        ratio_min=ratio_min,
        ratio_max=ratio_max,
        dist_ratio_min=dist_ratio_min,
        dist_ratio_max=dist_ratio_max,
        tv_mean=tv_mean,
        kl_mean=kl_mean,
        count=count,
        sum_tv=jnp.nansum(tv_mean),
        joint_tv_bound=smean(joint_tv_upper_bound(tv, active)),
        joint_tv_coupling=smean(joint_tv_coupling_bound(tv, active)),
        joint_tv_mc=smean(joint_mc),
        joint_tv_exact=jnp.array(jnp.nan) if joint_exact is None else smean(joint_exact),
        joint_kl=smean(joint_kl(kl, active)),
        joint_ratio_min=joint_ratio_min,
        joint_ratio_max=joint_ratio_max,
    )


def measure_update(
    old_logits: chex.Array,
    new_logits: chex.Array,
    avail_mask: chex.Array | None,
    active_mask: chex.Array | None,
    sampled_logp_old: chex.Array,
    sampled_logp_new: chex.Array,
    key: chex.PRNGKey | None = None,
    num_mc_samples: int = 16,
    exact_joint_limit: int = 256,
) -> UpdateMeasures:
    """Trust-region measurements of an update of per-agent categorical policies (see ``UpdateMeasures``).

    Layout: ``old_logits``, ``new_logits``, ``avail_mask`` [batch..., agent, action];
    ``active_mask``, ``sampled_logp_old``, ``sampled_logp_new`` [batch..., agent]
    (``avail_mask``/``active_mask`` may be None = all ones).  The batch axes are the states
    s ~ d_pi_old the expectations of Theorems 4.3 and 5.3 run over.  ``key`` seeds the Monte-Carlo
    joint TV (default a fixed key: pass a fresh one to decorrelate successive calls);
    ``num_mc_samples`` and ``exact_joint_limit`` are static: ``num_mc_samples=0`` estimates the joint TV
    from the sampled actions themselves (``joint_tv_from_samples``, the trainer's default); the exact joint
    TV is computed when A^N <= exact_joint_limit, else reported as NaN.  Pure jnp, jittable, wrapped in
    stop_gradient: cost O(batch * agent * (action + num_mc_samples)) plus the optional enumeration.
    """
    chex.assert_equal_shape([old_logits, new_logits])
    _assert_min_rank(old_logits, 2, "old_logits [batch..., agent, action]")
    agent_shape = jnp.shape(old_logits)[:-1]
    chex.assert_shape([sampled_logp_old, sampled_logp_new], agent_shape)
    active = _bool_mask(active_mask, agent_shape, "active_mask")
    avail = _bool_mask(avail_mask, jnp.shape(old_logits), "avail_mask")
    old_logits, new_logits, sampled_logp_old, sampled_logp_new = jax.lax.stop_gradient(
        (old_logits, new_logits, sampled_logp_old, sampled_logp_new)
    )
    if key is None:
        key = jax.random.PRNGKey(0)

    logp, logq, _ = _categorical_pair(old_logits, new_logits, avail)
    tv = categorical_tv(old_logits, new_logits, avail)
    kl = categorical_kl(old_logits, new_logits, avail)
    dist_lr = logq - logp
    dist_lr_min = jnp.min(jnp.where(avail, dist_lr, jnp.inf), axis=-1)
    dist_lr_max = jnp.max(jnp.where(avail, dist_lr, -jnp.inf), axis=-1)
    log_ratio = independent_log_ratio(sampled_logp_new, sampled_logp_old)
    if num_mc_samples == 0:
        mc = joint_tv_from_samples(log_ratio, active)
    else:
        mc = joint_tv_mc(key, old_logits, new_logits, avail, active, num_mc_samples)
    n_agents, n_actions = jnp.shape(old_logits)[-2:]
    exact = None
    if n_actions**n_agents <= exact_joint_limit:
        exact = joint_tv_exact(old_logits, new_logits, avail, active, exact_joint_limit)
    return _assemble(tv, kl, log_ratio, dist_lr_min, dist_lr_max, active, mc, exact)


def measure_update_gaussian(
    old_mean: chex.Array,
    old_log_std: chex.Array,
    new_mean: chex.Array,
    new_log_std: chex.Array,
    active_mask: chex.Array | None,
    sampled_logp_old: chex.Array,
    sampled_logp_new: chex.Array,
    key: chex.PRNGKey | None = None,
    num_mc_samples: int = 16,
    tv_method: str = "auto",
) -> UpdateMeasures:
    """``measure_update`` for per-agent diagonal Gaussian policies (continuous actions).

    Layout: means and log-stds [batch..., agent, action_dim]; the rest [batch..., agent].
    Per-agent TV by ``gaussian_tv(method=tv_method)`` ("auto": exact for 1-D actions, else the
    deterministic upper bound; "mc" uses ``key``).  The joint TV Monte-Carlo estimate samples each
    agent's action from its old Gaussian.  ``dist_ratio_min/max`` are not finite for Gaussians
    with different scales (the ratio is unbounded) and are reported as NaN; ``joint_tv_exact`` is NaN.
    """
    chex.assert_equal_shape([old_mean, old_log_std, new_mean, new_log_std])
    _assert_min_rank(old_mean, 2, "old_mean [batch..., agent, action_dim]")
    agent_shape = jnp.shape(old_mean)[:-1]
    chex.assert_shape([sampled_logp_old, sampled_logp_new], agent_shape)
    active = _bool_mask(active_mask, agent_shape, "active_mask")
    old_mean, old_log_std, new_mean, new_log_std, sampled_logp_old, sampled_logp_new = jax.lax.stop_gradient(
        (old_mean, old_log_std, new_mean, new_log_std, sampled_logp_old, sampled_logp_new)
    )
    if key is None:
        key = jax.random.PRNGKey(0)
    key_tv, key_joint = jax.random.split(key)
    tv = gaussian_tv(old_mean, old_log_std, new_mean, new_log_std, tv_method, key_tv, num_mc_samples)
    kl = gaussian_kl(old_mean, old_log_std, new_mean, new_log_std)
    log_ratio = independent_log_ratio(sampled_logp_new, sampled_logp_old)
    if num_mc_samples == 0:
        mc = joint_tv_from_samples(log_ratio, active)
    else:
        noise = jax.random.normal(key_joint, (num_mc_samples,) + jnp.shape(old_mean), dtype=old_mean.dtype)
        x = old_mean + jnp.exp(old_log_std) * noise
        lr = _gaussian_log_prob(x, new_mean, new_log_std) - _gaussian_log_prob(x, old_mean, old_log_std)
        mc = jnp.mean(joint_tv_from_samples(lr, jnp.broadcast_to(active, jnp.shape(lr))), axis=0)  # [K, ...]
    nan = jnp.full(agent_shape, jnp.nan)
    return _assemble(tv, kl, log_ratio, nan, nan, active, mc, None)

"""What the trust region allows: clip ranges, ratios and the clipped surrogate.

* ``eps_from_alpha``, ``clip_bounds``: the per-agent ratio range for a clip value, or for a centralised
  budget alpha (Section 6.2, eq. 10; Theorem 5.3's multiplicative range).
* ``tv_bound_from_ratio_bounds``: the largest TV a ratio range permits (Proposition 5.1, Theorem 5.3).
* ``independent_log_ratio`` (eq. 4), ``joint_log_ratio`` (eq. 7, Algorithm 1), ``clipped_surrogate``
  (eq. 3 / 4 / 7) and ``clip_fraction``: the ratios the PPO losses clip, and how often the clip binds.

Layout and notation as in :mod:`trustmarl.trust_region`.
"""

from __future__ import annotations

import chex
import jax.numpy as jnp

from trustmarl.trust_region._checks import _assert_min_rank, _bool_mask, _check_positive

CLIP_KINDS = ("symmetric", "multiplicative")


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

"""Critic losses, value normalisation and masked statistics: small pure functions, written for one entry.

(The advantage estimators are the advantage seam, :mod:`trustmarl.seams.advantages`.)

Shapes follow the trainer's layout ``[T, E, A]``; every function here is elementwise over the trailing
axes, so batch axes come for free.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


def huber(error: jax.Array, delta: float) -> jax.Array:
    """``e²/2`` if ``|e| ≤ δ`` else ``δ(|e| − δ/2)``; ``delta == 0`` gives the plain ``e²/2``."""
    if delta <= 0:
        return 0.5 * jnp.square(error)
    a = jnp.abs(error)
    return jnp.where(a <= delta, 0.5 * jnp.square(error), delta * (a - 0.5 * delta))


def value_loss(value: jax.Array, old_value: jax.Array, target: jax.Array, clip_eps: float | None,
               huber_delta: float) -> jax.Array:
    """Per-entry critic loss, PPO/MAPPO style (Yu et al. 2022, MAPPO §3 and Appendix).

    ``V_clip = V_old + clip(V − V_old, −ε, ε)``; ``loss = max(ℓ(R − V), ℓ(R − V_clip))`` with ℓ the Huber
    loss (``huber_delta > 0``) or ``e²/2``. ``clip_eps=None`` disables clipping (``loss = ℓ(R − V)``).
    """
    loss = huber(target - value, huber_delta)
    if clip_eps is None:
        return loss
    clipped = old_value + jnp.clip(value - old_value, -clip_eps, clip_eps)
    return jnp.maximum(loss, huber(target - clipped, huber_delta))


class ValueNormState(NamedTuple):
    """Running statistics of value targets (MAPPO ValueNorm, ``onpolicy/utils/valuenorm.py``)."""

    mean: jax.Array
    mean_sq: jax.Array
    debias: jax.Array


def value_norm_init() -> ValueNormState:
    return ValueNormState(jnp.zeros(()), jnp.zeros(()), jnp.zeros(()))


def value_norm_update(s: ValueNormState, x: jax.Array, beta: float, mask: jax.Array | None = None) -> ValueNormState:
    """EMA with debiasing: ``m ← βm + (1−β)·E[x]``, ``m2 ← βm2 + (1−β)·E[x²]``, ``d ← βd + (1−β)``."""
    w = jnp.ones_like(x) if mask is None else mask.astype(x.dtype)
    n = jnp.maximum(w.sum(), 1.0)
    bm = (x * w).sum() / n
    bsq = (jnp.square(x) * w).sum() / n
    return ValueNormState(beta * s.mean + (1 - beta) * bm, beta * s.mean_sq + (1 - beta) * bsq,
                          beta * s.debias + (1 - beta))


def value_norm_stats(s: ValueNormState, eps: float = 1e-5) -> tuple[jax.Array, jax.Array]:
    """Debiased ``(mean, std)``; variance clamped below at 1e-2 as in the reference."""
    d = jnp.maximum(s.debias, eps)
    mean = s.mean / d
    var = jnp.maximum(s.mean_sq / d - jnp.square(mean), 1e-2)
    return mean, jnp.sqrt(var)


def normalize(s: ValueNormState, x):
    mean, std = value_norm_stats(s)
    return (x - mean) / std


def denormalize(s: ValueNormState, x):
    mean, std = value_norm_stats(s)
    return x * std + mean


def masked_mean(x: jax.Array, mask: jax.Array) -> jax.Array:
    mask = jnp.broadcast_to(mask, x.shape).astype(x.dtype)
    return (x * mask).sum() / jnp.maximum(mask.sum(), 1.0)


def normalize_advantages(adv: jax.Array, mask: jax.Array, eps: float = 1e-8) -> jax.Array:
    """``(A − mean)/(std + eps)`` with mean and std over the entries where ``mask`` holds (active agents)."""
    m = masked_mean(adv, mask)
    var = masked_mean(jnp.square(adv - m), mask)
    return (adv - m) / (jnp.sqrt(var) + eps)


def explained_variance(pred: jax.Array, target: jax.Array, mask: jax.Array) -> jax.Array:
    """``1 − Var[target − pred] / Var[target]`` over masked entries (NaN when the target is constant)."""
    m_t = masked_mean(target, mask)
    var_t = masked_mean(jnp.square(target - m_t), mask)
    res = target - pred
    var_r = masked_mean(jnp.square(res - masked_mean(res, mask)), mask)
    return jnp.where(var_t > 1e-12, 1.0 - var_r / jnp.maximum(var_t, 1e-12), jnp.nan)

"""Seam 3: the surrogate and its clipping, as a policy objective per ratio kind.

An objective maps :class:`ObjectiveInputs` (log-probs, advantages, masks, the per-sample factor of a
sequential update order and the clip bounds) to ``(pg_loss, clipped)``: the scalar loss to minimise and a
``[..., A]`` flag of entries whose gradient the clip removed (the clip fraction's numerator). The bounds
come from :func:`trustmarl.trust_region.clip_bounds` (``[1−ε, 1+ε]`` or Theorem 5.3's ``[1/(1+ε), 1+ε]``).

``OBJECTIVES`` is keyed by the ratio kind (``Config.ratio``): ``independent`` here; ``joint`` is
registered by :mod:`trustmarl.algos.jrppo`, whose math it is.
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp

from trustmarl.trust_region import clipped_surrogate


class ObjectiveInputs(NamedTuple):
    """What a policy objective reads; agent fields ``[..., A]``, joint fields ``[...]``.

    ``mask`` marks the entries whose surrogate is optimised in this step (active agents of the group being
    updated); ``mask_all`` the active entries of every agent, which set the normaliser, so that a group's
    loss is its share of the simultaneous loss (None: the same as ``mask``).
    """

    logp: jax.Array  # log π̃_i(a_i|o_i) under the parameters being optimised
    logp_old: jax.Array  # behaviour log-prob
    adv: jax.Array  # per-agent advantage (normalised)
    adv_joint: jax.Array  # [...] centralised advantage of the joint step
    mask: jax.Array  # bool, entries optimised in this step
    factor: jax.Array  # [..., A] weight on the surrogate: HAPPO's preceding-agents product M, 1 otherwise
    low: jax.Array  # clip bounds on the ratio
    high: jax.Array
    inner: Optional[jax.Array] = None  # [..., A] factor inside the ratio, clipped with it (A2PO/B2MAPO's g)
    mask_all: Optional[jax.Array] = None  # bool, every active entry (the normaliser); None: ``mask``


def masked_share(x: jax.Array, mask: jax.Array, mask_all: Optional[jax.Array]) -> jax.Array:
    """``Σ x·mask / max(Σ mask_all, 1)``: the masked entries' share of the mean over ``mask_all``."""
    mask_all = mask if mask_all is None else mask_all
    m = jnp.broadcast_to(mask, x.shape).astype(x.dtype)
    n = jnp.broadcast_to(mask_all, x.shape).astype(x.dtype).sum()
    return (x * m).sum() / jnp.maximum(n, 1.0)


def clipped_flags(ratio: jax.Array, adv: jax.Array, low, high) -> jax.Array:
    """Where ``min(r·Â, clip(r)·Â)`` takes the clipped branch with zero gradient: ``Â > 0, r > 1+ε`` or
    ``Â < 0, r < 1−ε``."""
    return ((adv > 0) & (ratio > high)) | ((adv < 0) & (ratio < low))


def independent_objective(x: ObjectiveInputs) -> tuple[jax.Array, jax.Array]:
    """IPPO/MAPPO (Sun et al. eq. 4), with the two factors a sequential update order may bring::

        L = −E_{i}[ M_i · min(l_i Â_i, clip(l_i, low, high) Â_i) ],   l_i = r_i · g_i,   r_i = exp(log π̃_i − log π_i)

    ``M`` (``factor``) is HAPPO's product of the preceding agents' ratios, a weight outside the ``min``
    (Kuba et al. 2022 eq. 11; since ``M > 0`` it factors out); ``g`` (``inner``) is A2PO's / B2MAPO's clipped
    joint ratio of the preceding agents inside the clipped ratio (B2MAPO eqs. 10–12). Both are 1 in the
    simultaneous order, which gives PPO's clipped surrogate for each agent. The mean runs over ``mask``'s
    entries, normalised by ``mask_all``'s count.
    """
    ratio = jnp.exp(x.logp - x.logp_old)
    if x.inner is not None:
        ratio = ratio * x.inner
    surr = x.factor * clipped_surrogate(ratio, x.adv, x.low, x.high)
    return -masked_share(surr, x.mask, x.mask_all), clipped_flags(ratio, x.adv, x.low, x.high)


OBJECTIVES: dict[str, Callable[[ObjectiveInputs], tuple[jax.Array, jax.Array]]] = {
    "independent": independent_objective,
}


def register_objective(ratio_kind: str, fn: Callable) -> None:
    """Add a policy objective for ``Config.ratio == ratio_kind`` (an algorithm module calls this)."""
    OBJECTIVES[ratio_kind] = fn

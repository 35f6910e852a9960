"""Seam 3: the surrogate and its clipping, as a policy objective per ratio kind.

An objective maps :class:`ObjectiveInputs` (log-probs, advantages, masks, the per-sample factor of a
sequential update order and the clip bounds) to ``(pg_loss, clipped)``: the scalar loss to minimise and a
``[..., A]`` flag of entries whose gradient the clip removed (the clip fraction's numerator). The bounds
come from :func:`trustmarl.trust_region.clip_bounds` (``[1−ε, 1+ε]`` or Theorem 5.3's ``[1/(1+ε), 1+ε]``).

``OBJECTIVES`` is keyed by the ratio kind (``Config.ratio``): ``independent`` here; ``joint`` is
registered by :mod:`trustmarl.algos.jrppo`, whose math it is.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from trustmarl.losses import masked_mean
from trustmarl.trust_region import clipped_surrogate


class ObjectiveInputs(NamedTuple):
    """What a policy objective reads; agent fields ``[..., A]``, joint fields ``[...]``."""

    logp: jax.Array  # log π̃_i(a_i|o_i) under the parameters being optimised
    logp_old: jax.Array  # behaviour log-prob
    adv: jax.Array  # per-agent advantage (normalised)
    adv_joint: jax.Array  # [...] centralised advantage of the joint step
    mask: jax.Array  # bool, entries that count (active agents)
    factor: jax.Array  # [..., A] weight on the surrogate: preceding agents' ratio product, 1 when simultaneous
    low: jax.Array  # clip bounds on the ratio
    high: jax.Array


def clipped_flags(ratio: jax.Array, adv: jax.Array, low, high) -> jax.Array:
    """Where ``min(r·Â, clip(r)·Â)`` takes the clipped branch with zero gradient: ``Â > 0, r > 1+ε`` or
    ``Â < 0, r < 1−ε``."""
    return ((adv > 0) & (ratio > high)) | ((adv < 0) & (ratio < low))


def independent_objective(x: ObjectiveInputs) -> tuple[jax.Array, jax.Array]:
    """IPPO/MAPPO (Sun et al. eq. 4), weighted per sample by the update order's factor ``M`` (HAPPO eq. 11)::

        L = −E_{i active}[ M_i · min(r_i Â_i, clip(r_i, low, high) Â_i) ],   r_i = exp(log π̃_i − log π_i)

    ``M ≡ 1`` gives PPO's clipped surrogate for each agent. Since ``M > 0`` it factors out of the ``min``.
    """
    ratio = jnp.exp(x.logp - x.logp_old)
    surr = x.factor * clipped_surrogate(ratio, x.adv, x.low, x.high)
    return -masked_mean(surr, x.mask), clipped_flags(ratio, x.adv, x.low, x.high)


OBJECTIVES: dict[str, Callable[[ObjectiveInputs], tuple[jax.Array, jax.Array]]] = {
    "independent": independent_objective,
}


def register_objective(ratio_kind: str, fn: Callable) -> None:
    """Add a policy objective for ``Config.ratio == ratio_kind`` (an algorithm module calls this)."""
    OBJECTIVES[ratio_kind] = fn

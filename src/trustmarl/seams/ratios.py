"""Seam 2: the probability ratio. Agents on the last axis, any leading batch axes.

* ``independent`` — one ratio per agent, ``r_i = π̃_i(a_i|o_i)/π_i(a_i|o_i)`` (Sun et al. eq. 4; IPPO/MAPPO);
* ``joint`` — the product over agents, ``r = Π_i r_i`` (Sun et al. eq. 7 and Algorithm 1; JR-PPO);
* :func:`preceding_factor` — for sequential update orders, the product of the ratios of the agents
  already updated in this iteration, which multiplies the next agent's surrogate (HAPPO's ``M``,
  Kuba et al. 2022 eq. 11; 1 for the simultaneous order).

The log-ratio functions themselves live with the other trust-region quantities in
:mod:`trustmarl.trust_region` (they are also what the measurements use); this module names the choices.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from trustmarl.trust_region import independent_log_ratio, joint_log_ratio

RATIOS = {"independent": independent_log_ratio, "joint": joint_log_ratio}


def preceding_factor(log_ratio: jax.Array, updated: jax.Array, mask: jax.Array) -> jax.Array:
    """``M = Π_{i: updated_i} r_i = exp(Σ_i updated_i · m_i · log r_i)`` per sample.

    ``log_ratio`` ``[..., A]`` new-vs-behaviour log-ratios of every agent, ``updated`` ``[A]`` bool (the agents
    that precede the one about to be updated), ``mask`` ``[..., A]`` active entries (an inactive agent's
    ratio counts as 1). Returns ``[...]``, under ``stop_gradient``: the factor weights the next agent's
    surrogate and is not itself optimised (HAPPO, Kuba et al. 2022, Algorithm 1).
    """
    w = (updated.astype(log_ratio.dtype) * mask.astype(log_ratio.dtype))
    return jax.lax.stop_gradient(jnp.exp(jnp.sum(w * log_ratio, axis=-1)))

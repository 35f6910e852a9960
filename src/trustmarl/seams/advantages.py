"""Seam 1: the advantage estimator. Layout ``[T, ...]`` (time first; env and agent axes trail)."""
from __future__ import annotations

from typing import Callable

import chex
import jax
import jax.numpy as jnp


def gae(rewards: jax.Array, values: jax.Array, next_values: jax.Array, terminated: jax.Array,
        episode_end: jax.Array, gamma: float, lam: float) -> tuple[jax.Array, jax.Array]:
    """Generalised advantage estimation (Schulman et al. 2016, eq. 16) with truncation-aware bootstrapping.

    For t = T-1 … 0::

        δ_t = r_t + γ · (1 − term_t) · V'_t − V_t
        Â_t = δ_t + γλ · (1 − end_t) · Â_{t+1},      Â_T = 0

    ``V'_t`` is the value of the state reached by step t: ``V_{t+1}`` inside an episode, the value of the
    pre-reset final state at a time-limit truncation; it is multiplied out at a termination.
    ``end_t`` (termination or truncation) stops the recursion at episode boundaries.

    Args: ``rewards, values, next_values`` [T, ...]; ``terminated, episode_end`` [T, ...] (broadcastable).
    Returns ``(advantages, returns)`` with ``returns = advantages + values`` (the λ-return).
    """
    chex.assert_equal_shape([rewards, values, next_values])
    term = jnp.broadcast_to(terminated, rewards.shape).astype(rewards.dtype)
    end = jnp.broadcast_to(episode_end, rewards.shape).astype(rewards.dtype)
    deltas = rewards + gamma * (1.0 - term) * next_values - values

    def step(carry, x):
        delta, e = x
        carry = delta + gamma * lam * (1.0 - e) * carry
        return carry, carry

    _, adv = jax.lax.scan(step, jnp.zeros_like(rewards[0]), (deltas, end), reverse=True, unroll=16)
    return adv, adv + values


def team_advantage(adv: jax.Array, mask: jax.Array) -> jax.Array:
    """Centralised advantage of one joint step: ``Â = Σ_i m_i Â_i / max(Σ_i m_i, 1)`` over the agent axis
    (last), the mean over active agents of the per-agent advantages (JR-PPO's ``Â`` in Sun et al.
    Algorithm 1; with a shared team reward and per-agent global state the terms coincide up to critic
    error). ``adv``, ``mask`` ``[..., A]`` → ``[...]``."""
    m = mask.astype(adv.dtype)
    return (adv * m).sum(-1) / jnp.maximum(m.sum(-1), 1.0)


def trace_corrected_gae(deltas: jax.Array, episode_end: jax.Array, trace: jax.Array, gamma: float, lam: float,
                        lambda_twice: bool = False) -> jax.Array:
    """Off-policy-corrected advantage of a sequential update (B2MAPO eq. 1; A2PO's "GAE-trace")::

        Â_t = δ_t + Σ_{n≥1} γ^n (Π_{j=1..n} λ · c_{t+j}) δ_{t+n},    c_t = min(1, ρ_t)

    i.e. ``Â_t = δ_t + γ λ c_{t+1} (1 − end_t) Â_{t+1}``, where ``ρ_t`` is the joint ratio (current over
    behaviour policy) of the agents already updated in this iteration and ``c`` its truncation (``trace``
    holds ``c``). With nobody updated, ``c ≡ 1`` and this is GAE. ``lambda_twice``: A2PO's reference code
    multiplies by ``(γλ)^{l−t}`` *and* by ``Π λ·min(ρ, 1)``, so λ enters twice per step
    (``Â_t = δ_t + γ λ² c_{t+1} (1 − end_t) Â_{t+1}``); trustmarl follows eq. 1 by default and offers the
    reference's reading as this option.

    Args: ``deltas`` [T, ...] TD errors ``r + γ(1 − term)V' − V``; ``episode_end`` [T, ...] broadcastable;
    ``trace`` [T, ...] broadcastable, the truncated weights ``c_t``. Returns ``Â`` [T, ...].
    """
    end = jnp.broadcast_to(episode_end, deltas.shape).astype(deltas.dtype)
    c = jnp.broadcast_to(trace, deltas.shape).astype(deltas.dtype)
    # the weight on Â_{t+1} uses c_{t+1}: shift the trace one step back (the last step has no successor)
    c_next = jnp.concatenate([c[1:], jnp.ones_like(c[:1])], axis=0)
    decay = gamma * lam * (lam if lambda_twice else 1.0)

    def step(carry, x):
        delta, e, cn = x
        carry = delta + decay * cn * (1.0 - e) * carry
        return carry, carry

    _, adv = jax.lax.scan(step, jnp.zeros_like(deltas[0]), (deltas, end, c_next), reverse=True, unroll=16)
    return adv


ADVANTAGES: dict[str, Callable] = {"gae": gae}

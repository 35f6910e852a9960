"""The pure math of the off-policy family (no networks, no state): each function carries its formula.

Layout ``[..., A, ...]``; ``U`` actions. Every function here is tested on hand-computed numbers
(tests/test_off_policy.py), jitted and not.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from trustmarl.offpolicy.networks import NEG_INF


def masked_logits(logits: jax.Array, avail: jax.Array) -> jax.Array:
    """Unavailable actions get logit ``NEG_INF`` (probability 0, finite log)."""
    return jnp.where(avail, logits, NEG_INF)


def gumbel_softmax(logits: jax.Array, key: jax.Array, temperature: float = 1.0, hard: bool = True) -> jax.Array:
    """Gumbel-softmax (Jang et al. 2017): ``y = softmax((z + g)/τ)``, ``g = −log(−log u)``, ``u ~ U(0, 1)``.

    ``hard``: the straight-through estimator ``y_hard + y − stop_gradient(y)``: the forward value is the one-hot
    of ``argmax(z + g)`` (an exact sample of ``softmax(z)``), the gradient is the relaxed sample's (MADDPG's
    discrete actor step as maddpg-pytorch does it).
    """
    g = jax.random.gumbel(key, logits.shape, logits.dtype)
    y = jax.nn.softmax((logits + g) / temperature, axis=-1)
    if not hard:
        return y
    y_hard = jax.nn.one_hot(jnp.argmax(y, axis=-1), logits.shape[-1], dtype=y.dtype)
    return y_hard + y - jax.lax.stop_gradient(y)


def soft_update(target, online, tau: float):
    """Polyak averaging of target networks: ``θ̄ ← (1 − τ)·θ̄ + τ·θ`` (leaf by leaf)."""
    return jax.tree.map(lambda t, o: (1.0 - tau) * t + tau * o, target, online)


def counterfactual_baseline(q_all: jax.Array, probs: jax.Array) -> jax.Array:
    """COMA/MAAC's counterfactual baseline ``b_i(o, a_{−i}) = Σ_u π_i(u|o_i) · Q_i(o, (u, a_{−i}))``:
    ``q_all`` and ``probs`` ``[..., A, U]`` → ``[..., A]``."""
    return jnp.sum(q_all * probs, axis=-1)


def categorical_kl(p_logits: jax.Array, q_logits: jax.Array) -> jax.Array:
    """``KL[p‖q] = Σ_u p(u)(log p(u) − log q(u))`` from (masked) logits, over the last axis."""
    logp = jax.nn.log_softmax(p_logits, axis=-1)
    logq = jax.nn.log_softmax(q_logits, axis=-1)
    return jnp.sum(jnp.exp(logp) * (logp - logq), axis=-1)


def off_diagonal(num_agents: int) -> jax.Array:
    """``[A, A]`` bool, true where ``i ≠ j``."""
    return ~jnp.eye(num_agents, dtype=bool)


def coordination_coefficients(q_joint: jax.Array, q_without: jax.Array, sigma: float,
                              mask: jax.Array | None = None) -> jax.Array:
    """Li et al. eq. 5: ``Ĉ_ij = softmax_{j≠i}(|Q_i(a_{\\j}) − Q_i(a)|)``, ``C_ij = 1[Ĉ_ij ≥ σ]·Ĉ_ij``.

    ``q_joint`` ``[..., A]`` is ``Q_i(o, a)``; ``q_without`` ``[..., A(i), A(j)]`` is ``Q_i`` with agent ``j``'s
    action left out of the joint action. The softmax runs over the other agents ``j ≠ i`` (and over ``mask``
    ``[..., A(i), A(j)]`` when given: e.g. the other *active* agents); ``C_ii = 0``. → ``[..., A, A]``.
    """
    A = q_joint.shape[-1]
    allowed = off_diagonal(A) if mask is None else mask & off_diagonal(A)
    gap = jnp.abs(q_without - q_joint[..., :, None])
    c_hat = jax.nn.softmax(jnp.where(allowed, gap, NEG_INF), axis=-1)
    c_hat = jnp.where(allowed, c_hat, 0.0)
    return jnp.where(c_hat >= sigma, c_hat, 0.0)


def nonstationarity(coord: jax.Array, pred_logits: jax.Array, policy_logits: jax.Array, clip: float,
                    kl=None) -> jax.Array:
    """Li et al. eq. 6: ``D_i,ns = Π_ns(Σ_{j≠i} C_ij · KL[h_{φ_i^j}(o_i) ‖ π_{ψ_j}(o_j)])``.

    ``coord`` ``[..., A, A]`` (``C_ii = 0``), ``pred_logits`` ``[..., A(i), A(j), U]`` (agent ``i``'s prediction of
    ``j``), ``policy_logits`` ``[..., A, U]`` (masked). ``Π_ns`` is the projection onto ``[0, clip]``.
    ``kl``: the KL of two policy outputs (default :func:`categorical_kl`; an action head's ``kl`` for
    continuous policies). → ``[..., A]``.
    """
    kl = (kl or categorical_kl)(pred_logits, policy_logits[..., None, :, :])  # [..., A(i), A(j)]
    return jnp.clip(jnp.sum(coord * kl, axis=-1), 0.0, clip)


def weighted_policy_divergence(coord: jax.Array, old_logits: jax.Array, logits: jax.Array, clip: float,
                               kl=None) -> jax.Array:
    """MAMT-WS's replacement of eq. 6 (Li et al. App. H): ``D_i = Π_ns(1/n · Σ_{j≠i} C_ij KL[π'_j(o_j) ‖ π_j(o_j)])``
    with ``π'`` the old policy copy, so that ``Σ_i D_i`` is the paper's weighted sum; ``kl`` as in
    :func:`nonstationarity`. → ``[..., A]``."""
    n = coord.shape[-1]
    kl = (kl or categorical_kl)(old_logits, logits)  # [..., A(j)]
    return jnp.clip(jnp.sum(coord * kl[..., None, :], axis=-1) / n, 0.0, clip)


def fixed_coordination(num_agents: int) -> jax.Array:
    """MAMT-Fixed: ``C_ij = 1/(n − 1)`` for ``j ≠ i`` (0 on the diagonal; all zero when ``n = 1``)."""
    return off_diagonal(num_agents) / max(num_agents - 1, 1)


def random_coordination(key: jax.Array, lead: tuple, num_agents: int) -> jax.Array:
    """MAMT-Random: ``C_i· = softmax_{j≠i}(u_ij)``, ``u_ij ~ U(0, 1)``."""
    u = jax.random.uniform(key, lead + (num_agents, num_agents))
    allowed = off_diagonal(num_agents)
    return jnp.where(allowed, jax.nn.softmax(jnp.where(allowed, u, NEG_INF), axis=-1), 0.0)


def split_budget(rho: jax.Array, total: float, low: float) -> jax.Array:
    """Local trust regions from MAMT's free parameters: ``δ̃_i = softplus(ρ_i)``, floored at ``low``, then scaled
    onto the budget when it is exceeded, ``δ_i = δ̃_i · min(1, δ/Σ_j δ̃_j)``: eq. 3's ``Σ_i δ_i ≤ δ`` and
    ``0 < δ_i ≤ δ`` hold exactly (the floor can only be crossed when ``n·low > δ``)."""
    d = jnp.maximum(jax.nn.softplus(rho), low)
    return d * jnp.minimum(1.0, total / jnp.sum(d))


def budget_penalty(rho: jax.Array, total: float) -> jax.Array:
    """The regulariser of eq. 8's δ-step, ``ReLU(Σ_i δ̃_i − δ)`` on the unscaled ``δ̃_i = softplus(ρ_i)``."""
    return jax.nn.relu(jnp.sum(jax.nn.softplus(rho)) - total)


def inverse_softplus(x: float) -> float:
    """``ρ`` with ``softplus(ρ) = x`` (``x > 0``)."""
    import math
    return float(x + math.log(-math.expm1(-x)))


class RewardStats(NamedTuple):
    """Running per-agent reward mean and variance (Chan et al.'s parallel merge of Welford's sums)."""

    count: jax.Array  # [] float32
    mean: jax.Array  # [A]
    m2: jax.Array  # [A] sum of squared deviations


def reward_stats_init(num_agents: int) -> RewardStats:
    return RewardStats(jnp.zeros(()), jnp.zeros((num_agents,)), jnp.zeros((num_agents,)))


def reward_stats_update(s: RewardStats, rewards: jax.Array) -> RewardStats:
    """Merge a batch ``rewards`` ``[..., A]`` into the running statistics."""
    r = rewards.reshape((-1, rewards.shape[-1]))
    n_b = jnp.asarray(r.shape[0], jnp.float32)
    mean_b = r.mean(0)
    m2_b = jnp.sum((r - mean_b) ** 2, 0)
    n = s.count + n_b
    delta = mean_b - s.mean
    return RewardStats(n, s.mean + delta * n_b / n, s.m2 + m2_b + delta ** 2 * s.count * n_b / n)


def normalise_rewards(s: RewardStats, rewards: jax.Array) -> jax.Array:
    """MAAC's per-agent reward normalisation, ``(r_i − mean_i)/std_i`` over every reward stored so far (MAAC
    uses the filled part of the buffer; the two agree until the buffer wraps). A zero std leaves ``r − mean``."""
    std = jnp.sqrt(s.m2 / jnp.maximum(s.count, 1.0))
    return (rewards - s.mean) / jnp.where(std > 0, std, 1.0)

"""Networks of the off-policy family, layout ``[..., A, feature]`` (agent axis second to last).

* :class:`AgentDense` / :class:`AgentMLP` — one dense layer (an MLP) per agent, stored as one stacked kernel
  ``[S, in, out]`` with ``S = A`` (per-agent parameters) or ``S = 1`` (shared): a per-agent stack is a single
  ``einsum``, not ``A`` separate calls.
* :class:`MLPCritic` — MADDPG's centralised critic ``Q_i(o_1..o_N, a_1..a_N)`` on the concatenation of every
  observation and every (one-hot or relaxed) action (Lowe et al. 2017), one per agent.
* :class:`AttentionCritic` — MAAC's attention critic (Iqbal & Sha 2019, §3.2): ``Q_i(o, a_{−i}, ·)`` for every
  own action from the agent's own encoding and the attention-weighted values of the other agents.
* :class:`OpponentModel` — MAMT's action-prediction models ``h_{φ_i^j}(o_i)`` (Li et al., eq. 6).
* :class:`TRDNet` — MAMT's trust-region decomposition network (Li et al., Figure 1): message passing over the
  coordination graph, output ``KL̂_i(o, a, δ) ≥ 0`` per agent.
"""
from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from trustmarl.networks import ACTIVATIONS

NEG_INF = -1e9  # masked logit: exp underflows to 0 while 0·NEG_INF stays finite (no NaN in entropies)


def leaky_relu(x):
    """MAAC's nonlinearity (PyTorch's default slope 0.01)."""
    return jax.nn.leaky_relu(x, 0.01)


class AgentDense(nn.Module):
    """``y[..., a, :] = x[..., a, :] @ W_a + b_a`` with ``W`` ``[stacks, in, out]``; ``stacks = 1`` shares one
    layer among the agents (broadcast), ``stacks = A`` gives each agent its own."""

    features: int
    stacks: int

    @nn.compact
    def __call__(self, x):
        init = nn.initializers.variance_scaling(1.0, "fan_in", "truncated_normal", in_axis=-2, out_axis=-1,
                                                batch_axis=(0,))
        w = self.param("kernel", init, (self.stacks, x.shape[-1], self.features))
        b = self.param("bias", nn.initializers.zeros, (self.stacks, self.features))
        if self.stacks == 1:
            return x @ w[0] + b[0]
        return jnp.einsum("...ai,aio->...ao", x, w) + b


class AgentMLP(nn.Module):
    """``len(hidden)`` :class:`AgentDense` layers with ``activation`` then a linear output layer."""

    hidden: Sequence[int]
    out: int
    stacks: int
    activation: str = "relu"

    @nn.compact
    def __call__(self, x):
        act = leaky_relu if self.activation == "leaky_relu" else ACTIVATIONS[self.activation]
        for width in self.hidden:
            x = act(AgentDense(width, self.stacks)(x))
        return AgentDense(self.out, self.stacks)(x)


class MLPCritic(nn.Module):
    """MADDPG's critic: ``Q_i = MLP_i(o_1 ⊕ … ⊕ o_N ⊕ a_1 ⊕ … ⊕ a_N)``.

    ``obs`` ``[..., A, O]``; ``acts`` ``[..., A(i), A(j), U]``: the joint action critic ``i`` is evaluated at
    (row ``i``; MADDPG's actor step changes only agent ``i``'s own entry of row ``i``). Returns ``[..., A]``.
    """

    hidden: Sequence[int]
    stacks: int
    activation: str = "relu"

    @nn.compact
    def __call__(self, obs, acts):
        A = obs.shape[-2]
        flat_obs = obs.reshape(obs.shape[:-2] + (-1,))
        x = jnp.concatenate([jnp.broadcast_to(flat_obs[..., None, :], obs.shape[:-2] + (A, flat_obs.shape[-1])),
                             acts.reshape(acts.shape[:-2] + (-1,))], axis=-1)
        return AgentMLP(self.hidden, 1, self.stacks, self.activation)(x)[..., 0]


class AttentionCritic(nn.Module):
    """MAAC's attention critic (Iqbal & Sha 2019, eqs. 5-6; reference code shariqiqbal2810/MAAC).

    Per agent ``e_i = g_i(o_i, a_i)`` (state-action encoder) and ``s_i = f_i(o_i)`` (state encoder); per head
    ``h`` shared extractors give key ``K_h e_j``, selector ``S_h s_i`` and value ``LeakyReLU(V_h e_j)``;

        x_i = ⊕_h Σ_{j ∈ M_i} softmax_j((S_h s_i)ᵀ(K_h e_j)/√d) · LeakyReLU(V_h e_j)
        Q_i(o, a_{−i}, ·) = FC2_i(LeakyReLU(FC1_i(s_i ⊕ x_i)))  ∈ ℝ^U

    where ``M_i`` (``attend`` ``[..., A(i), A(j)]`` bool) is the set of agents ``i`` attends to: the other
    active agents. A row with nobody to attend to gets ``x_i = 0``. Returns ``(q_all [..., A, U], logits
    [..., heads, A, A])``, the attention logits zeroed where masked (MAAC regularises their square).
    MAAC's input BatchNorm is left out (trustmarl's networks do not normalise inputs by batch statistics).

    ``own_action`` (continuous actions, where no head can list every own action): the output layer reads the
    agent's state-action encoding instead, ``Q_i(o, a) = FC2_i(LeakyReLU(FC1_i(e_i ⊕ x_i)))`` ∈ ℝ (construct
    with ``num_actions = 1``); the attention is unchanged.
    """

    num_actions: int
    hidden: int
    heads: int
    stacks: int
    own_action: bool = False

    @nn.compact
    def __call__(self, obs, act, attend):
        H, K = self.hidden, self.heads
        d = H // K
        sa = leaky_relu(AgentDense(H, self.stacks, name="sa_encoder")(jnp.concatenate([obs, act], -1)))
        s = leaky_relu(AgentDense(H, self.stacks, name="s_encoder")(obs))
        split = lambda x: x.reshape(x.shape[:-1] + (K, d))  # noqa: E731
        keys = split(nn.Dense(H, use_bias=False, name="attend_key")(sa))
        sel = split(nn.Dense(H, use_bias=False, name="attend_selector")(s))
        vals = split(leaky_relu(nn.Dense(H, use_bias=False, name="attend_value")(sa)))
        logits = jnp.einsum("...ihd,...jhd->...hij", sel, keys) / math.sqrt(d)
        mask = attend[..., None, :, :]
        w = jax.nn.softmax(jnp.where(mask, logits, NEG_INF), axis=-1)
        w = jnp.where(mask, w, 0.0)  # a row with nobody to attend to: zero weights, not uniform ones
        x = jnp.einsum("...hij,...jhd->...ihd", w, vals).reshape(s.shape)
        h = leaky_relu(AgentDense(H, self.stacks, name="critic_fc1")(jnp.concatenate([sa if self.own_action else s,
                                                                                     x], -1)))
        q = AgentDense(self.num_actions, self.stacks, name="critic_fc2")(h)
        return q, jnp.where(mask, logits, 0.0)


class OpponentModel(nn.Module):
    """MAMT's action-prediction models: agent ``i`` predicts every agent ``j``'s action distribution from its
    own observation, ``h_{φ_i^j}(o_i)``; one network per ``i`` with ``A·U`` outputs. Returns logits
    ``[..., A(i), A(j), U]`` (the ``j = i`` row is unused)."""

    hidden: Sequence[int]
    num_agents: int
    num_actions: int
    stacks: int
    activation: str = "relu"

    @nn.compact
    def __call__(self, obs):
        out = AgentMLP(self.hidden, self.num_agents * self.num_actions, self.stacks, self.activation)(obs)
        return out.reshape(out.shape[:-1] + (self.num_agents, self.num_actions))


class TRDNet(nn.Module):
    """MAMT's trust-region decomposition network (Li et al., Figure 1), shared by all agents.

    Input layer ``e_i = ReLU(W[enc(o_i, a_i) ⊕ enc(log δ_i)])``; ``layers`` message-passing (GNN) layers over
    the coordination graph weighted by ``C`` (eq. 5), ``e_i ← ReLU(W_s e_i + W_m Σ_j C_ij e_j)``; prediction
    layer: ``KL̂_i = softplus(MLP(e_i ⊕ Σ_j C_ij e_j))`` (the agent's own embedding beside the other agents'
    aggregated one). ``obs`` ``[..., A, O]``, ``act`` ``[..., A, U]``, ``delta`` ``[A]`` or ``[..., A]``,
    ``coord`` ``[..., A, A]`` → ``[..., A]``.
    """

    hidden: int
    layers: int = 1

    @nn.compact
    def __call__(self, obs, act, delta, coord):
        H = self.hidden
        enc = nn.relu(nn.Dense(H, name="obs_act_encoder")(jnp.concatenate([obs, act], -1)))
        log_delta = jnp.broadcast_to(jnp.log(delta), obs.shape[:-1])[..., None]
        denc = nn.relu(nn.Dense(H // 2, name="delta_encoder")(log_delta))
        e = nn.relu(nn.Dense(H, name="input_layer")(jnp.concatenate([enc, denc], -1)))
        for k in range(self.layers):
            msg = jnp.einsum("...ij,...jh->...ih", coord, e)
            e = nn.relu(nn.Dense(H, name=f"mp_self_{k}")(e) + nn.Dense(H, use_bias=False, name=f"mp_msg_{k}")(msg))
        other = jnp.einsum("...ij,...jh->...ih", coord, e)
        h = nn.relu(nn.Dense(H, name="kl_encoder_0")(jnp.concatenate([e, other], -1)))
        return jax.nn.softplus(nn.Dense(1, name="kl_encoder_1")(h))[..., 0]

"""LOLA-DQN: independent DQN learners with LOLA's opponent-shaping correction (Foerster et al. 2018), the
baseline Li et al. (MAMT paper) compare on Spread only ("We combine LOLA with DQN to solve more complex
stochastic game", §4 footnote; settings: Table 7).

Per agent a Q-network over its own actions, ``Q_i(o_i, ·; θ_i)``, and a Boltzmann policy over it,
``π_i(u|o_i) = softmax_u(Q_i(o_i, u)/T)``. The network outputs ``z_i = Q_i/T`` (the trainer's policy logits),
so the trainer's behaviour policy (a sample of ``softmax(z)``) is the Boltzmann exploration and its greedy
evaluation (``argmax z``) is DQN's greedy policy. Per gradient step, on a replayed batch:

* **DQN** (the naive learner): ``y^Q_i = r_i + γ(1 − d)·max_u Q̄_i(o'_i, u)`` with the target network ``Q̄``,
  loss ``Σ_i E[(Q_i(o_i, a_i) − y^Q_i)²]`` over active entries.
* **Centralised values for the lookahead** (the critic, ``mlp``): ``Q^c_i(o, a_1..a_N)`` (MADDPG's
  concatenation critic) fitted by the trainer's critic step to ``y_i = r_i + γ(1 − d)·Q̄^c_i(o', a')``,
  ``a' ~ π̄(o')`` the target networks' Boltzmann policies: the value of the joint Boltzmann policy. Then

      V^k(θ) = E_o[ Σ_{a ∈ U^N} Π_j π_j(a_j|o_j; θ_j) · Q^c_k(o, a) ]        (critic held fixed)

  is each agent's return as a differentiable function of every agent's parameters, summed exactly over the
  ``U^N`` joint actions (25 on Spread-2).
* **LOLA's correction** (Foerster et al. §3.2; n-player form, a sum over opponents): agent ``i`` assumes
  every opponent ``j`` takes a naive gradient step ``Δθ_j = η∇_{θ_j}V^j`` and differentiates its own value
  through it to first order, ``V^i(θ_i, θ_j + Δθ_j) ≈ V^i + (Δθ_j)ᵀ∇_{θ_j}V^i``. Dropping the dependence of
  ``∇_{θ_j}V^i`` on ``θ_i`` (LOLA §3.2) gives the shaping direction

      Δ_i = η·Σ_{j≠i} ∇_{θ_i}[ sg(∇_{θ_j}V^i) · ∇_{θ_j}V^j ]                   (:func:`lola_correction`)

  a mixed second derivative computed by double backpropagation (no Hessian is formed).

The loss the Q-networks descend is ``L = L_DQN − Σ_i η·sg(∇_{θ_j}V^i)·∇_{θ_j}V^j`` with only ``θ_i`` live in
agent ``i``'s term, so its gradient is the TD gradient minus ``Δ_i``: LOLA's ``Δθ^1 = δ∇V^1 + δη(…)``
with DQN's TD step in place of the naive first-order term.

What the paper leaves open, and the choice made (LOLA code is not linked in Li et al.):

* the differentiable policy of a DQN learner: Boltzmann over ``Q/T``, ``T = lola_temperature`` = 0.1 on
  per-agent normalised rewards (``reward_norm``); it is also the exploration (no ε-greedy);
* which value enters the lookahead: the joint Boltzmann policy's expected centralised ``Q^c`` above. A DQN
  opponent's own TD step does not depend on ``θ_i`` differentiably, so its naive step is modelled as LOLA's
  policy-gradient step on ``V^j`` (true opponent parameters, no learned opponent model; LOLA §3.2);
* the opponent's step ``η = lola_eta`` = 1 (LOLA's exact-gradient default ``lr_correction`` 1);
* target networks: Polyak ``τ = 0.01`` for the Q-networks and the critic (the family's update); plain DQN
  targets (no double or dueling variant);
* Table 7's "regularization L2, coefficient 1.0": read as in the rest of the family (Table 4's same entry):
  critic weight decay ``critic_l2`` = 1e-3 on ``Q^c``; no penalty on the Q-networks (their loss does not read
  ``policy_reg``);
* Table 7's "clip grad 10 · number of agents": 20 for Spread-2 on the Q-networks (``max_grad_norm``) and the
  critic's default ``10·n``; Adam 1e-3, ε 1e-7, γ 0.99, 12 envs, batch 1024, 4 gradient steps per iteration;
* networks: 2×64 ReLU (the paper's Fig. 11 covers MAMT only); per-agent parameters (LOLA needs ``θ_i`` apart);
* more than two agents: the sum over opponents above; the exact sum over ``U^N`` joint actions limits
  ``U^N`` to :data:`MAX_JOINT_ACTIONS`.
"""
from __future__ import annotations

import itertools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from trustmarl.algos.base import Algorithm
from trustmarl.offpolicy.rules import OffPolicyRule, register_rule

MAX_JOINT_ACTIONS = 4096  # the lookahead sums over every joint action


def _live_slice(params, i):
    """``params`` (leaves ``[A, ...]``) with only agent ``i``'s slice carrying gradients."""
    def one(p):
        live = (jnp.arange(p.shape[0]) == i).reshape((-1,) + (1,) * (p.ndim - 1))
        return jnp.where(live, p, jax.lax.stop_gradient(p))
    return jax.tree.map(one, params)


def shaping_terms(values: Callable, params) -> jax.Array:
    """``h_i = Σ_{j≠i} sg(∇_{θ_j}V^i)·∇_{θ_j}V^j`` evaluated with only ``θ_i`` live, for every ``i`` → ``[A]``.

    ``values``: stacked parameters (leaves ``[A, ...]``, slice ``j`` = ``θ_j``) → ``[A]``, ``V^k`` for every
    agent. ``∇_{θ_i} h_i`` is agent ``i``'s LOLA shaping direction divided by ``η``."""
    A = jax.tree.leaves(params)[0].shape[0]
    off = 1.0 - jnp.eye(A)

    def h(i):
        jac = jax.jacrev(values)(_live_slice(params, i))  # leaves [A(k), A(j), ...]: ∇_{θ_j} V^k

        def per_leaf(J):
            own_j = jnp.diagonal(J, axis1=0, axis2=1)  # [..., A(j)]: ∇_{θ_j}V^j
            own_j = jnp.moveaxis(own_j, -1, 0)
            dots = jnp.sum((jax.lax.stop_gradient(J[i]) * own_j).reshape(A, -1), -1)  # [A(j)]
            return jnp.sum(dots * off[i])

        return sum(per_leaf(J) for J in jax.tree.leaves(jac))

    return jax.vmap(h)(jnp.arange(A))


def lola_correction(values: Callable, params, eta: float):
    """LOLA's shaping direction for every agent (ascent direction, leaves ``[A, ...]``)::

        Δ_i = η·Σ_{j≠i} ∇_{θ_i}[ sg(∇_{θ_j}V^i) · ∇_{θ_j}V^j ]

    (Foerster et al. 2018, §3.2: the second term of ``Δθ^1 = δ∇_{θ^1}V^1 + δη(∇_{θ^2}V^1)ᵀ∇_{θ^1}∇_{θ^2}V^2``
    without ``δ``, summed over opponents)."""
    return jax.grad(lambda p: eta * jnp.sum(shaping_terms(values, p)))(params)


def joint_actions(num_agents: int, num_actions: int) -> np.ndarray:
    """Every joint action, ``[U^N, N]`` ints, agent 0 slowest."""
    if num_actions ** num_agents > MAX_JOINT_ACTIONS:
        from trustmarl.config import ConfigError
        raise ConfigError(f"algo=lola_dqn sums over every joint action: {num_actions}^{num_agents} = "
                          f"{num_actions ** num_agents} exceeds {MAX_JOINT_ACTIONS}; allowed: fewer agents or actions "
                          f"(Li et al. run it on Spread-2)")
    return np.array(list(itertools.product(range(num_actions), repeat=num_agents)), np.int32).reshape(-1, num_agents)


def boltzmann_values(log_probs: jax.Array, q_table: jax.Array, joint: jax.Array, active: jax.Array) -> jax.Array:
    """``V^k = E_o[Σ_a Π_j π_j(a_j|o_j) Q^c_k(o, a)]`` over the active entries of agent ``k``.

    ``log_probs`` ``[B, N, U]``, ``q_table`` ``[B, C, N]`` (``Q^c_k`` at joint action ``c``), ``joint``
    ``[C, N]``, ``active`` ``[B, N]`` → ``[N]``."""
    N = log_probs.shape[1]
    lp = log_probs[:, jnp.arange(N)[None, :], joint]  # [B, C, N]: log π_j(c_j|o_j)
    p = jnp.exp(jnp.sum(lp, -1))  # [B, C]
    v = jnp.einsum("bc,bck->bk", p, q_table)
    m = active.astype(v.dtype)
    return jnp.sum(v * m, 0) / jnp.maximum(m.sum(0), 1.0)


def dqn_target(trainer, target_params, b) -> jax.Array:
    """``y^Q_i = r_i + γ(1 − d)·T·max_u z̄_i(o'_i, u)``, ``z̄ = Q̄/T`` the target network's output → ``[B, A]``."""
    c = trainer.config
    nxt = trainer.logits(target_params, b.next_obs, b.next_avail)
    return b.reward + c.gamma * (1.0 - b.terminated[:, None]) * c.lola_temperature * jnp.max(nxt, -1)


def boltzmann_critic_target(trainer, learner, b, key):
    """The centralised critic's target ``y_i = r_i + γ(1 − d)·Q̄^c_i(o', a')``, ``a' ~ softmax(z̄(o'))`` → ``[B, A]``."""
    c = trainer.config
    nxt = trainer.logits(learner.target_actor, b.next_obs, b.next_avail)
    a = jnp.argmax(nxt + jax.random.gumbel(key, nxt.shape), -1)
    q_next, _ = trainer.q_taken(learner.target_critic, b.next_obs, jax.nn.one_hot(a, trainer.num_actions), b.active)
    return b.reward + c.gamma * (1.0 - b.terminated[:, None]) * q_next


def joint_q_table(trainer, critic_params, b, joint) -> jax.Array:
    """``Q^c_k(o, c)`` for every joint action ``c`` → ``[B, C, N]`` (no gradient: the critic is held fixed)."""
    B = b.obs.shape[0]
    acts = jax.nn.one_hot(joint, trainer.num_actions)  # [C, N, U]

    def at(act):
        q, _ = trainer.q_taken(critic_params, b.obs, jnp.broadcast_to(act, (B,) + act.shape), b.active)
        return q

    return jax.lax.stop_gradient(jnp.moveaxis(jax.vmap(at)(acts), 0, 1))


def lola_dqn_loss(trainer, actor_params, learner, b, key):
    """``Σ_i E[(T·z_i(o_i, a_i) − y^Q_i)²] − η·Σ_i h_i`` (``h_i`` of :func:`shaping_terms`, only ``θ_i`` live)."""
    c = trainer.config
    T = c.lola_temperature
    y = jax.lax.stop_gradient(dqn_target(trainer, learner.target_actor, b))
    q = T * jnp.sum(trainer.logits(actor_params, b.obs, b.avail) * b.act, -1)
    m = b.active.astype(q.dtype)
    td = jnp.sum(jnp.sum(m * (q - y) ** 2, 0) / jnp.maximum(m.sum(0), 1.0))
    joint = jnp.asarray(joint_actions(trainer.num_agents, trainer.num_actions))
    q_table = joint_q_table(trainer, learner.critic_params, b, joint)

    def values(p):
        return boltzmann_values(jax.nn.log_softmax(trainer.logits(p, b.obs, b.avail)), q_table, joint, b.active)

    h = shaping_terms(values, actor_params) if c.lola_eta > 0 else jnp.zeros((trainer.num_agents,))
    return td - c.lola_eta * jnp.sum(h), {"dqn_loss": td, "lola_term": c.lola_eta * h,
                                          "lookahead_value": jax.lax.stop_gradient(values(actor_params))}


def init_lola(trainer, key, actor):
    if trainer.stacks != trainer.num_agents:
        from trustmarl.config import ConfigError
        raise ConfigError("share_params=True gives every agent one parameter set, which LOLA's per-agent "
                          "correction cannot tell apart; allowed for algo=lola_dqn: share_params=false")
    joint_actions(trainer.num_agents, trainer.num_actions)  # the size check, once, at init
    return ()


register_rule("lola_dqn", OffPolicyRule(
    critic="mlp", target=boltzmann_critic_target, actor_loss=lola_dqn_loss, init_extra=init_lola,
    metric_schema={"dqn_loss": ("scalar", "Σ_i E[(Q_i(o_i, a_i) − y^Q_i)²], the independent DQN losses"),
                   "lola_term": ("agent", "η·Σ_{j≠i} sg(∇_{θ_j}V^i)·∇_{θ_j}V^j, the shaping term agent i ascends"),
                   "lookahead_value": ("agent", "V^i, the joint Boltzmann policy's expected centralised Q^c_i")}))

LOLA_DQN = Algorithm(
    name="lola_dqn",
    family="off_policy",
    summary="independent DQN (Boltzmann policies) + LOLA's opponent-shaping correction through centralised Q's",
    reference="Foerster et al. 2018 (LOLA) §3.2; Li et al. (MAMT paper) Table 7, Table 10",
    config_defaults={"lr": 1e-3, "anneal_lr": False, "adam_eps": 1e-7, "gamma": 0.99, "num_envs": 12,
                     "hidden": (64, 64), "activation": "relu", "share_params": False, "tau": 0.01,
                     "max_grad_norm": 20.0},
)

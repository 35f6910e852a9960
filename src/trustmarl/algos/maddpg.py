"""MADDPG (Lowe et al. 2017), as maddpg-pytorch (the MADDPG code Li et al. cite) does it, for discrete and
continuous actions.

Per agent a policy ``π_i(o_i)`` and a centralised critic ``Q_i(o_1..o_N, a_1..a_N)`` on the concatenation of
every observation and every action (critic ``mlp``): one-hot for discrete actions, the ``[−1, 1]^D`` vector for
continuous ones. The action head (:mod:`trustmarl.offpolicy.heads`) is the only difference between the two:

* Critic target: ``y_i = r_i + γ(1 − d)·Q̄_i(o', ā')``, ``ā'_j`` agent ``j``'s target policy's greedy action
  (the one-hot argmax; continuous: ``tanh(z̄_j)``).
* Actor: ``L = −Σ_i E[Q_i(o, a)] + c·Σ_i E[x_i²]`` where agent ``i``'s own entry of ``a`` carries the gradient —
  a straight-through Gumbel-softmax sample of ``π_i`` (hard one-hot forward, relaxed gradient; temperature 1),
  or the deterministic ``tanh(z_i)`` — and the other agents' entries are their current policies' greedy
  actions (no gradient); ``c = policy_reg``, ``x`` the raw logits (discrete) or the ``tanh`` output
  (continuous, as maddpg-pytorch penalises it).
* Exploration: a sample of the categorical policy (the hard Gumbel sample); continuous:
  ``clip(tanh(z) + σξ, −1, 1)`` with ``ξ ~ N(0, I)`` and ``σ = explore_noise`` (Gaussian noise in place of
  maddpg-pytorch's Ornstein-Uhlenbeck noise, whose scale it anneals from 0.3 to 0).

Defaults follow Li et al. Table 5 (their MADDPG settings): Adam 1e-3, γ 0.99, 12 envs, 4 gradient steps per
~100 transitions, batch 1024, critic clip 10·n, policy clip 0.5, policy L2 1e-3; τ = 0.01 and 2×64 ReLU nets
from maddpg-pytorch.
"""
import jax
import jax.numpy as jnp

from trustmarl.algos.base import Algorithm
from trustmarl.offpolicy.rules import OffPolicyRule, register_rule


def _masked_sum_mean(x, active):
    m = active.astype(x.dtype)
    return jnp.sum(jnp.sum(x * m, 0) / jnp.maximum(m.sum(0), 1.0))


def deterministic_target(trainer, learner, b, key):
    """``y_i = r_i + γ(1 − d)·Q̄_i(o', greedy(π̄(o')))`` → ``[B, A]``."""
    c = trainer.config
    nxt = trainer.logits(learner.target_actor, b.next_obs, b.next_avail)
    q_next, _ = trainer.q_taken(learner.target_critic, b.next_obs, trainer.head.greedy(nxt), b.active)
    return b.reward + c.gamma * (1.0 - b.terminated[:, None]) * q_next


def gumbel_actor_loss(trainer, actor_params, learner, b, key):
    """``−Σ_i E[Q_i(o, (own_i, greedy π_{−i}))] + policy_reg·Σ_i E[x_i²]``, ``own_i`` the head's
    differentiable action (straight-through Gumbel-softmax, or ``tanh(z_i)``)."""
    c = trainer.config
    head = trainer.head
    raw = trainer.raw_logits(actor_params, b.obs)
    logits = head.mask(raw, b.avail)
    own = head.differentiable(logits, key)
    greedy = head.greedy(jax.lax.stop_gradient(logits))
    eye = jnp.eye(trainer.num_agents, dtype=bool)[..., None]
    acts = jnp.where(eye, own[..., None, :, :], greedy[..., None, :, :])  # row i: own differentiable entry at i
    q = trainer.q_joint(jax.lax.stop_gradient(learner.critic_params), b.obs, acts, b.active)
    reg = jnp.sum(jnp.mean(head.regularised(raw) ** 2, axis=(0, 2)))
    loss = -_masked_sum_mean(q, b.active) + c.policy_reg * reg
    return loss, {}


register_rule("maddpg", OffPolicyRule(critic="mlp", target=deterministic_target, actor_loss=gumbel_actor_loss,
                                      continuous="deterministic"))

MADDPG = Algorithm(
    name="maddpg",
    family="off_policy",
    summary="centralised concatenation critics, straight-through Gumbel-softmax (discrete) or deterministic tanh "
            "(continuous) actors, Polyak targets",
    reference="Lowe et al. 2017; maddpg-pytorch; Li et al. Table 5",
    config_defaults={"lr": 1e-3, "anneal_lr": False, "adam_eps": 1e-7, "gamma": 0.99, "num_envs": 12,
                     "hidden": (64, 64), "activation": "relu", "share_params": False, "tau": 0.01,
                     "max_grad_norm": 0.5},
)

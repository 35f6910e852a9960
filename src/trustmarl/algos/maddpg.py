"""MADDPG (Lowe et al. 2017) for discrete actions, as maddpg-pytorch (the MADDPG code Li et al. cite) does it.

Per agent a policy ``π_i(o_i)`` and a centralised critic ``Q_i(o_1..o_N, a_1..a_N)`` on the concatenation of
every observation and every one-hot action (critic ``mlp``).

* Critic target: ``y_i = r_i + γ(1 − d)·Q̄_i(o', ā')``, ``ā'_j`` the one-hot argmax of agent ``j``'s target policy.
* Actor: ``L = −Σ_i E[Q_i(o, a)] + c·Σ_i E[z_i²]`` where agent ``i``'s own entry of ``a`` is a straight-through
  Gumbel-softmax sample of ``π_i`` (hard one-hot forward, relaxed gradient; temperature 1) and the other
  agents' entries are the one-hot argmax of their current policies (no gradient); ``z`` the raw logits and
  ``c = policy_reg``.
* Exploration: a sample of the categorical policy (the hard Gumbel sample).

Defaults follow Li et al. Table 5 (their MADDPG settings): Adam 1e-3, γ 0.99, 12 envs, 4 gradient steps per
~100 transitions, batch 1024, critic clip 10·n, policy clip 0.5, policy L2 1e-3; τ = 0.01 and 2×64 ReLU nets
from maddpg-pytorch. Continuous actions (Multi-Walker's deterministic actor) are not implemented here: the
trainer refuses continuous-action envs with a one-line error.
"""
import jax
import jax.numpy as jnp

from trustmarl.algos.base import Algorithm
from trustmarl.offpolicy import functional as F
from trustmarl.offpolicy.rules import OffPolicyRule, register_rule


def _masked_sum_mean(x, active):
    m = active.astype(x.dtype)
    return jnp.sum(jnp.sum(x * m, 0) / jnp.maximum(m.sum(0), 1.0))


def deterministic_target(trainer, learner, b, key):
    """``y_i = r_i + γ(1 − d)·Q̄_i(o', onehot(argmax π̄(o')))`` → ``[B, A]``."""
    c = trainer.config
    nxt = trainer.logits(learner.target_actor, b.next_obs, b.next_avail)
    act = jax.nn.one_hot(jnp.argmax(nxt, -1), trainer.num_actions)
    q_next, _ = trainer.q_taken(learner.target_critic, b.next_obs, act, b.active)
    return b.reward + c.gamma * (1.0 - b.terminated[:, None]) * q_next


def gumbel_actor_loss(trainer, actor_params, learner, b, key):
    """``−Σ_i E[Q_i(o, (gumbel_st(π_i), argmax π_{−i}))] + policy_reg·Σ_i E[z_i²]``."""
    c = trainer.config
    raw = trainer.raw_logits(actor_params, b.obs)
    logits = F.masked_logits(raw, b.avail)
    own = F.gumbel_softmax(logits, key, 1.0, hard=True)
    greedy = jax.nn.one_hot(jnp.argmax(jax.lax.stop_gradient(logits), -1), trainer.num_actions)
    eye = jnp.eye(trainer.num_agents, dtype=bool)[..., None]
    acts = jnp.where(eye, own[..., None, :, :], greedy[..., None, :, :])  # row i: own relaxed entry at i
    q = trainer.q_joint(jax.lax.stop_gradient(learner.critic_params), b.obs, acts, b.active)
    reg = jnp.sum(jnp.mean(raw ** 2, axis=(0, 2)))
    loss = -_masked_sum_mean(q, b.active) + c.policy_reg * reg
    return loss, {}


register_rule("maddpg", OffPolicyRule(critic="mlp", target=deterministic_target, actor_loss=gumbel_actor_loss))

MADDPG = Algorithm(
    name="maddpg",
    family="off_policy",
    summary="centralised concatenation critics, straight-through Gumbel-softmax actors, Polyak targets",
    reference="Lowe et al. 2017; maddpg-pytorch; Li et al. Table 5",
    config_defaults={"lr": 1e-3, "anneal_lr": False, "adam_eps": 1e-7, "gamma": 0.99, "num_envs": 12,
                     "hidden": (64, 64), "activation": "relu", "share_params": False, "tau": 0.01,
                     "max_grad_norm": 0.5},
)

"""MAAC: actor-attention-critic (Iqbal & Sha 2019; reference code shariqiqbal2810/MAAC @ 6174a01).

Critic ``attention`` (:class:`trustmarl.offpolicy.networks.AttentionCritic`): ``Q_i(o, a_{−i}, ·)`` for every own
action. With ``α = 1/reward_scale``:

* Critic target (MAAC's code): ``y_i = r_i + γ(1 − d)·Q̄_i(o', a') − α·log π̄_i(a'_i|o'_i)``, ``a' ~ π̄(o')`` the
  target policies. The entropy term sits outside ``γ(1 − d)`` as in the code (Li et al. eq. 9 writes it inside);
  the critic loss adds ``attend_reg``·mean(attention logits²); the shared attention extractors' gradients are
  scaled by ``1/n``; Adam with weight decay ``critic_l2``, global-norm clip 10·n.
* Soft actor with the counterfactual baseline: ``a ~ π(o)`` for every agent,
  ``b_i = Σ_u π_i(u|o_i) Q_i(o, (u, a_{−i}))`` and

      L = Σ_i E[ log π_i(a_i|o_i) · sg(α log π_i(a_i|o_i) − (Q_i(o, a) − b_i)) ] + policy_reg·Σ_i E[z_i²].

* Rewards normalised per agent (``reward_norm``), Polyak targets ``τ = 0.001`` for critic and policies.
* Continuous actions (MAAC itself is discrete only): a tanh-squashed Gaussian policy
  (:class:`~trustmarl.offpolicy.heads.SquashedGaussianHead`, SAC's log-probability with the tanh correction),
  the attention critic reading the own action, and SAC's reparameterised actor step in place of the
  counterfactual score function: ``a_i = tanh(μ_i + σ_i ξ)``, ``a_{−i}`` the other agents' samples (no gradient),

      L = Σ_i E[ α log π_i(a_i|o_i) − Q_i(o, (a_i, a_{−i})) ] + policy_reg·Σ_i E[z_i²].

Defaults: Li et al. Table 4 (12 envs, 4 gradient steps per ~100 transitions, batch 1024, Adam 1e-3, γ 0.99,
4 heads, reward scale 100, policy clip 0.5) with MAAC's hidden width 128 and per-agent networks.
"""
from typing import Optional

import jax
import jax.numpy as jnp

from trustmarl.algos.base import Algorithm
from trustmarl.offpolicy import functional as F
from trustmarl.offpolicy.rules import OffPolicyRule, register_rule


def soft_target(trainer, learner, b, key):
    """``y_i = r_i + γ(1 − d)·Q̄_i(o', a') − log π̄_i(a'_i|o'_i)/reward_scale``, ``a' ~ π̄(o')`` → ``[B, A]``."""
    c = trainer.config
    nxt = trainer.logits(learner.target_actor, b.next_obs, b.next_avail)
    act, logp = trainer.head.sample(nxt, key)
    q_next, _ = trainer.q_taken(learner.target_critic, b.next_obs, act, b.active)
    return b.reward + c.gamma * (1.0 - b.terminated[:, None]) * q_next - logp / c.reward_scale


def soft_actor_terms(trainer, actor_params, critic_params, b, key, inv_delta=None, old_params=None):
    """The soft actor loss with the counterfactual baseline, and an optional mirror-descent KL term
    (Li et al. eq. 10 as MDPO writes it; ``inv_delta`` ``[A]`` = ``1/δ_i``)::

        L = Σ_i E_{a~π}[ log π_i(a_i) · (sg(α log π_i(a_i) − (Q_i − b_i)) + (1/δ_i)·sg(log π_i(a_i) − log π_i^old(a_i))) ]

    ``1/δ_i`` stays outside the stop-gradient so that MAMT's trust-region step can differentiate the
    policy step through it. Returns ``(loss, logits)``. Continuous actions: :func:`reparameterised_actor_terms`.
    """
    if trainer.head.reparameterised:
        return reparameterised_actor_terms(trainer, actor_params, critic_params, b, key, inv_delta, old_params)
    c = trainer.config
    raw = trainer.raw_logits(actor_params, b.obs)
    logits = F.masked_logits(raw, b.avail)
    logp_all = jax.nn.log_softmax(logits)
    a = jnp.argmax(jax.lax.stop_gradient(logits) + jax.random.gumbel(key, logits.shape), -1)
    act = jax.nn.one_hot(a, trainer.num_actions)
    logp = jnp.sum(logp_all * act, -1)
    q_all, _ = trainer.q_all(jax.lax.stop_gradient(critic_params), b.obs, act, b.active)
    q = jnp.sum(q_all * act, -1)
    base = F.counterfactual_baseline(q_all, jnp.exp(logp_all))
    signal = jax.lax.stop_gradient(logp / c.reward_scale - (q - base))
    if inv_delta is not None:
        old_logp = jnp.sum(jax.nn.log_softmax(trainer.logits(old_params, b.obs, b.avail)) * act, -1)
        signal = signal + inv_delta * jax.lax.stop_gradient(logp - old_logp)
    m = b.active.astype(logp.dtype)
    per_agent = jnp.sum(logp * signal * m, 0) / jnp.maximum(m.sum(0), 1.0)
    reg = jnp.sum(jnp.mean(raw ** 2, axis=(0, 2)))
    return jnp.sum(per_agent) + c.policy_reg * reg, logits


def reparameterised_actor_terms(trainer, actor_params, critic_params, b, key, inv_delta=None, old_params=None):
    """The soft actor step for continuous actions (SAC's reparameterisation, Haarnoja et al. 2018 eq. 13), with
    the optional mirror-descent term as MDPO's off-policy loss writes it for continuous actions::

        a_i = tanh(μ_i + σ_i ξ_i),  a_{−i} = sg(samples of the other agents' policies)
        L = Σ_i E[ α log π_i(a_i) − Q_i(o, (a_i, a_{−i})) + (1/δ_i)(log π_i(a_i) − log π_i^old(a_i)) ]
            + policy_reg·Σ_i E[z_i²]

    The last term is a one-sample estimate of ``KL[π_i ‖ π_i^old]/δ_i`` differentiated along the path of
    ``a_i``; ``1/δ_i`` stays differentiable as in :func:`soft_actor_terms`. Returns ``(loss, outputs)``."""
    c = trainer.config
    head = trainer.head
    sg = jax.lax.stop_gradient
    raw = trainer.raw_logits(actor_params, b.obs)
    out = head.mask(raw, b.avail)
    a, logp = head.sample(out, key)
    eye = jnp.eye(trainer.num_agents, dtype=bool)[..., None]
    acts = jnp.where(eye, a[..., None, :, :], sg(a)[..., None, :, :])  # row i: only agent i's entry has a gradient
    q = trainer.q_joint(sg(critic_params), b.obs, acts, b.active)
    per = logp / c.reward_scale - q
    if inv_delta is not None:
        old_logp = head.log_prob(sg(trainer.logits(old_params, b.obs, b.avail)), a)
        per = per + inv_delta * (logp - old_logp)
    m = b.active.astype(per.dtype)
    reg = jnp.sum(jnp.mean(raw ** 2, axis=(0, 2)))
    return jnp.sum(jnp.sum(per * m, 0) / jnp.maximum(m.sum(0), 1.0)) + c.policy_reg * reg, out


def soft_actor_loss(trainer, actor_params, learner, b, key, inv_delta: Optional[jax.Array] = None,
                    old_params=None):
    loss, _ = soft_actor_terms(trainer, actor_params, learner.critic_params, b, key, inv_delta, old_params)
    return loss, {}


register_rule("maac", OffPolicyRule(critic="attention", target=soft_target, actor_loss=soft_actor_loss,
                                    continuous="squashed_gaussian"))

MAAC_DEFAULTS = {"lr": 1e-3, "anneal_lr": False, "adam_eps": 1e-7, "gamma": 0.99, "num_envs": 12,
                 "hidden": (128, 128), "activation": "relu", "share_params": False, "tau": 0.001,
                 "max_grad_norm": 0.5}

MAAC = Algorithm(
    name="maac",
    family="off_policy",
    summary="attention critic, soft actors with the counterfactual baseline, Polyak targets",
    reference="Iqbal & Sha 2019 (ICML); Li et al. Table 4",
    config_defaults=dict(MAAC_DEFAULTS),
)

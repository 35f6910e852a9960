"""MAMT: multi-agent mirror descent with trust-region decomposition (Li et al., Algorithm 2).

MAMD (:mod:`.mamd`) with the local trust regions ``δ_i`` learned instead of split equally. Per gradient step,
before the critic and actor steps (Algorithm 2, lines 10-16):

1. **Coordination coefficients** (eq. 5) from the current centralised critics:
   ``Ĉ_ij = softmax_{j≠i}|Q_i(a_{\\j}) − Q_i(a)|``, ``C_ij = 1[Ĉ_ij ≥ σ]·Ĉ_ij`` (``coord_sigma``);
   ``Q_i(a_{\\j})`` leaves ``j`` out of ``i``'s attention. Ablations: ``coordination=fixed`` (``1/(n − 1)``,
   MAMT-Fixed), ``coordination=random`` (softmax of uniforms, MAMT-Random).
2. **Opponent models** ``h_{φ_i^j}(o_i)``: one cross-entropy step on the other agents' stored actions (L2
   ``policy_reg`` on their logits, clip 0.5), then eq. 6: ``D_i,ns = Π_ns(Σ_{j≠i} C_ij KL[h_{φ_i^j}(o_i) ‖
   π_j(o_j)])``, ``Π_ns`` = projection onto ``[0, ns_clip]``. Ablation ``nonstationarity=ws`` (MAMT-WS):
   ``D_i = Π_ns(1/n·Σ_{j≠i} C_ij KL[π_j^old ‖ π_j])``.
3. **Trust-region decomposition network** ``KL̂_i(o, a, δ; θ)`` (Figure 1) on the fast timescale, one step of
   eq. 7 every gradient step: ``min_θ E[(Σ_i KL̂_i − Σ_i D_i,ns)²]``.
4. **Local trust regions** on the slow timescale (eq. 8), one ascent step every ``delta_delay`` gradient steps.
   The reading chosen (the issue's): ``δ̃_i = softplus(ρ_i)`` and ascend in ``ρ``

       F(ρ) = Σ_i E_o[ Σ_u π_i^{ψ'(δ)}(u|o_i) Q_i(o, (u, a_{−i})) ] − Σ_i E[KL̂_i(o, a, δ; θ)] − ReLU(Σ_i δ̃_i − δ)

   where ``ψ'(δ) = ψ − η∇_ψ L_MD(ψ; δ)`` is one unrolled plain-SGD step (``η = lr``) of the mirror-descent loss
   differentiated through (``δ`` enters it as ``1/δ_i``), ``Q`` the current critics at the stored other agents'
   actions, ``KL̂`` the network just updated; Adam on ``ρ`` with ``lr``. ``δ_i`` in force is ``δ̃_i`` floored at
   ``delta_min`` and scaled onto the budget when ``Σ δ̃_i > δ`` (:func:`~trustmarl.offpolicy.functional.split_budget`),
   so ``Σ_i δ_i ≤ δ`` holds at every step, not only in the penalty's limit. ``δ_i^0 = δ/n``.

The policy step is then MAMD's eq. 10 with these ``δ_i``; the critic is MAAC's. Table 3 defaults: σ = 0.2,
m = 100, δ = 1 (the middle of Table 9's {0.01, 1, 100}), reward scale 100, Adam 1e-3 (eps 1e-7), modelling
policy clip 0.5, decomposition-network clip 10·n. ``policy_update=ppo`` is MAMT-PPO (PPO's clip with ``ε_i = δ_i``
in place of mirror descent, :func:`trustmarl.algos.mamd.ppo_actor_terms`).

Continuous actions (Multi-Walker) use MAAC's squashed-Gaussian head (:mod:`trustmarl.offpolicy.heads`)
throughout: the opponent models predict ``μ ⊕ log σ`` of each other agent and are fitted by the negative
log-likelihood of the stored actions, eq. 6's KL is the Gaussians' (the tanh is a bijection), and eq. 8's
``Σ_u π_i^{ψ'}(u) Q_i`` becomes ``Q_i(o, (tanh(μ'_i + σ'_i ξ), a_{−i}))`` with one fixed draw ``ξ``
(the reparameterised estimate); MAMT-PPO stays discrete-only.
"""
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from trustmarl.algos.base import Algorithm
from trustmarl.algos.maac import MAAC_DEFAULTS, soft_target
from trustmarl.algos.mamd import MIRROR_METRICS, copy_old_policy, kl_to_old, md_actor_terms
from trustmarl.offpolicy import functional as F
from trustmarl.offpolicy.networks import OpponentModel, TRDNet
from trustmarl.offpolicy.rules import OffPolicyRule, register_rule


class MAMTState(NamedTuple):
    old_actor: Any  # π^old
    rho: jax.Array  # [A] free parameters of the local trust regions
    rho_opt: Any
    model_params: Any  # opponent models φ
    model_opt: Any
    trd_params: Any  # decomposition network θ
    trd_opt: Any


def _nets(trainer):
    c = trainer.config
    # the opponent models predict a whole policy output of the action head per other agent: logits, or the
    # squashed Gaussian's μ ⊕ log σ for continuous actions
    return (OpponentModel(c.hidden, trainer.num_agents, trainer.head.out_dim, trainer.num_agents, c.activation),
            TRDNet(c.hidden[-1]))


def _opts(trainer):
    c = trainer.config
    adam = lambda clip: optax.chain(optax.clip_by_global_norm(clip), optax.adam(c.lr, eps=c.adam_eps))  # noqa
    return adam(0.5), adam(10.0 * trainer.num_agents), optax.adam(c.lr, eps=c.adam_eps)


def init_mamt(trainer, key, actor):
    c = trainer.config
    if c.trust_split != "equal":
        from trustmarl.config import ConfigError
        raise ConfigError(f"trust_split={c.trust_split!r} is MAMD's (MAMD-OP); MAMT learns its delta_i, allowed: "
                          f"equal")
    if trainer.head.continuous and c.policy_update == "ppo":
        from trustmarl.config import ConfigError
        raise ConfigError(f"policy_update=ppo (MAMT-PPO) is implemented for discrete actions only; env={c.env!r} "
                          f"has continuous actions (allowed: policy_update=mirror)")
    A, U, O = trainer.num_agents, trainer.num_actions, trainer.spec.obs_dim
    model, trd = _nets(trainer)
    model_opt, trd_opt, rho_opt = _opts(trainer)
    k_m, k_t = jax.random.split(key)
    mp = model.init(k_m, jnp.zeros((A, O)))
    tp = trd.init(k_t, jnp.zeros((A, O)), jnp.zeros((A, U)), jnp.ones((A,)), jnp.zeros((A, A)))
    rho = jnp.full((A,), F.inverse_softplus(c.trust_region / A))
    return MAMTState(actor, rho, rho_opt.init(rho), mp, model_opt.init(mp), tp, trd_opt.init(tp))


def local_trust_regions(trainer, rho) -> jax.Array:
    c = trainer.config
    return F.split_budget(rho, c.trust_region, c.delta_min)


def coordination(trainer, learner, b, key) -> jax.Array:
    """``C`` ``[B, A, A]`` by the configured rule (eq. 5, or an ablation's)."""
    c = trainer.config
    A = trainer.num_agents
    B = b.obs.shape[0]
    if c.coordination == "fixed":
        return jnp.broadcast_to(F.fixed_coordination(A), (B, A, A))
    if c.coordination == "random":
        return F.random_coordination(key, (B,), A)
    q, _ = trainer.q_taken(learner.critic_params, b.obs, b.act, b.active)
    q_wo = trainer.q_without(learner.critic_params, b.obs, b.act, b.active)
    pair = b.active[..., :, None] & b.active[..., None, :]
    return F.coordination_coefficients(q, q_wo, c.coord_sigma, pair)


def mamt_before_step(trainer, learner, b, key):
    c = trainer.config
    A = trainer.num_agents
    ex: MAMTState = learner.extra
    model, trd = _nets(trainer)
    model_opt, trd_opt, rho_opt = _opts(trainer)
    k_c, k_d = jax.random.split(key)
    sg = jax.lax.stop_gradient
    logits = sg(trainer.logits(learner.actor_params, b.obs, b.avail))
    C = sg(coordination(trainer, learner, b, k_c))
    pair = F.off_diagonal(A) & b.active[..., :, None] & b.active[..., None, :]

    head = trainer.head

    # opponent models: negative log-likelihood of j's stored action under i's prediction of j (the
    # cross-entropy for discrete actions)
    def model_loss(p):
        raw = model.apply(p, b.obs)
        ce = -head.log_prob(head.mask(raw, b.avail[..., None, :, :]), b.act[..., None, :, :])
        return jnp.sum(ce * pair) / jnp.maximum(pair.sum(), 1) + c.policy_reg * jnp.mean(raw ** 2)

    m_loss, g = jax.value_and_grad(model_loss)(ex.model_params)
    upd, m_opt = model_opt.update(g, ex.model_opt, ex.model_params)
    mp = optax.apply_updates(ex.model_params, upd)

    if c.nonstationarity == "model":
        pred = head.mask(model.apply(mp, b.obs), b.avail[..., None, :, :])
        D = F.nonstationarity(C, pred, logits, c.ns_clip, head.kl)
    else:
        old = trainer.logits(ex.old_actor, b.obs, b.avail)
        D = F.weighted_policy_divergence(C, old, logits, c.ns_clip, head.kl)
    D = sg(D * b.active)

    # eq. 7 on the fast timescale
    delta = local_trust_regions(trainer, ex.rho)

    def trd_loss(p):
        k_hat = trd.apply(p, b.obs, b.act, sg(delta), C)
        return jnp.mean((jnp.sum(k_hat * b.active, -1) - jnp.sum(D, -1)) ** 2)

    t_loss, g = jax.value_and_grad(trd_loss)(ex.trd_params)
    upd, t_opt = trd_opt.update(g, ex.trd_opt, ex.trd_params)
    tp = optax.apply_updates(ex.trd_params, upd)

    # eq. 8 on the slow timescale: ascend F through one unrolled mirror-descent step
    m = b.active.astype(jnp.float32)
    own_value = _own_action_value(trainer, learner.critic_params, b, jax.random.fold_in(k_d, 1))

    def objective(rho):
        d = local_trust_regions(trainer, rho)
        step = jax.grad(lambda psi: md_actor_terms(trainer, psi, learner.critic_params, b, k_d, d,
                                                   ex.old_actor)[0])(learner.actor_params)
        psi = jax.tree.map(lambda p, s: p - c.lr * s, learner.actor_params, step)
        value = jnp.sum(jnp.sum(own_value(trainer.logits(psi, b.obs, b.avail)) * m, 0) / jnp.maximum(m.sum(0), 1.0))
        k_hat = jnp.sum(jnp.mean(trd.apply(tp, b.obs, b.act, d, C) * m, 0))
        return value - k_hat - F.budget_penalty(rho, c.trust_region)

    g_rho = jax.grad(objective)(ex.rho)
    upd, r_opt = rho_opt.update(-g_rho, ex.rho_opt, ex.rho)  # ascent
    due = (learner.grad_steps % c.delta_delay) == 0
    rho = jnp.where(due, optax.apply_updates(ex.rho, upd), ex.rho)
    r_opt = jax.tree.map(lambda new, old: jnp.where(due, new, old), r_opt, ex.rho_opt)

    off = jnp.broadcast_to(pair, C.shape)
    n_off = jnp.maximum(off.sum(), 1)
    c_mean = jnp.sum(C * off) / n_off
    metrics = {"delta": local_trust_regions(trainer, rho), "d_ns": jnp.sum(D, 0) / jnp.maximum(m.sum(0), 1.0),
               "coord_mean": c_mean, "coord_var": jnp.sum(((C - c_mean) * off) ** 2) / n_off,
               "trd_loss": t_loss, "model_loss": m_loss}
    new = ex._replace(rho=rho, rho_opt=r_opt, model_params=mp, model_opt=m_opt, trd_params=tp, trd_opt=t_opt)
    return learner._replace(extra=new), metrics


def _own_action_value(trainer, critic_params, b, key):
    """``out ↦ E_{u~π(out)}[Q_i(o, (u, a_{−i}))]`` ``[B, A]`` with the other agents at their stored actions and the
    critic fixed: the exact sum ``Σ_u π_i(u) Q_i(o, (u, a_{−i}))`` for discrete actions, a reparameterised
    one-sample estimate ``Q_i(o, (tanh(μ_i + σ_i ξ), a_{−i}))`` (``ξ`` drawn once) for continuous ones."""
    sg = jax.lax.stop_gradient
    head = trainer.head
    if not head.reparameterised:
        q_all = sg(trainer.q_all(critic_params, b.obs, b.act, b.active)[0])
        return lambda out: jnp.sum(jax.nn.softmax(out) * q_all, -1)
    xi = head.noise(key, b.act.shape[:-1])
    eye = jnp.eye(trainer.num_agents, dtype=bool)[..., None]

    def value(out):
        a, _ = head.squash(out, xi)
        acts = jnp.where(eye, a[..., None, :, :], b.act[..., None, :, :])
        return trainer.q_joint(sg(critic_params), b.obs, acts, b.active)

    return value


def mamt_actor_loss(trainer, actor_params, learner, b, key):
    delta = jax.lax.stop_gradient(local_trust_regions(trainer, learner.extra.rho))
    loss, logits = md_actor_terms(trainer, actor_params, learner.critic_params, b, key, delta,
                                  learner.extra.old_actor)
    return loss, {"kl_old": kl_to_old(trainer, logits, learner.extra.old_actor, b)}


MAMT_METRICS = {
    **MIRROR_METRICS,
    "delta": ("agent", "local trust region δ_i after the iteration's steps (mean over them)"),
    "d_ns": ("agent", "D_i,ns, the non-stationarity signal of eq. 6 (mean over batch and steps)"),
    "coord_mean": ("scalar", "mean coordination coefficient C_ij over pairs j ≠ i of active agents"),
    "coord_var": ("scalar", "their variance"),
    "trd_loss": ("scalar", "decomposition-network loss, eq. 7"),
    "model_loss": ("scalar", "opponent models' cross-entropy (with the logit penalty)"),
}

register_rule("mamt", OffPolicyRule(critic="attention", target=soft_target, actor_loss=mamt_actor_loss,
                                    init_extra=init_mamt, before_step=mamt_before_step, after_step=copy_old_policy,
                                    metric_schema=MAMT_METRICS, continuous="squashed_gaussian"))

MAMT = Algorithm(
    name="mamt",
    family="off_policy",
    summary="MAMD with learned local trust regions: coordination coefficients, opponent models, TRD-Net, eq. 8",
    reference="Li et al. (MAMT paper), Algorithm 2 and eqs. 5-10, Table 3",
    config_defaults=dict(MAAC_DEFAULTS),
)

"""Seam 4: the order in which agents (or batches of agents) are updated within one iteration.

An update order is a factory ``order(pieces) -> update`` whose result has the seam's signature::

    update(learner, batch, key, trace) -> (learner, (minibatch_metrics, trust_region_measures))

``batch`` is the whole rollout ``[T, E, A, ...]``; ``trace`` (deltas and episode ends) lets an order
re-estimate advantages off-policy. ``pieces`` (:class:`UpdatePieces`) is what every order may use,
supplied by the trainer:

* ``actor_step(learner, minibatch, agents, bounds)`` — one gradient step of the policy loss on the
  minibatch's entries of the agents selected by ``agents`` ``[A]`` (bool); the minibatch carries the order's
  per-sample factors (``factor`` outside the clipped surrogate, HAPPO; ``inner`` inside the clipped ratio,
  A2PO/B2MAPO). With per-agent parameter stacks every agent has its own optimiser state and gradient-norm
  clip and only the selected agents move; ``bounds`` overrides the clip bounds (per-position schedules);
* ``critic_step(learner, minibatch)`` — one critic step (and the value normaliser);
* ``minibatches(batch, key)`` — the batch shuffled and split on a leading minibatch axis;
* ``measure(learner, batch, metrics)`` — an epoch's trust-region measurements (simultaneous order);
  ``measure_now(learner, batch)`` — exact measurements of the policy now (sequential orders, per group);
* ``policy_logp(actor_params, batch)`` — log-probs ``[T, E, A]`` of the batch's actions;
* ``mask(batch)`` — active entries; ``bounds(eps)`` — clip bounds of a clip range; ``scores(learner, batch)``
  — A2PO's per-agent ``mean |Â_i / V_i|``; ``options`` — :class:`SequentialOptions`.

The learning rate is not an order's business: it is a function of the learner's update count, so
stepping agents one after another cannot advance it (the schedule counts updates, not optimiser steps).

Orders (``UPDATE_ORDERS``):

* ``simultaneous`` (IPPO, MAPPO, JR-PPO): every agent steps on every minibatch, factor 1, critic stepped
  with the actors. One group of all agents.
* ``random_permutation`` (HAPPO, Kuba et al. 2022): one agent at a time in a fresh random order each
  iteration.
* ``semi_greedy`` (A2PO, Wang et al. 2023): one agent at a time; the order alternates the remaining agent of
  highest ``mean |Â_i/V_i|`` and a uniformly random remaining one.
* ``batches`` (B2MAPO, Zhang et al. 2024): groups of agents (a partition of the agents) one after another;
  agents inside a group step simultaneously; ``batch_partition=dag`` takes them from B2MAPO's learned DAG
  generator (:mod:`trustmarl.seams.dag`), whose state lives in the learner (:func:`init_order_state`).

Every sequential order runs, per group ``b_k`` in order: the factor of the preceding groups
``ρ_{<k} = Π_{i updated} r_i`` (:func:`trustmarl.seams.ratios.preceding_factor`), the advantage re-estimated
with truncated weights ``min(1, ρ_{<k})`` when ``trace_correction`` (B2MAPO eq. 1), then ``update_epochs``
passes of ``actor_step`` for the group (HAPPO's agent-by-agent PPO), and after all groups the critic's
epochs (the critic is trained after the actors, as HARL's runner does). The epochs use the same minibatch
keys as the simultaneous order, so that with one group, or with the factor fixed at 1 and per-agent
stacks, a sequential order reproduces the simultaneous update.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from trustmarl.seams.advantages import team_advantage, trace_corrected_gae
from trustmarl.seams.ratios import preceding_factor


class SequentialOptions(NamedTuple):
    """How a sequential order weighs and corrects each group's update (Config's ``sequential`` section)."""

    preceding_factor: str = "outer"  # outer (HAPPO's M), clipped_inner (A2PO/B2MAPO's g), none (factor 1)
    preceding_clip: float = 0.5  # g clipped to 1 ± preceding_clip·ε_k (B2MAPO eq. 12: ε/2)
    clip_schedule_weight: float = 0.0  # A2PO's ε_k = ε·((k/K)·w + 1 − w); 0 keeps ε for every group
    trace_correction: bool = False  # re-estimate advantages with min(1, ρ_{<k}) traces (B2MAPO eq. 1)
    trace_lambda_twice: bool = False  # A2PO's reference reading of the trace (λ twice per step)
    num_batches: int = 2  # batches order: number of groups for the random partition
    batch_partition: str = "random"  # batches order: random (num_batches groups), singletons, dag (B2MAPO)
    batch_order: str = "score"  # batches order: score (descending mean |Â/V|), semi_greedy, random
    dag_threshold: float = 0.1  # dag partition: δ of eq. 5 (B2MAPO)
    dag_kl_coef: float = 0.01  # dag partition: c_1, the upper layer's KL penalty (§4.1)
    dag_envs: int = 4  # dag partition: envs whose trajectories the upper layer encodes
    ind_epochs: int = 1  # dag partition: passes of eq. 13 (π_ind's distillation) after each update
    ind_during: bool = False  # dag partition: one eq. 13 step for π_ind fused into every actor step
    preceding_actions: bool = False  # dag partition: π reads the preceding batches' actions (B2MAPO §4.2)
    gamma: float = 0.99
    gae_lambda: float = 0.95
    adv_norm: bool = True


class UpdatePieces(NamedTuple):
    actor_step: Callable[..., tuple[Any, dict]]
    critic_step: Callable[[Any, Any], tuple[Any, dict]]
    minibatches: Callable[[Any, jax.Array], Any]
    measure: Callable[[Any, Any, dict], tuple[Any, dict]]
    epochs: int
    num_agents: int
    measure_now: Callable[[Any, Any], Any] = None
    policy_logp: Callable[[Any, Any], jax.Array] = None
    mask: Callable[[Any], jax.Array] = None
    bounds: Callable[[Any], tuple] = None
    scores: Callable[[Any, Any], jax.Array] = None
    clip_eps: float = 0.2
    options: SequentialOptions = SequentialOptions()
    dag: Any = None  # trustmarl.seams.dag.DagPieces, for batch_partition=dag


# ---------------------------------------------------------------------------------------------------------
# the simultaneous order
# ---------------------------------------------------------------------------------------------------------
def simultaneous(p: UpdatePieces):
    """All agents take one gradient step on each minibatch, for ``epochs`` passes (PPO's loop)::

        for epoch:  for minibatch:  θ_i ← θ_i + step(∇ L_i(θ_i)) for every agent i at once;  critic step
    """
    everyone = jnp.ones((p.num_agents,), bool)

    def update(learner, batch, key, trace=None):
        def epoch(learner, k):
            mbs = p.minibatches(batch, k)

            def step(learner, mb):
                learner, am = p.actor_step(learner, mb, everyone)
                learner, cm = p.critic_step(learner, mb)
                return learner, {**am, **cm}

            learner, metrics = jax.lax.scan(step, learner, mbs)
            tr, metrics = p.measure(learner, batch, metrics)
            return learner, (metrics, tr)

        return jax.lax.scan(epoch, learner, jax.random.split(key, p.epochs))

    return update


# ---------------------------------------------------------------------------------------------------------
# agent orders (as data: a [K, A] bool matrix of groups, updated top to bottom)
# ---------------------------------------------------------------------------------------------------------
def permutation_groups(perm: jax.Array) -> jax.Array:
    """Singleton groups in the order ``perm`` [A]: row k selects agent ``perm[k]``."""
    A = perm.shape[0]
    return jnp.arange(A)[None, :] == perm[:, None]


def semi_greedy_permutation(scores: jax.Array, key: jax.Array) -> jax.Array:
    """A2PO's semi-greedy order (``_get_agent_sequence``): positions 0, 2, 4, ... take the remaining agent of
    highest score, positions 1, 3, ... a uniformly random remaining agent. ``scores`` [A] → permutation [A]."""
    A = scores.shape[0]
    noise = jax.random.uniform(key, (A,))

    def pick(k, carry):
        taken, perm = carry
        value = jnp.where(k % 2 == 0, scores, noise)
        i = jnp.argmax(jnp.where(taken, -jnp.inf, value))
        return taken.at[i].set(True), perm.at[k].set(i)

    _, perm = jax.lax.fori_loop(0, A, pick, (jnp.zeros((A,), bool), jnp.zeros((A,), jnp.int32)))
    return perm


def random_partition(key: jax.Array, num_agents: int, num_batches: int) -> jax.Array:
    """``num_batches`` non-empty groups of a random partition: agents in a random order dealt round-robin
    (group sizes differ by at most one). Returns [K, A] bool."""
    perm = jax.random.permutation(key, num_agents)
    group_of = jnp.zeros((num_agents,), jnp.int32).at[perm].set(jnp.arange(num_agents) % num_batches)
    return jnp.arange(num_batches)[:, None] == group_of[None, :]


def order_groups(groups: jax.Array, group_scores: jax.Array, how: str, key: jax.Array) -> jax.Array:
    """Reorder groups [K, A] by ``how``: ``score`` (descending), ``semi_greedy`` (A2PO's rule on the groups'
    scores) or ``random``."""
    K = groups.shape[0]
    if how == "score":
        perm = jnp.argsort(-group_scores)
    elif how == "semi_greedy":
        perm = semi_greedy_permutation(group_scores, key)
    else:
        perm = jax.random.permutation(key, K)
    return groups[perm]


# ---------------------------------------------------------------------------------------------------------
# the sequential machinery shared by random_permutation, semi_greedy and batches
# ---------------------------------------------------------------------------------------------------------
def _bcast(x, like):
    return jnp.broadcast_to(x[..., None], like.shape)


def _skipped(shapes: dict) -> dict:
    """Metrics of a group that did not run: neutral for the summaries (min/max ignore ±inf, means NaN)."""
    def fill(name, s):
        if s.dtype == jnp.bool_:
            return jnp.ones(s.shape, bool)
        if not jnp.issubdtype(s.dtype, jnp.floating):
            return jnp.zeros(s.shape, s.dtype)
        value = jnp.inf if name.endswith("_min") else -jnp.inf if name.endswith("_max") else jnp.nan
        return jnp.full(s.shape, value, s.dtype)
    return {k: jax.tree.map(lambda s, k=k: fill(k, s), v) for k, v in shapes.items()}


def sequential(p: UpdatePieces, groups_fn: Callable, skip_empty: bool = False):
    """Groups from ``groups_fn(learner, batch, key) -> [K, A] bool`` updated one after another (see the
    module docstring); returns the update function. ``skip_empty``: groups may be empty (a DAG with fewer
    levels than rows); an empty group takes no optimiser step (with shared parameters a zero-gradient Adam
    step would still move them).

    Two things cost nothing in what is computed but matter under the seed ``vmap``, where a ``lax.cond`` on a
    per-seed predicate runs both branches: (1) the first group's preceding factor is 1 by definition (nobody
    is updated before it), so its pass of the policy over the batch is not run; (2) with ``skip_empty`` the
    groups after the last non-empty one run in a ``while_loop`` that stops there (for the slowest seed), not as
    skipped scan steps, which under ``vmap`` would each cost a full group update (B2MAPO on 27m_vs_30m keeps
    one DAG level of 3 rows). A group that did not run reports neutral metrics (:func:`_skipped`, its
    preceding factor included) and the trust-region measurement of the last group that ran."""
    o = p.options

    def update(learner, batch, key, trace):
        epoch_keys = jax.random.split(key, p.epochs)  # the simultaneous order's minibatch keys
        groups = groups_fn(learner, batch, jax.random.fold_in(key, 1))
        K = groups.shape[0]
        mask = p.mask(batch)

        def group_step(learner, updated, group, k, first):
            w = o.clip_schedule_weight
            eps_k = p.clip_eps * ((k + 1) / K * w + (1.0 - w))
            if first:  # Π over no agent: exactly 1, without a pass of the policy over the batch
                prod = jnp.ones(batch.adv.shape[:-1], batch.adv.dtype)
            else:
                log_ratio = p.policy_logp(learner.actor_params, batch) - batch.logp
                prod = preceding_factor(log_ratio, updated, mask)  # [T, E]
            ones = jnp.ones_like(batch.adv)
            if o.preceding_factor == "outer":
                b = batch._replace(factor=_bcast(prod, ones), inner=None)
            elif o.preceding_factor == "clipped_inner":
                g = jnp.clip(prod, 1.0 - o.preceding_clip * eps_k, 1.0 + o.preceding_clip * eps_k)
                b = batch._replace(factor=ones, inner=_bcast(g, ones))
            else:
                b = batch._replace(factor=ones, inner=None)
            if o.trace_correction:
                adv = trace_corrected_gae(trace.deltas, trace.episode_end, jnp.minimum(prod, 1.0)[..., None],
                                          o.gamma, o.gae_lambda, o.trace_lambda_twice)
                if o.adv_norm:
                    from trustmarl.losses import normalize_advantages
                    adv = normalize_advantages(adv, mask)
                b = b._replace(adv=adv, adv_joint=team_advantage(adv, mask))
            bounds = p.bounds(eps_k)

            def epoch(learner, ek):
                mbs = p.minibatches(b, ek)
                return jax.lax.scan(lambda l, mb: p.actor_step(l, mb, group, bounds), learner, mbs)

            def run(learner):
                return jax.lax.scan(epoch, learner, epoch_keys)

            if skip_empty:
                shapes = jax.eval_shape(run, learner)[1]
                learner, metrics = jax.lax.cond(group.any(), run, lambda l: (l, _skipped(shapes)), learner)
            else:
                learner, metrics = run(learner)
            metrics.pop("tr", None)
            m = mask.astype(prod.dtype).max(-1)
            n = jnp.maximum(m.sum(), 1.0)
            like = metrics["policy_loss"]
            for name, value in (("min", jnp.where(m > 0, prod, jnp.inf).min()), ("mean", (prod * m).sum() / n),
                                ("max", jnp.where(m > 0, prod, -jnp.inf).max())):
                metrics[f"preceding_factor_{name}"] = jnp.broadcast_to(value, like.shape)
            tr = p.measure_now(learner, batch) if p.measure_now is not None else None
            return learner, updated | group, (metrics, tr)

        learner, updated, out0 = group_step(learner, jnp.zeros((p.num_agents,), bool), groups[0],
                                            jnp.zeros((), jnp.int32), True)
        if not skip_empty:
            def scan_step(carry, xs):
                learner, updated, out = group_step(*carry, *xs, False)
                return (learner, updated), out

            (learner, _), rest = jax.lax.scan(scan_step, (learner, updated), (groups[1:], jnp.arange(1, K)))
            metrics, tr = jax.tree.map(lambda a, r: jnp.concatenate([a[None], r], 0), out0, rest)
        else:
            # rows 0..n_run−1 run; the rest are empty (a DAG's levels fill a prefix of the rows)
            n_run = 1 + jnp.max(jnp.where(groups.any(-1), jnp.arange(K), 0))
            shapes = jax.eval_shape(lambda l, u: group_step(l, u, groups[0], 1, False)[2], learner, updated)
            metrics0, tr0 = out0
            skipped = _skipped(shapes[0])
            metrics = {name: jnp.concatenate([v[None], jnp.broadcast_to(skipped[name][None], (K - 1,) + v.shape)], 0)
                       for name, v in metrics0.items()}
            tr = jax.tree.map(lambda a: jnp.broadcast_to(a[None], (K,) + a.shape), tr0)

            def body(carry):
                learner, updated, k, metrics, tr = carry
                learner, updated, (m, t) = group_step(learner, updated, groups[k], k, False)
                put = lambda buf, v: jax.lax.dynamic_update_index_in_dim(buf, v, k, 0)  # noqa: E731
                return learner, updated, k + 1, jax.tree.map(put, metrics, m), jax.tree.map(put, tr, t)

            learner, _, _, metrics, tr = jax.lax.while_loop(
                lambda c: c[2] < n_run, body, (learner, updated, jnp.ones((), jnp.int32), metrics, tr))
            # a group that did not run measured nothing: it keeps the last group's measurement that ran
            tr = jax.tree.map(lambda x: x[jnp.minimum(jnp.arange(K), n_run - 1)], tr)
        # [K, epochs, M, ...] -> [K·epochs, M, ...]: one row per (group, epoch) pass
        metrics = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), metrics)

        def critic_epoch(learner, ek):
            return jax.lax.scan(p.critic_step, learner, p.minibatches(batch, ek))

        learner, critic_metrics = jax.lax.scan(critic_epoch, learner, epoch_keys)
        return learner, ({**metrics, **critic_metrics}, tr)

    return update


def random_permutation(p: UpdatePieces):
    """HAPPO's order: singleton groups in a fresh uniformly random permutation each iteration."""
    return sequential(p, lambda learner, batch, key: permutation_groups(jax.random.permutation(key, p.num_agents)))


def semi_greedy(p: UpdatePieces):
    """A2PO's order: singleton groups in the semi-greedy order of ``mean |Â_i / V_i|``."""
    return sequential(p, lambda learner, batch, key: permutation_groups(
        semi_greedy_permutation(p.scores(learner, batch), jax.random.fold_in(key, 2))))


def batches(p: UpdatePieces):
    """B2MAPO's batch-by-batch order over a partition of the agents (``batch_partition``: ``random`` into
    ``num_batches`` groups, or ``singletons``), the groups ordered by ``batch_order`` on the mean score
    of their agents; or ``dag``: B2MAPO's learned DAG generator chooses the batches (its topological levels,
    at most ``num_batches``, in level order) and π_ind is distilled after the update
    (:mod:`trustmarl.seams.dag`)."""
    o = p.options
    if o.batch_partition == "dag":
        from trustmarl.seams.dag import dag_order, ind_companion
        # ind_during: π_ind's eq. 13 step rides on every actor step (one forward/backward for both)
        q = p._replace(actor_step=functools.partial(p.actor_step, companion=ind_companion(p, p.dag))) \
            if o.ind_during else p
        return dag_order(p, p.dag, sequential(q, lambda learner, batch, key: learner.order.groups,
                                              skip_empty=True))

    def groups_fn(learner, batch, key):
        # the same ordering key as semi_greedy: singleton batches in A2PO's order are A2PO's update
        k_part, k_order = jax.random.fold_in(key, 3), jax.random.fold_in(key, 2)
        if o.batch_partition == "singletons":
            groups = jnp.eye(p.num_agents, dtype=bool)
        else:
            groups = random_partition(k_part, p.num_agents, min(o.num_batches, p.num_agents))
        scores = p.scores(learner, batch)
        g = groups.astype(scores.dtype)
        group_scores = (g * scores).sum(-1) / jnp.maximum(g.sum(-1), 1.0)
        return order_groups(groups, group_scores, o.batch_order, k_order)

    return sequential(p, groups_fn)


UPDATE_ORDERS: dict[str, Callable[[UpdatePieces], Callable]] = {
    "simultaneous": simultaneous, "random_permutation": random_permutation, "semi_greedy": semi_greedy,
    "batches": batches}
SEQUENTIAL_ORDERS = ("random_permutation", "semi_greedy", "batches")


def init_order_state(order: str, p: UpdatePieces, key: jax.Array):
    """The state an order keeps in the learner (``LearnerState.order``): B2MAPO's
    :class:`trustmarl.seams.dag.DagState` for ``batches`` with ``batch_partition=dag``; None for every other
    order."""
    if order == "batches" and p.options.batch_partition == "dag":
        from trustmarl.seams.dag import init_dag_state
        return init_dag_state(p, p.dag, key)
    return None

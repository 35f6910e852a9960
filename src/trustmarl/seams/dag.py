"""B2MAPO's two layers (Zhang et al. 2024, §3–4): the DAG generator that chooses the batches of the
batch-by-batch update (upper layer) and the derived decentralised policy π_ind (lower layer, eq. 13).

It plugs into the update-order seam as ``update_order=batches, batch_partition=dag``: the shared sequential
machinery (:func:`trustmarl.seams.update_orders.sequential`) updates the groups this module chooses, with the
clipped preceding-batch factor of eqs. 10–12 and the corrected advantage of eq. 1; everything this module
learns lives in the learner state's ``order`` field (:class:`DagState`).

Upper layer — the reading chosen
--------------------------------
The paper specifies the attention graph (eq. 5) and the PPO losses (eqs. 6–8) but leaves the "DAG
construction module" to a random-DAG generator ("implemented based on [4]") whose action and probability it
does not give, so PPO's ratio ``Sr(θ)`` is undefined as written. trustmarl's reading makes it exact:

1. **State.** Every agent's observation sequence over the rollout is encoded by an MLP and a GRU (episode
   resets honoured) into ``τ^i`` (§4.1), for the first ``dag_envs`` envs of the rollout.
2. **Graph, eq. 5.** ``q^i = W_q τ^i``, ``k^i = W_k τ^i``, ``v^i = W_v τ^i``;
   ``G^i = softmax_j(q_i·k_j/√d_k)`` over all ``n`` agents, then ``g^{ii} = 0`` (the paper's wording, so a
   row sums to less than 1), averaged over the encoded envs, and ``g^{ij} < δ`` set to 0 (δ =
   ``dag_threshold``). ``g^{ij} > 0`` means agent ``i`` depends on agent ``j``.
3. **Action: an agent ordering.** ``Z^i = MLP(v^i + Σ_j g^{ij} v^j)`` gives a score ``s_i`` per agent
   (averaged over the envs; the paper's ``MLP(v^i G_T^i)`` with a residual ``v^i``, so that an agent's own
   trajectory still reaches its score when δ removes every edge); the upper layer's action is a permutation ``σ`` drawn from the Plackett–Luce distribution of the
   scores, ``log π^dag(σ) = Σ_k [s_{σ_k} − log Σ_{m≥k} exp s_{σ_m}]`` (:func:`plackett_luce_logp`; drawn exactly
   by Gumbel-top-k, :func:`sample_plackett_luce`). Its log-probability is exact, so ``Sr(θ)`` is too.
4. **DAG.** Edge ``j → i`` (``j`` updated before ``i``) for every ``g^{ij} > 0`` with ``j`` before ``i`` in ``σ``:
   a spanning subgraph of the dependency graph that is acyclic by construction (every edge goes forward in
   ``σ``) — the "acyclic spanning subgraph" of §3.2.1 with ``σ`` choosing which direction of a mutual
   dependency survives.
5. **Batches.** The topological levels of the DAG (:func:`topological_levels`: level 0 for agents without
   predecessors, else one more than the deepest predecessor), updated level by level; agents on one level
   have no path between them. A jitted scan needs a static number of groups, so the levels are capped at
   ``num_batches``: agents deeper than the cap share the last batch (only their mutual order is lost), and
   levels the DAG does not reach are empty groups that the machinery skips.
6. **Reward and training, eqs. 6–8.** One decision per update (``T = rollout_length``): the decision taken
   on rollout ``k`` sets the batches of update ``k``, whose policy collects rollout ``k+1`` (with
   ``preceding_actions``: the batches rollout ``k+1`` is sampled with and update ``k+1`` uses); its reward is that
   rollout's ``r_{t:t+T} = Σ_{l<T} γ^l r̄_{t+l}`` (``r̄`` the mean reward over agents, averaged over all envs;
   the window spans episode boundaries, the upper layer's "episode" being training itself). At update
   ``k+1`` the transition ``(s_k, σ_k, r, s_{k+1})`` is complete and the upper layer takes ``update_epochs``
   PPO steps on it: ``Â^dag = r_{t:t+T} − V^dag(s_t)`` (eqs. 6–7 with ``h = 0``: one transition per update is
   all there is; eq. 7's bootstrap term is dropped, see below),
   ``L(θ) = −min(Sr Â, clip(Sr, 1 ± ε) Â) + c_1 KL̂(π_old‖π_θ)`` with the sampled-action estimate
   ``KL̂ = (Sr − 1) − log Sr`` (``c_1 = dag_kl_coef``), and the DAG critic regresses on ``r_{t:t+T}`` as
   eq. 8 states (without bootstrapping), in normalised units: it predicts ``(r − μ)/σ`` with ``μ, σ`` running
   statistics of the returns (``DAG_VALUE_NORM_BETA``), denormalised for ``Â^dag``. Eqs. 7 and 8 do not fit
   together: eq. 8's critic estimates the return of the next ``T`` steps only, and eq. 7's
   ``δ = r_{t:t+T} + γV(s_{t+T}) − V(s_t)`` then has mean ``≈ γV``, not 0 (on MPE spread, returns ≈ −17 per
   window: ``Â^dag`` ≈ −13.5 on every update, which lowers the probability of whatever ordering was drawn).
   trustmarl keeps eq. 8 and uses the advantage consistent with it, ``Â^dag = r_{t:t+T} − V^dag(s_t)``: each
   decision is judged by the window its batches were in force for. The DAG critic encodes every agent's
   observations (MLP + GRU), averages over agents and envs and maps to a value; it does not see the env's
   global state.
   The previous rollout's encoded-envs observations are kept in :class:`DagState` for the ratio.

Lower layer
-----------
π (the batch-by-batch policy) is the trainer's actor; the sequential machinery supplies eqs. 1 and 9–12.

**π^i reads the preceding batches' actions** (§4.2, ``preceding_actions``, B2MAPO's default): agent ``i`` in
batch ``b_k`` sees ``a^{B_k}``, the actions of the agents in batches before ``b_k``, as a block of ``A`` action
features (one-hot, or the Gaussian action vector) masked to those agents (:func:`preceding_mask`,
:func:`preceding_block`). π is MAPPO's actor on the agent's own input plus :class:`PrecedingActionShift`'s
term on the block (its parameters :class:`PrecedingParams`); with one batch the block is zero and π is
exactly MAPPO's actor. The rollout draws the joint action batch level by batch level
(:func:`sample_by_batches`: ``K`` actor passes per step) with the batches in force
(``DagState.groups``), and stores each agent's block as part of its input, so the update's ratios are those
of the policy that acted. For that, an update uses the batches its rollout was sampled with and the DAG
decided on that rollout takes effect from the next rollout on (without ``preceding_actions`` it takes effect
at once: nothing in the rollout depended on it).

**V^i reads them too** (§4.2, ``preceding_values``, B2MAPO's default): the paper's V^i "encodes the behavior
sequences a^{j∈B_k} of preceding batch agents and historical trajectory τ^i" and its values feed the GAE of
eq. 1, so agent ``i ∈ b_k``'s TD error is ``δ^i_t = r_t + γV^i(s_{t+1}, a^{B_k}_{t+1}) − V^i(s_t, a^{B_k}_t)``
and its advantage is that of its batch's action given the preceding batches' (the multi-agent advantage
decomposition the sequential update needs). V is MAPPO's critic plus the same kind of bias-free shift on
the same stored block, ``V(s, a^{B_k}) = V_base(s) + W_2 tanh(W_1 block)`` (zero block: exactly MAPPO's critic).
The bootstrap states ``s_T`` and the pre-reset final states have no sampled actions; rather than draw them
(``K`` more actor passes at every step for the final states), trustmarl values them by ``V(s, 0)`` and
trains ``V(s, 0)`` on the same λ-return wherever an agent had predecessors (:func:`preceding_value_loss`):
the target's mean given ``s`` is ``V^π(s) = E_{a^{B_k}∼π} V(s, a^{B_k})``, which is the value a bootstrap
needs, and ``V(s, 0)`` is also what the first batch reads, whose value is that of the state. Entries without
predecessors add nothing to the loss, so with one batch the critic's update is MAPPO's exactly.

**π_ind** has MAPPO's architecture (the trainer's actor on the agent's own input, a second parameter set),
is trained by eq. 13's loss ``E_t[Σ_i KL(π^i(·|o^i_t, a^{B_k}_t) ‖ π^i_ind(·|o^i_t))]`` (active entries, π fixed,
on the rollout's inputs) by Adam at ``ind_lr_scale × lr`` (the actor's schedule). The paper says π and π_ind are
"trained in parallel" and the KL minimised "periodically" (abstract, §3.2, §4.2) and gives no schedule; two are
implemented:

* ``ind_during`` (B2MAPO's default): one eq. 13 step fused into every minibatch step of π (every batch ``b_k``,
  epoch and minibatch of eqs. 10–12; :func:`ind_companion`): π's outputs on the minibatch, computed by π's own
  loss, enter the KL stop-gradient'ed, so one forward and backward pass gives π's gradient unchanged and
  π_ind's; π_ind tracks π through the update, one step behind it, and needs no pass of π of its own. Its
  cost is one forward and backward pass of π_ind per actor step, ``(non-empty batches) × update_epochs ×
  num_minibatches`` per update.
* ``ind_epochs`` passes after the update (the previous default, 10): the updated π's outputs computed once
  over the rollout, then ``ind_epochs`` passes over its minibatches; π_ind fits the π that will act next.
  Its cost is one pass of π and ``ind_epochs × num_minibatches`` steps of π_ind per update.

Both can be on (the passes after the fused steps). The measurements behind the default are in
docs/results.md ("B2MAPO's training time"). The paper also updates π_ind "by MAPPO" (§3.2, §4); trustmarl
trains it by eq. 13 alone: the rollouts are π's, so a MAPPO step for π_ind on them would be off-policy (its
ratio π_ind/π is not a behaviour ratio and is unbounded where the two differ), and it would need π_ind's own
critic V_ind; eq. 13 is the loss the paper writes down. Rollouts are collected by π; evaluation and execution use π_ind
(``trainer.policy_params``). With a GRU, π_ind's hidden state at the start of each rollout chunk is zero
(π's carried state is not π_ind's).
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.linen.initializers import constant

from trustmarl import losses as L
from trustmarl.networks import ResetGRU, orthogonal
from trustmarl.trust_region import categorical_kl, gaussian_kl


DAG_VALUE_NORM_BETA = 0.99  # EMA of the upper layer's return statistics, one sample per update (~100 updates)


# ---------------------------------------------------------------------------------------------------------
# pure pieces, tested on hand numbers
# ---------------------------------------------------------------------------------------------------------
def attention_weights(q: jax.Array, k: jax.Array) -> jax.Array:
    """Eq. 5 before the threshold: ``g^{ij} = softmax_j(q_i·k_j/√d_k)`` over all agents, then ``g^{ii} = 0``.
    ``q, k`` ``[..., A, d]`` → ``[..., A, A]`` (row ``i``: how much agent ``i`` depends on each other agent)."""
    d = q.shape[-1]
    g = jax.nn.softmax(jnp.einsum("...id,...jd->...ij", q, k) / np.sqrt(d), axis=-1)
    A = q.shape[-2]
    return g * (1.0 - jnp.eye(A, dtype=g.dtype))


def threshold_graph(g: jax.Array, delta: float) -> jax.Array:
    """Eq. 5's threshold: entries ``g^{ij} < δ`` set to 0."""
    return jnp.where(g < delta, 0.0, g)


def plackett_luce_logp(scores: jax.Array, perm: jax.Array) -> jax.Array:
    """``log P(σ) = Σ_k [s_{σ_k} − log Σ_{m≥k} exp(s_{σ_m})]`` of the ordering ``perm`` [A] under
    Plackett–Luce scores [A] (the upper layer's action probability, exact for PPO's ratio)."""
    x = scores[perm]
    return jnp.sum(x - jax.lax.cumlogsumexp(x, reverse=True))


def sample_plackett_luce(key: jax.Array, scores: jax.Array) -> jax.Array:
    """One Plackett–Luce ordering by Gumbel-top-k: ``σ = argsort(−(s + Gumbel))`` has exactly the law of
    drawing agents one by one without replacement with probabilities ``∝ exp s`` (Yellott 1977)."""
    return jnp.argsort(-(scores + jax.random.gumbel(key, scores.shape))).astype(jnp.int32)


def dag_edges(graph: jax.Array, perm: jax.Array) -> jax.Array:
    """The DAG kept from the dependency graph [A, A] (``graph[i, j] > 0``: ``i`` depends on ``j``) by the
    ordering ``perm``: ``edge[j, i]`` (``j`` before ``i``) iff ``graph[i, j] > 0`` and ``j`` precedes ``i`` in
    ``perm``. Acyclic because every edge goes forward in ``perm``."""
    A = perm.shape[0]
    pos = jnp.zeros((A,), jnp.int32).at[perm].set(jnp.arange(A, dtype=jnp.int32))
    return (graph.T > 0) & (pos[:, None] < pos[None, :])


def topological_levels(edges: jax.Array) -> jax.Array:
    """Longest-path levels of a DAG ``edges`` [A, A] (``edges[j, i]``: ``j → i``): ``level_i = 0`` without
    predecessors, else ``1 + max_{j→i} level_j`` (``A − 1`` relaxation sweeps reach it). Agents on one level
    have no path between them; every edge goes to a higher level. Returns ``[A]`` int32."""
    A = edges.shape[0]

    def sweep(_, level):
        return jnp.max(jnp.where(edges, level[:, None] + 1, 0), axis=0)

    return jax.lax.fori_loop(0, max(A - 1, 0), sweep, jnp.zeros((A,), jnp.int32))


def level_groups(levels: jax.Array, max_batches: int) -> jax.Array:
    """Batches [K, A] bool, K = ``max_batches``: row ``k`` holds the agents of level ``k``; levels ≥ K − 1 share
    the last row; rows past the deepest level are empty."""
    capped = jnp.minimum(levels, max_batches - 1)
    return jnp.arange(max_batches)[:, None] == capped[None, :]


def dag_ppo_loss(logp: jax.Array, logp_old: jax.Array, adv: jax.Array, clip_eps: float,
                 kl_coef: float) -> jax.Array:
    """The upper layer's PPO loss (§4.1): ``−min(Sr Â, clip(Sr, 1 ± ε) Â) + c_1 ((Sr − 1) − log Sr)``,
    ``Sr = exp(logp − logp_old)``; the last term is the sampled estimate of ``KL(π_old ‖ π_θ)``."""
    log_sr = logp - logp_old
    sr = jnp.exp(log_sr)
    surr = jnp.minimum(sr * adv, jnp.clip(sr, 1.0 - clip_eps, 1.0 + clip_eps) * adv)
    return -surr + kl_coef * ((sr - 1.0) - log_sr)


def derived_kl(out_pi: jax.Array, out_ind: jax.Array, avail: jax.Array, mask: jax.Array,
               discrete: bool) -> jax.Array:
    """Eq. 13: ``E_t[KL(π^i ‖ π^i_ind)]`` over the active entries ``mask`` [..., A], from the actors' outputs
    (masked logits [..., A, U], or mean ⊕ log-std [..., A, 2D]). The mean is over active (state, agent)
    entries, i.e. the per-agent losses of eq. 13 summed with equal weight."""
    if discrete:
        kl = categorical_kl(out_pi, out_ind, avail)
    else:
        mp, lp = jnp.split(out_pi, 2, axis=-1)
        mq, lq = jnp.split(out_ind, 2, axis=-1)
        kl = gaussian_kl(mp, lp, mq, lq)
    m = mask.astype(kl.dtype)
    return jnp.sum(kl * m) / jnp.maximum(jnp.sum(m), 1.0)


def window_return(reward: jax.Array, gamma: float) -> jax.Array:
    """``r_{t:t+T} = Σ_{l<T} γ^l r̄_{t+l}`` of a rollout ``reward`` [T, E, A] (``r̄`` the mean over agents),
    averaged over envs: the upper layer's reward for the decision that produced the policy which
    collected it."""
    T = reward.shape[0]
    disc = gamma ** jnp.arange(T, dtype=reward.dtype)
    return jnp.mean(jnp.einsum("t,te->e", disc, reward.mean(-1)))


# ---------------------------------------------------------------------------------------------------------
# the lower layer's conditioning on the preceding batches' actions (§4.2)
# ---------------------------------------------------------------------------------------------------------
def batch_of(groups: jax.Array) -> jax.Array:
    """The batch index of every agent from batches ``groups`` [K, A] bool (each agent in exactly one row)."""
    return jnp.argmax(groups, axis=0).astype(jnp.int32)


def preceding_mask(groups: jax.Array) -> jax.Array:
    """``[A, A]`` bool, ``m[i, j]``: agent ``j`` is in a batch before agent ``i``'s, i.e. ``j ∈ B_k`` for
    ``i ∈ b_k`` — whose actions ``π^i(·|τ^i, a^{B_k})`` reads (§4.2). Agents of one batch do not see each other,
    and the first batch sees nobody."""
    b = batch_of(groups)
    return b[None, :] < b[:, None]


def action_features(action: jax.Array, num_actions: int, discrete: bool) -> jax.Array:
    """What a preceding agent's action contributes to the block: its one-hot ``[..., A, U]`` (discrete), or the
    action vector ``[..., A, D]`` itself (Gaussian)."""
    if discrete:
        return jax.nn.one_hot(action, num_actions, dtype=jnp.float32)
    return action.astype(jnp.float32)


def preceding_block(features: jax.Array, mask: jax.Array) -> jax.Array:
    """Agent ``i``'s view of the others' actions: ``block[..., i, j·F:(j+1)·F] = m[i, j] · f[..., j, :]`` for
    ``features`` ``[..., A, F]`` and :func:`preceding_mask` ``m`` → ``[..., A, A·F]`` (zero where ``j`` is not
    in a preceding batch)."""
    A, F = features.shape[-2:]
    x = mask.astype(features.dtype)[..., :, :, None] * features[..., None, :, :]
    return x.reshape(features.shape[:-2] + (A, A * F))


def sample_by_batches(policy_pass: Callable, groups: jax.Array, features: Callable, block_width: int,
                      lead: tuple):
    """Sample the joint action batch level by batch level: pass ``k`` evaluates the policy of every agent on
    the block of the actions drawn so far and keeps the draws of batch ``k``'s agents; ``K`` passes (``K`` =
    rows of ``groups``) in all.

    ``policy_pass(block [*lead, A, A·F]) -> (hidden, out, action)`` (all ``[*lead, A, ...]``); ``features``:
    :func:`action_features` of an action array. Agent ``i`` of batch ``k`` sees only batches ``< k``, whose
    draws are final by pass ``k``, so its output and hidden state are taken from pass ``k`` and its input
    block equals the block built from the final joint action, which is returned as the stored input.
    Returns ``(hidden, out, action, block)``."""
    K, A = groups.shape
    mask = preceding_mask(groups)
    b = batch_of(groups)
    hidden, out, action = policy_pass(jnp.zeros(lead + (A, block_width)))
    for k in range(1, K):  # K is static and small (B2MAPO: at most num_batches levels)
        h_k, out_k, a_k = policy_pass(preceding_block(features(action), mask))
        sel = b == k

        def pick(new, old):
            return jnp.where(sel.reshape((A,) + (1,) * (new.ndim - len(lead) - 1)), new, old)
        hidden, out, action = pick(h_k, hidden), pick(out_k, out), pick(a_k, action)
    return hidden, out, action, preceding_block(features(action), mask)


def has_preceding(block: jax.Array) -> jax.Array:
    """``[..., A]`` bool: the agent's stored block is non-zero, i.e. it had preceding batches when it acted (a
    Gaussian action vector of exact zeros is indistinguishable from none, a measure-zero event)."""
    return jnp.any(block != 0, axis=-1)


def preceding_value_loss(per: jax.Array, per_zero: jax.Array, mask: jax.Array, preceded: jax.Array) -> jax.Array:
    """The critic's loss when ``V^i`` reads the preceding batches' actions (§4.2, ``preceding_values``)::

        [Σ_{active} ℓ(R, V(s, a^{B_k})) + Σ_{active, preceded} ℓ(R, V(s, 0))] / #active

    ``per``: per-entry loss of the value on the stored block; ``per_zero``: of the value on a zero block,
    against the same λ-return ``R``; ``mask`` the active entries; ``preceded`` :func:`has_preceding`. The second
    sum makes ``V(s, 0)`` — what the first batch reads — a value of the state alone for every agent (its
    target's mean given ``s`` is ``V^π(s)``), so the bootstrap states, which have no sampled actions, are
    valued by it (``E_{a^{B_k}∼π} V(s, a^{B_k}) = V(s)``). Entries without predecessors add nothing, so with one
    batch this is the critic loss without the block, exactly."""
    m = mask.astype(per.dtype)
    extra = (mask & preceded).astype(per.dtype)
    return (jnp.sum(per * m) + jnp.sum(per_zero * extra)) / jnp.maximum(jnp.sum(m), 1.0)


class PrecedingParams(NamedTuple):
    """π's parameters when it reads the preceding batches' actions: MAPPO's actor (``base``, on the agent's
    own input) and :class:`PrecedingActionShift` (``shift``)."""

    base: Any
    shift: Any


class PrecedingActionShift(nn.Module):
    """The preceding batches' actions' term of π's output: ``Δ = W_2 tanh(W_1 a^{B_k})`` with no biases, added to
    the actor head's logits (discrete) or mean (Gaussian). The paper passes the encoded action sequence and
    ``τ^i`` through a softmax layer (§4.2); a linear layer on their concatenation is ``head(τ^i) + W_2 enc(a)``,
    which is this with ``enc = tanh(W_1 ·)``. Without biases a zero block (the first batch, or one batch) gives
    ``Δ = 0`` and zero gradients to ``W_1, W_2``, so π is then exactly MAPPO's actor. Signature of a trainer
    network (hidden passed through, ``x`` = own input ⊕ block)."""

    own_dim: int
    out: int
    hidden: int

    @nn.compact
    def __call__(self, hidden, x, resets):
        block = x[..., self.own_dim:]
        enc = nn.tanh(nn.Dense(self.hidden, use_bias=False, kernel_init=orthogonal(np.sqrt(2)))(block))
        return hidden, nn.Dense(self.out, use_bias=False, kernel_init=orthogonal(0.01))(enc)


# ---------------------------------------------------------------------------------------------------------
# networks
# ---------------------------------------------------------------------------------------------------------
class _Encoder(nn.Module):
    """MLP then GRU over each (env, agent) sequence: ``x`` [T, E, A, D], ``resets`` [T, E] → ``τ`` [E, A, H]."""

    hidden: int

    @nn.compact
    def __call__(self, x, resets):
        T, E, A, _ = x.shape
        emb = nn.tanh(nn.Dense(self.hidden, kernel_init=orthogonal(np.sqrt(2)), bias_init=constant(0.0))(x))
        r = jnp.broadcast_to(resets[:, :, None], (T, E, A)).reshape(T, E * A)
        h, _ = ResetGRU(self.hidden)(jnp.zeros((E * A, self.hidden)), emb.reshape(T, E * A, self.hidden), r)
        return h.reshape(E, A, self.hidden)


class DagOutput(NamedTuple):
    graph: jax.Array  # [A, A] thresholded dependency graph G_T (eq. 5), averaged over envs
    scores: jax.Array  # [A] Plackett–Luce scores


class DagGenerator(nn.Module):
    """Encoder, eq. 5's attention with threshold δ, ``Z = MLP(v^i + Σ_j g^{ij} v^j)``, one score per agent."""

    hidden: int
    threshold: float

    @nn.compact
    def __call__(self, x, resets) -> DagOutput:
        tau = _Encoder(self.hidden)(x, resets)
        dense = lambda name: nn.Dense(self.hidden, use_bias=False, name=name)  # noqa: E731
        q, k, v = dense("W_q")(tau), dense("W_k")(tau), dense("W_v")(tau)
        graph = threshold_graph(attention_weights(q, k).mean(0), self.threshold)
        # v^i + Σ_j g^{ij} v^j: the residual keeps the agent's own trajectory in its score when δ removes
        # every edge (a graph of zeros alone would give all agents one score, and the upper layer no gradient)
        z = nn.tanh(nn.Dense(self.hidden, kernel_init=orthogonal(np.sqrt(2)))(
            v + jnp.einsum("ij,ejh->eih", graph, v)))
        scores = nn.Dense(1, kernel_init=orthogonal(0.01), bias_init=constant(0.0))(z)[..., 0]
        return DagOutput(graph, scores.mean(0))


class DagCritic(nn.Module):
    """V^dag: the agents' encoded trajectories averaged over agents, an MLP, one value (mean over envs)."""

    hidden: int

    @nn.compact
    def __call__(self, x, resets):
        tau = _Encoder(self.hidden)(x, resets).mean(1)
        h = nn.tanh(nn.Dense(self.hidden, kernel_init=orthogonal(np.sqrt(2)))(tau))
        return nn.Dense(1, kernel_init=orthogonal(1.0))(h)[..., 0].mean()


# ---------------------------------------------------------------------------------------------------------
# state and the update
# ---------------------------------------------------------------------------------------------------------
class DagState(NamedTuple):
    """What B2MAPO's order learns and remembers between updates (the learner state's ``order`` field)."""

    gen_params: Any  # DAG generator (upper-layer policy)
    critic_params: Any  # DAG critic V^dag
    gen_opt: Any
    critic_opt: Any
    prev_in: jax.Array  # [T, E', A, D] the encoded envs' actor inputs of the rollout the last decision saw
    prev_reset: jax.Array  # [T, E'] their episode-start flags
    prev_perm: jax.Array  # [A] int32 the last decision σ
    prev_logp: jax.Array  # () its log-probability when drawn
    has_prev: jax.Array  # () bool: a decision has been taken (false before the first update)
    groups: jax.Array  # [K, A] bool the batches of the current update (topological levels)
    ind_params: Any  # π_ind, MAPPO's architecture (eq. 13)
    ind_opt: Any
    critic_norm: Any = None  # losses.ValueNormState of the T-step returns V^dag regresses on (normalised targets)

    @property
    def execution_params(self):
        """The parameters evaluation and execution act with: π_ind's."""
        return self.ind_params


def _all_finite(tree) -> jax.Array:
    """Whether every entry of every leaf of ``tree`` is finite (a scalar bool)."""
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


class Companion(NamedTuple):
    """A second parameter set trained inside the actor's minibatch steps (``OnPolicyTrainer.actor_step``'s
    ``companion``): its loss reads π's outputs on the minibatch, stop-gradient'ed, so one forward and backward
    pass gives π's gradient unchanged and the companion's. B2MAPO's π_ind under ``ind_during``
    (:func:`ind_companion`)."""

    params: Callable[[Any], Any]  # learner -> φ
    loss: Callable[[Any, jax.Array, Any], tuple[jax.Array, dict]]  # (φ, π's outputs (fixed), minibatch) -> (ℓ, m)
    step: Callable[[Any, Any], tuple[Any, dict]]  # (learner, ∇_φ ℓ) -> (learner with φ stepped, metrics)


class DagPieces(NamedTuple):
    """What :func:`dag_order` needs beyond the update order's pieces, supplied by the trainer."""

    policy_out: Callable[[Any, Any], jax.Array]  # (actor params, batch) -> actor outputs [T, B, A, ·]
    init_actor: Callable[[jax.Array], Any]  # key -> fresh actor parameters (π_ind)
    actor_opt: Any  # the actor's optimiser (AgentOptimiser): the upper layer uses its unshared form
    ind_opt: Any  # π_ind's optimiser (eq. 13): the actor's, learning rate × ind_lr_scale
    discrete: bool
    input_dim: int  # actor input width D
    rollout_length: int  # T
    num_envs: int  # E
    hidden: int  # width of the upper layer's encoders


def _dag_envs(o, d: DagPieces) -> int:
    return max(1, min(o.dag_envs, d.num_envs))


def init_dag_state(p, d: DagPieces, key: jax.Array) -> DagState:
    """Fresh upper layer (generator, critic, optimisers), empty previous decision, π_ind initialised."""
    from trustmarl.trainers.optim import AgentOptimiser
    o = p.options
    k_gen, k_crit, k_ind = jax.random.split(key, 3)
    E = _dag_envs(o, d)
    x = jnp.zeros((d.rollout_length, E, p.num_agents, d.input_dim))
    r = jnp.zeros((d.rollout_length, E), bool)
    gen_params = DagGenerator(d.hidden, o.dag_threshold).init(k_gen, x, r)
    critic_params = DagCritic(d.hidden).init(k_crit, x, r)
    opt = AgentOptimiser(d.actor_opt.tx, False, d.actor_opt.lr)
    ind_params = d.init_actor(k_ind)
    A = p.num_agents
    return DagState(gen_params, critic_params, opt.init(gen_params), opt.init(critic_params), x, r,
                    jnp.arange(A, dtype=jnp.int32), jnp.zeros(()), jnp.zeros((), bool),
                    level_groups(jnp.zeros((A,), jnp.int32), min(o.num_batches, A)),
                    ind_params, d.ind_opt.init(ind_params), L.value_norm_init())


def ind_companion(p, d: DagPieces) -> Companion:
    """π_ind's eq. 13 fused into the lower layer's actor steps (``ind_during``): on every minibatch step of π
    (every batch ``b_k``, epoch and minibatch of eqs. 10–12), π_ind takes one step of
    ``E_t[Σ_i KL(π^i(·|o^i_t, a^{B_k}_t) ‖ π^i_ind(·|o^i_t))]`` on that minibatch's active entries of every agent,
    with π's outputs as they are at that step (computed by π's own loss, stop-gradient'ed), by π_ind's optimiser
    (``ind_lr_scale × lr``). π_ind's input is the agent's own input with a zero carried GRU state, as in the
    passes after the update."""
    everyone = jnp.ones((p.num_agents,), bool)

    def loss(phi, out_pi, mb):
        out_ind = d.policy_out(phi, mb._replace(actor_h=jnp.zeros_like(mb.actor_h)))
        kl = derived_kl(out_pi, out_ind, mb.avail, p.mask(mb), d.discrete)
        return kl, {"derived_kl": jax.lax.stop_gradient(kl)}

    def step(learner, g):
        st = learner.order
        finite = _all_finite(g)
        params, opt_state = d.ind_opt.step(st.ind_params, st.ind_opt, g, learner.updates, everyone)
        return (learner._replace(order=st._replace(ind_params=params, ind_opt=opt_state)),
                {"derived_grads_finite": finite})

    return Companion(lambda learner: learner.order.ind_params, loss, step)


def dag_order(p, d: DagPieces, inner: Callable):
    """B2MAPO's update (see the module docstring): the upper layer's PPO step on the transition the last
    decision completed, a new decision on this rollout (its batches go to ``inner``, the sequential
    machinery, through ``learner.order.groups``, with π_ind's eq. 13 steps fused into its actor steps when
    ``ind_during``), then π_ind's ``ind_epochs`` passes of eq. 13 after it. Returns the update function."""
    from trustmarl.trainers.optim import AgentOptimiser
    o = p.options
    K = min(o.num_batches, p.num_agents)
    gen = DagGenerator(d.hidden, o.dag_threshold)
    critic = DagCritic(d.hidden)
    opt = AgentOptimiser(d.actor_opt.tx, False, d.actor_opt.lr)
    everyone = jnp.ones((p.num_agents,), bool)

    def upper_update(st: DagState, x, resets, reward, updates):
        """PPO on ``(prev state, prev σ, r_{t:t+T} of this rollout, this state)`` (eqs. 6–8); no change
        before the first decision."""
        ret = window_return(reward, o.gamma)
        # V^dag predicts normalised returns (running mean and std of r_{t:t+T}, one per update, β = 0.99):
        # unnormalised, a critic fitted on one transition per update at the actor's learning rate stayed far
        # from the return's scale for the whole of a 150-update run and its bias was the advantage
        norm = L.value_norm_update(st.critic_norm, ret, DAG_VALUE_NORM_BETA)
        v_prev = L.denormalize(norm, critic.apply(st.critic_params, st.prev_in, st.prev_reset))
        # eq. 8's V^dag is the value of the next T steps (no bootstrap), so the advantage that matches it is
        # r_{t:t+T} − V^dag(s_t); eq. 7's extra γV^dag(s_{t+T}) would have mean ≈ γV, not 0 (see the docstring)
        adv = jax.lax.stop_gradient(ret - v_prev)
        target = L.normalize(norm, ret)

        def gen_loss(params):
            scores = gen.apply(params, st.prev_in, st.prev_reset).scores
            return dag_ppo_loss(plackett_luce_logp(scores, st.prev_perm), st.prev_logp, adv, p.clip_eps,
                                o.dag_kl_coef)

        def crit_loss(params):
            return (target - critic.apply(params, st.prev_in, st.prev_reset)) ** 2

        def epoch(carry, _):
            gp, go, cp, co = carry
            gl, gg = jax.value_and_grad(gen_loss)(gp)
            gp2, go2 = opt.step(gp, go, gg, updates, everyone)
            cl, cg = jax.value_and_grad(crit_loss)(cp)
            cp2, co2 = opt.step(cp, co, cg, updates, everyone)
            return (gp2, go2, cp2, co2), (gl, cl)

        (gp, go, cp, co), (gl, cl) = jax.lax.scan(
            epoch, (st.gen_params, st.gen_opt, st.critic_params, st.critic_opt), None, p.epochs)
        keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(st.has_prev, a, b), new, old)  # noqa
        st = st._replace(gen_params=keep(gp, st.gen_params), gen_opt=keep(go, st.gen_opt),
                         critic_params=keep(cp, st.critic_params), critic_opt=keep(co, st.critic_opt),
                         critic_norm=norm)
        nan = jnp.asarray(jnp.nan)
        return st, {"dag_policy_loss": jnp.where(st.has_prev, gl.mean(), nan),
                    "dag_value_loss": jnp.where(st.has_prev, cl.mean(), nan),
                    "dag_advantage": jnp.where(st.has_prev, adv, nan), "dag_return": ret}

    def distill(learner, batch, key):
        """``ind_epochs`` passes over the minibatches of eq. 13's loss for π_ind against the updated π."""
        st = learner.order
        b = batch._replace(actor_h=jnp.zeros_like(batch.actor_h))  # π_ind's own (zero) carried state
        # the updated π is fixed during distillation: its outputs, computed once over the rollout, ride in the
        # batch's ``dist`` field through the shuffles (not once per minibatch step: ind_epochs·M passes of π)
        b = b._replace(dist=jax.lax.stop_gradient(d.policy_out(learner.actor_params, b)))

        def step(carry, mb):
            params, opt_state = carry
            mask = p.mask(mb)
            loss, g = jax.value_and_grad(
                lambda q: derived_kl(mb.dist, d.policy_out(q, mb), mb.avail, mask, d.discrete))(params)
            finite = _all_finite(g)
            params, opt_state = d.ind_opt.step(params, opt_state, g, learner.updates, everyone)
            return (params, opt_state), (loss, finite)

        def epoch(carry, k):
            return jax.lax.scan(step, carry, p.minibatches(b, k))

        (params, opt_state), (losses, finite) = jax.lax.scan(epoch, (st.ind_params, st.ind_opt),
                                                             jax.random.split(key, o.ind_epochs))
        return learner._replace(order=st._replace(ind_params=params, ind_opt=opt_state)), losses, finite

    def update(learner, batch, key, trace):
        st: DagState = learner.order
        E = _dag_envs(o, d)
        # the agents' own inputs (π's input without the preceding actions' block)
        x, resets = batch.actor_in[:, :E, :, :d.input_dim], batch.reset[:, :E]
        st, upper_metrics = upper_update(st, x, resets, trace.reward, learner.updates)
        out = gen.apply(st.gen_params, x, resets)
        perm = sample_plackett_luce(jax.random.fold_in(key, 5), out.scores)
        groups = level_groups(topological_levels(dag_edges(out.graph, perm)), K)
        decided = dict(prev_in=x, prev_reset=resets, prev_perm=perm, prev_logp=plackett_luce_logp(out.scores, perm),
                       has_prev=jnp.ones((), bool), groups=groups)
        if o.preceding_actions:
            # π's inputs in this rollout were built from the batches in force while it was sampled: this update
            # must use those batches (a batch's agents then read exactly the batches updated before them); the
            # new decision takes effect from the next rollout on, for its sampling and its update
            learner, (metrics, tr) = inner(learner._replace(order=st), batch, key, trace)
            learner = learner._replace(order=learner.order._replace(**decided))
            used = st.groups
        else:
            learner, (metrics, tr) = inner(learner._replace(order=st._replace(**decided)), batch, key, trace)
            used = groups
        one = lambda v: jnp.reshape(v, (1, 1))  # noqa: E731  the [passes, minibatches] layout of metrics
        extra = {k: one(v) for k, v in upper_metrics.items()}
        if o.ind_during:
            # the fused steps' KL, [batches·epochs, minibatches], NaN where a batch did not run (a genuine NaN
            # also makes that step's gradient NaN, which derived_grads_finite, already in metrics, reports)
            extra["derived_kl"] = one(jnp.nanmean(metrics.pop("derived_kl")))
        if o.ind_epochs > 0:
            learner, kl, kl_finite = distill(learner, batch, jax.random.fold_in(key, 6))
            extra["derived_kl"] = kl  # the passes after the update: the fit to the updated π
            # folded into the trainer's "nonfinite" flags (with ind_during, together with the fused steps')
            extra["derived_grads_finite"] = kl_finite if not o.ind_during else one(
                jnp.all(kl_finite) & jnp.all(metrics.pop("derived_grads_finite")))
        extra["dag_batches"] = one(jnp.sum(used.any(-1)).astype(jnp.float32))
        extra["dag_edges"] = one(jnp.sum(dag_edges(out.graph, perm)).astype(jnp.float32))
        return learner, ({**metrics, **extra}, tr)

    return update

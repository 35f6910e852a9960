"""The on-policy trainer (PPO family): ``make_train(config) -> train(rng)``, pure and jitted with the env.

Layout everywhere: ``[T time, E env, A agent, ...]``. Data flow of one update (:meth:`OnPolicyTrainer.update`):

1. **rollout** — ``lax.scan`` over T steps of :meth:`OnPolicyTrainer.act` (the one public policy step, also
   used by the host path and evaluation) and the env, batched over E envs; the critic is not run here;
2. **critic pass** — one batched pass over the rollout gives ``V(s_t)``, the value of every pre-reset final
   state (bootstrap at truncations) and ``V(s_T)``; its input comes from the critic-input seam;
3. **advantages** — the advantage seam (``algo.advantage``, GAE);
4. **update order** — the update-order seam (``algo.update_order``) runs epochs × minibatches of
   ``actor_step`` (ratio seam × the order's factor → surrogate seam, one optimiser per agent stack) and
   ``critic_step``;
5. **measurements** — the trust region the update enforced (:mod:`trustmarl.trust_region`) per epoch;
6. **metrics** — the declared schema (:data:`METRIC_SCHEMA`).

Nothing in this file branches on the algorithm: the seams are looked up once in ``__init__``.
"""
from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp

from trustmarl import losses as L
from trustmarl import trust_region as TR
from trustmarl.algos import ALGORITHMS
from trustmarl.config import Config, ConfigError, Derived
from trustmarl.envs import AdapterState, Timestep
from trustmarl.networks import Actor, AgentNets, Critic, apply_agents, apply_rows, distribution, init_agents
from trustmarl.seams.advantages import ADVANTAGES, team_advantage
from trustmarl.seams.critic_inputs import CRITIC_INPUTS, critic_input_dim, with_agent_id
from trustmarl.seams.surrogates import OBJECTIVES, ObjectiveInputs, masked_share
from trustmarl.seams.dag import (Companion, DagPieces, PrecedingActionShift, PrecedingParams, action_features,
                                 has_preceding, preceding_value_loss, sample_by_batches)
from trustmarl.seams.update_orders import UPDATE_ORDERS, SequentialOptions, UpdatePieces, init_order_state
from trustmarl.trainers.optim import AgentOptimiser, linear_anneal
from trustmarl.trainers.protocol import MetricSpec


# ---------------------------------------------------------------------------------------------------------
# typed state
# ---------------------------------------------------------------------------------------------------------
class Transition(NamedTuple):
    """One rollout, ``[T, E, ...]``; agent fields ``[T, E, A, ...]``."""

    actor_in: jax.Array  # [T,E,A,D] actor input (obs ⊕ optional id)
    critic_in: jax.Array  # [T,E,A,C]
    final_critic_in: Any  # [T,E,A,C] pre-reset critic input of the state step t reached, or None
    avail: jax.Array  # [T,E,A,U] bool
    action: jax.Array  # [T,E,A] int or [T,E,A,D]
    logp: jax.Array  # [T,E,A] behaviour log-prob of the action
    dist: jax.Array  # [T,E,A,U] behaviour logits, or [T,E,A,2D] mean ⊕ log-std
    reward: jax.Array  # [T,E,A]
    active: jax.Array  # [T,E,A] bool, agent alive at obs_t
    reset: jax.Array  # [T,E] bool, obs_t starts an episode; [T,E,A] per agent unless done_scope=env
    terminated: jax.Array  # [T,E] bool
    truncated: jax.Array  # [T,E] bool
    ep_done: jax.Array  # [T,E] bool, an episode finished at step t
    ep_return: jax.Array  # [T,E] finished episode's return (valid where ep_done)
    ep_length: jax.Array  # [T,E]
    ep_won: jax.Array  # [T,E]


class RunnerState(NamedTuple):
    env_state: AdapterState  # batched over E (None on the host path)
    timestep: Timestep  # last timestep, batched over E
    reset: jax.Array  # [E] bool, the current obs starts an episode ([E,A] per agent unless done_scope=env)
    actor_h: jax.Array  # [E,A,H]
    critic_h: jax.Array  # [E,A,H]


class LearnerState(NamedTuple):
    actor_params: Any
    critic_params: Any
    actor_opt: Any
    critic_opt: Any
    value_norm: L.ValueNormState
    updates: jax.Array  # int32, updates this learner has done (drives the learning-rate schedule)
    order: Any = None  # what the update order learns and keeps (B2MAPO: seams.dag.DagState), else None


class TrainState(NamedTuple):
    learner: LearnerState
    runner: RunnerState
    rng: jax.Array
    update: jax.Array  # int32, updates done


class PolicyStep(NamedTuple):
    """What :meth:`OnPolicyTrainer.act` returns; agent fields ``[E, A, ...]``."""

    hidden: jax.Array  # [E,A,H] the actor's next hidden state
    action: jax.Array  # [E,A] int or [E,A,D] (unclipped Gaussian sample)
    logp: jax.Array  # [E,A]
    dist: jax.Array  # [E,A,·] logits, or mean ⊕ log-std
    actor_in: Optional[jax.Array] = None  # [E,A,D+A·F] the input π acted on, when it read preceding actions


class Batch(NamedTuple):
    """What the losses see; layout ``[T', B', A, ...]`` (FF: T'=1, B' = env-steps; GRU: T'=T, B' = envs)."""

    actor_in: jax.Array
    critic_in: jax.Array
    avail: jax.Array
    action: jax.Array
    logp: jax.Array
    dist: jax.Array
    active: jax.Array
    reset: jax.Array  # [T', B'], or [T', B', A] unless done_scope=env
    value: jax.Array  # [T',B',A] old value (network space: normalised when value_norm)
    target: jax.Array  # [T',B',A] λ-return, un-normalised
    adv: jax.Array  # [T',B',A] normalised advantage per agent
    adv_joint: jax.Array  # [T',B'] centralised advantage (mean over active agents)
    actor_h: jax.Array  # [B',A,H] hidden at the start of the sequence
    critic_h: jax.Array
    factor: Optional[jax.Array] = None  # [T',B',A] weight on the surrogate (update order; None: 1)
    inner: Optional[jax.Array] = None  # [T',B',A] factor inside the clipped ratio (update order; None: 1)


class TraceInputs(NamedTuple):
    """What an update order needs to re-estimate advantages off-policy (B2MAPO eq. 1), ``[T, E, ...]``."""

    deltas: jax.Array  # [T,E,A] TD errors r + γ(1 − term)V' − V (un-normalised values)
    episode_end: jax.Array  # [T,E,1] termination or truncation at step t
    reward: Optional[jax.Array] = None  # [T,E,A] the rollout's rewards (B2MAPO's upper-layer return)


# Metrics of one update, by name: shape kind and meaning. "agent" = [A], "epoch" = [epochs, ...].
METRIC_SCHEMA: dict[str, MetricSpec] = {
    "return_mean": MetricSpec("scalar", "mean team return of the episodes that ended in the rollout"),
    "episode_length": MetricSpec("scalar", "mean length of those episodes"),
    "episodes": MetricSpec("scalar", "episodes that ended in the rollout"),
    "reward_mean": MetricSpec("scalar", "mean reward per agent-step"),
    "win_rate": MetricSpec("scalar", "fraction of ended episodes won (envs with a win flag)"),
    "policy_loss": MetricSpec("scalar", "policy loss, mean over minibatch steps"),
    "value_loss": MetricSpec("scalar", "critic loss before the coefficient, mean over minibatch steps"),
    "ratio_min": MetricSpec("agent", "smallest sampled-action ratio over the update"),
    "ratio_mean": MetricSpec("agent", "mean sampled-action ratio"),
    "ratio_max": MetricSpec("agent", "largest sampled-action ratio over the update"),
    "clip_frac": MetricSpec("agent", "fraction of entries whose gradient the clip removed"),
    "approx_kl": MetricSpec("agent", "k3 estimate of KL(old‖new) on sampled actions"),
    "entropy": MetricSpec("agent", "policy entropy"),
    "explained_variance": MetricSpec("agent", "1 − Var[target − V]/Var[target]"),
    "tr/*": MetricSpec("epoch", "trust-region measurements per epoch (trust_region.UpdateMeasures): tv_<i>, sum_tv "
                       "exact for categorical and 1-D Gaussian actions, a Monte-Carlo estimate for multi-D Gaussians "
                       "(16 draws per state, standard error <= 1/(2 sqrt(16 n)) over n states); joint_tv_bound is the "
                       "union bound and joint_tv_coupling the product-coupling bound, not the joint TV; joint_tv_mc "
                       "the one-sample estimate from the rollout's joint actions; joint_tv_exact NaN in training"),
    "preceding_factor_min": MetricSpec("scalar", "sequential orders: smallest product of the preceding agents' "
                                       "ratios over the update's groups (1 for the first group)"),
    "preceding_factor_mean": MetricSpec("scalar", "sequential orders: its mean over active steps and groups"),
    "preceding_factor_max": MetricSpec("scalar", "sequential orders: its largest value"),
    "dag_batches": MetricSpec("scalar", "B2MAPO: batches (non-empty topological levels, capped) of this update"),
    "dag_edges": MetricSpec("scalar", "B2MAPO: edges of the DAG the upper layer kept"),
    "dag_return": MetricSpec("scalar", "B2MAPO: the rollout's r_{t:t+T}, the upper layer's reward (eq. 7)"),
    "dag_advantage": MetricSpec("scalar", "B2MAPO: the upper layer's advantage (eqs. 6-7; NaN at update 1)"),
    "dag_policy_loss": MetricSpec("scalar", "B2MAPO: the upper layer's PPO loss, mean over its epochs"),
    "dag_value_loss": MetricSpec("scalar", "B2MAPO: the DAG critic's loss (eq. 8)"),
    "derived_kl": MetricSpec("scalar", "B2MAPO: eq. 13's KL(pi || pi_ind), mean over pi_ind's steps of the update "
                             "(the passes after it when ind_epochs > 0, else the steps fused into the actor's)"),
    "nonfinite": MetricSpec("scalar", "0, or the sum of NONFINITE_BITS of the kinds of values that were "
                            "NaN/inf in this update (1 env outputs, 2 losses, 4 gradients, 8 parameters)"),
}


class OnPolicyTrainer:
    """The static pieces (env, networks, optimisers, chosen seams) and the pure functions built on them.

    Calling the trainer, ``trainer(rng)``, is the pure ``train(rng)`` of the purejaxrl pattern. The
    public surface is the trainer protocol (:class:`trustmarl.trainers.protocol.Trainer`).
    """

    family = "on_policy"
    metric_schema = METRIC_SCHEMA

    def __init__(self, config: Config, env=None):
        """``env``: an already-built environment with a ``spec`` (e.g. a host vector env or a user's adapted
        JaxMARL env); default: the registry's env named by ``config.env``."""
        from trustmarl.envs.from_config import build_env
        self.config = c = config
        self.algo = ALGORITHMS[c.algo]
        self.env = env if env is not None else build_env(c)
        self.spec = spec = self.env.spec
        if hasattr(self.env, "compute_state"):
            self.env.compute_state = c.critic_input == "global"
        if c.done_scope != "env":
            if getattr(getattr(self.env, "hooks", None), "alive", None) is None:
                raise ConfigError(f"done_scope={c.done_scope!r} needs per-agent deaths, which env={c.env!r} does "
                                  f"not report (no EnvHooks.alive); allowed: done_scope=env")
            # the agent's own done at an episode's end is read from the state before the auto-reset
            self.env.keep_final_active = c.done_scope == "agent"
        self.num_agents = A = spec.num_agents
        self.derived: Derived = c.derived(A)
        self.num_updates = self.derived.num_updates
        self.recurrent = c.network == "gru"
        self.hidden_size = c.hidden[-1] if self.recurrent else 1
        self.own_in_dim = spec.obs_dim + (A if c.agent_id else 0)  # the agent's own input: obs ⊕ id
        # B2MAPO §4.2: π also reads the preceding batches' actions, a block of A action features
        self.action_feature_dim = spec.num_actions  # one-hot (discrete) or the action vector
        self.preceding_actions = c.preceding_actions
        self.actor_in_dim = self.own_in_dim + (A * self.action_feature_dim if c.preceding_actions else 0)
        self.critic_in_dim = critic_input_dim(c.critic_input, spec.obs_dim, spec.state_dim, A, c.agent_id)
        actor = Actor(num_actions=spec.num_actions, discrete=spec.discrete, hidden=c.hidden,
                      recurrent=self.recurrent, activation=c.activation, layer_norm_input=c.layer_norm_input,
                      precision=c.precision, post_gru_gain=c.post_gru_gain)
        entities = 0
        if c.critic_input == "attention":  # MA-PPO's attention critic over every agent's observation
            entities = A
            if c.hidden[0] % c.attention_heads:
                raise ConfigError(f"attention_heads={c.attention_heads} must divide the attention width "
                                  f"hidden[0]={c.hidden[0]} (critic_input=attention)")
            if c.precision != "float32":
                raise ConfigError(f"precision={c.precision!r} is not wired into the attention critic; allowed with "
                                  f"critic_input=attention: float32")
        critic = Critic(hidden=c.hidden, recurrent=self.recurrent, activation=c.activation,
                        layer_norm_input=c.layer_norm_input, precision=c.precision, entities=entities,
                        heads=c.attention_heads, post_gru_gain=c.post_gru_gain)
        self.actor = AgentNets(actor, c.share_params, A, self.hidden_size)
        self.shift_net = AgentNets(PrecedingActionShift(self.own_in_dim, spec.num_actions, c.hidden[-1]),
                                   c.share_params, A, self.hidden_size)
        self.critic = AgentNets(critic, c.share_params, A, self.hidden_size)
        # B2MAPO §4.2, preceding_values: V^i reads the same block as π^i, through a shift of its own on the value
        self.preceding_values = c.preceding_values
        self.critic_shift_net = AgentNets(PrecedingActionShift(0, 1, c.hidden[-1]), c.share_params, A,
                                          self.hidden_size)
        per_agent = not c.share_params
        self.actor_opt = AgentOptimiser.make(c.max_grad_norm, c.adam_eps,
                                             linear_anneal(c.lr, self.num_updates, c.anneal_lr), per_agent)
        self.critic_opt = AgentOptimiser.make(c.max_grad_norm, c.adam_eps, linear_anneal(
            self.derived.critic_lr, self.num_updates, c.anneal_lr), per_agent)
        # the seams, chosen once
        self.advantage = ADVANTAGES[self.algo.advantage]
        self.objective = OBJECTIVES[c.ratio]
        self.critic_input = CRITIC_INPUTS[c.critic_input]
        if c.no_clip:
            self.clip_low, self.clip_high = -jnp.inf, jnp.inf
        else:
            self.clip_low, self.clip_high = TR.clip_bounds(self.derived.clip_eps, c.clip_kind)
        self.value_clip = None if not c.value_clip else self.derived.value_clip_eps
        options = SequentialOptions(
            preceding_factor=c.preceding_factor, preceding_clip=c.preceding_clip,
            clip_schedule_weight=c.clip_schedule_weight, trace_correction=c.trace_correction,
            trace_lambda_twice=c.trace_lambda_twice, num_batches=c.num_batches, batch_partition=c.batch_partition,
            batch_order=c.batch_order, dag_threshold=c.dag_threshold, dag_kl_coef=c.dag_kl_coef,
            dag_envs=c.dag_envs, ind_epochs=c.ind_epochs, ind_during=c.ind_during,
            preceding_actions=c.preceding_actions, gamma=c.gamma,
            gae_lambda=c.gae_lambda, adv_norm=c.adv_norm)
        dag = DagPieces(
            policy_out=lambda params, b: self.actor_apply(params, b.actor_h, b.actor_in, b.reset, b.avail)[1],
            init_actor=self._init_own_actor,  # π_ind: MAPPO's actor on the agent's own input
            actor_opt=self.actor_opt, ind_opt=self._ind_optimiser(), discrete=spec.discrete,
            input_dim=self.own_in_dim,
            rollout_length=c.rollout_length, num_envs=c.num_envs, hidden=c.hidden[-1])
        self._pieces = UpdatePieces(
            actor_step=self.actor_step, critic_step=self.critic_step, minibatches=self.minibatches,
            measure=self._epoch_measure, epochs=c.update_epochs, num_agents=A,
            measure_now=(lambda lr, b: self.measure(lr.actor_params, b)) if c.measure_trust_region else None,
            policy_logp=self.policy_logp,
            mask=lambda b: self._mask(b.active), bounds=self._bounds, scores=self.agent_scores,
            clip_eps=self.derived.clip_eps, options=options, dag=dag)
        self._update = UPDATE_ORDERS[c.update_order](self._pieces)

    def _ind_optimiser(self) -> AgentOptimiser:
        """B2MAPO's π_ind optimiser (eq. 13): the actor's, its learning rate scaled by ``ind_lr_scale``."""
        scale = self.config.ind_lr_scale
        if scale == 1.0:
            return self.actor_opt
        lr = self.actor_opt.lr
        return AgentOptimiser(self.actor_opt.tx, self.actor_opt.per_agent, lambda u: scale * lr(u))

    def _bounds(self, eps):
        if self.config.no_clip:
            return -jnp.inf, jnp.inf
        return TR.clip_bounds(eps, self.config.clip_kind)

    def agent_scores(self, learner: LearnerState, batch: Batch) -> jax.Array:
        """A2PO's order score per agent, ``mean_t |Â_i / V_i|`` over active entries (un-normalised advantage
        and value; ``|V|`` floored at 1e-6) → ``[A]``."""
        v = L.denormalize(learner.value_norm, batch.value) if self.config.value_norm else batch.value
        ratio = jnp.abs((batch.target - v) / jnp.maximum(jnp.abs(v), 1e-6))
        m = self._mask(batch.active).astype(ratio.dtype)
        axes = tuple(range(ratio.ndim - 1))
        return (ratio * m).sum(axes) / jnp.maximum(m.sum(axes), 1.0)

    # -- inputs (seam 5) ----------------------------------------------------------------------------------
    def actor_input(self, obs: jax.Array) -> jax.Array:
        """The actor's input from observations ``[..., A, O]``: ``obs ⊕ onehot(i)`` when ``agent_id``."""
        return with_agent_id(obs, self.config.agent_id)

    def critic_in(self, obs: jax.Array, state: jax.Array) -> jax.Array:
        """The critic's input (critic-input seam) from observations and the env's global state."""
        return self.critic_input(obs, state, self.config.agent_id)

    def actor_apply(self, params, hidden, x, resets, avail):
        """The actor on inputs ``x`` ``[T, E, A, ·]`` → ``(hidden, out)``. ``params`` of MAPPO's actor read the
        agent's own input (the first ``own_in_dim`` features: π, or B2MAPO's π_ind); :class:`PrecedingParams`
        (π with ``preceding_actions``) add :class:`~trustmarl.seams.dag.PrecedingActionShift`'s term on the
        preceding batches' action block to the logits (re-masked) or to the Gaussian mean."""
        own = x[..., :self.own_in_dim]
        if not isinstance(params, PrecedingParams):
            return apply_agents(self.actor, params, hidden, own, resets, avail)
        h, out = apply_agents(self.actor, params.base, hidden, own, resets, avail)
        return h, self._with_shift(params.shift, hidden, x, resets, avail, out)

    def _with_shift(self, shift_params, hidden, x, resets, avail, out):
        """MAPPO's actor outputs ``out`` plus the shift network's term on the block in ``x``."""
        _, shift = apply_agents(self.shift_net, shift_params, hidden, x, resets)
        if self.spec.discrete:
            return jnp.where(avail, out + shift, out)  # unavailable actions keep the masked logit
        return out + jnp.concatenate([shift, jnp.zeros_like(shift)], axis=-1)

    def critic_apply(self, params, hidden, x, resets, block=None, final_x=None, ended=None):
        """The critic on inputs ``x`` ``[T, E, A, C]`` → ``(hidden, values [T, E, A])``; with ``final_x`` and
        ``ended`` [T, E] also the values of the pre-reset final states where ``ended`` (``(values, final
        values)``, the final values 0 elsewhere; see :meth:`final_values`). With
        :class:`~trustmarl.seams.dag.PrecedingParams` (``preceding_values``) the values of ``x`` are
        ``V(s, a^{B_k}) = V_base(s) + W_2 tanh(W_1 block)`` on the preceding batches' action ``block``
        ``[T, E, A, A·F]``; ``block=None`` and the final states get the zero block, ``V(s, 0) = V_base(s)``
        (their actions were never sampled; :func:`~trustmarl.seams.dag.preceding_value_loss` trains it as the
        value of the state)."""
        base = params.base if isinstance(params, PrecedingParams) else params
        if final_x is None:
            h, out = apply_agents(self.critic, base, hidden, x, resets)
        else:
            h, (out, states) = apply_agents(self.critic, base, hidden, x, resets, with_states=True)
        if isinstance(params, PrecedingParams) and block is not None:
            _, shift = apply_agents(self.critic_shift_net, params.shift, hidden, block, resets)
            out = out + shift[..., 0]
        if final_x is None:
            return h, out
        return h, (out, self.final_values(base, states, final_x, ended))

    def final_values(self, params, states, final_x, ended):
        """``V(s'_t)`` of the pre-reset final states ``final_x`` ``[T, E, A, C]`` where step t ended an episode
        (``ended`` [T, E]), 0 elsewhere: one GRU step from the critic's output at t (``states`` [T, E, A, H])
        on ``s'_t``, then the head. Only the ended (t, e) rows are computed, gathered ``chunk`` at a time (the
        first T·E/16, more chunks in a loop when more steps ended), instead of all T·E: GAE reads the final
        value only where an episode ended (``next_v = V(s'_t)`` there, ``V(s_{t+1})`` elsewhere)."""
        T, E, A = final_x.shape[:3]
        rows = T * E
        chunk = max(1, -(-rows // 16))
        flat_end = ended.reshape(rows)
        n = flat_end.sum()
        # the ended rows first, in order; rows past n are filled with an index past the end
        idx_all = jnp.nonzero(flat_end, size=rows + (-rows) % chunk, fill_value=rows)[0]
        states = states.reshape((rows,) + states.shape[2:])
        final_x = final_x.reshape((rows,) + final_x.shape[2:])

        def body(carry):
            i, out = carry
            idx = jax.lax.dynamic_slice(idx_all, (i * chunk,), (chunk,))
            take = lambda z: jnp.take(z, idx, axis=0, mode="clip")  # noqa: E731  (past-the-end rows: discarded)
            v = apply_rows(self.critic, params, "final_value", take(states), take(final_x))
            return i + 1, out.at[idx].set(v, mode="drop")

        _, out = jax.lax.while_loop(lambda carry: carry[0] * chunk < n, body,
                                    (jnp.zeros((), jnp.int32), jnp.zeros((rows, A), states.dtype)))
        return out.reshape(T, E, A)

    def preceding_block_of(self, actor_in: jax.Array) -> jax.Array:
        """The preceding batches' action block stored in π's inputs (zero width without ``preceding_actions``)."""
        return actor_in[..., self.own_in_dim:]

    # -- init ---------------------------------------------------------------------------------------------
    def _init_own_actor(self, key: jax.Array):
        return init_agents(self.actor, key, jnp.zeros((self.own_in_dim,)), jnp.ones((self.spec.num_actions,), bool))

    def init_learner(self, rng: jax.Array) -> LearnerState:
        """Fresh parameters, optimiser states and value normaliser."""
        k_a, k_c = jax.random.split(rng)
        actor_params = self._init_own_actor(k_a)
        if self.preceding_actions:
            # MAPPO's actor from the same key as without the option, the shift network from its own
            shift = init_agents(self.shift_net, jax.random.fold_in(k_a, 1), jnp.zeros((self.actor_in_dim,)))
            actor_params = PrecedingParams(actor_params, shift)
        critic_params = init_agents(self.critic, k_c, jnp.zeros((self.critic_in_dim,)))
        if self.preceding_values:
            shift = init_agents(self.critic_shift_net, jax.random.fold_in(k_c, 1),
                                jnp.zeros((self.actor_in_dim - self.own_in_dim,)))
            critic_params = PrecedingParams(critic_params, shift)
        # fold_in, not a third split: the actor's and critic's keys stay those of every earlier version
        order = init_order_state(self.config.update_order, self._pieces, jax.random.fold_in(rng, 2))
        return LearnerState(actor_params, critic_params, self.actor_opt.init(actor_params),
                            self.critic_opt.init(critic_params), L.value_norm_init(), jnp.zeros((), jnp.int32),
                            order)

    def init_hidden(self, num_envs: int) -> jax.Array:
        """Zero recurrent state ``[E, A, H]`` (``H = 1`` for feed-forward networks)."""
        return jnp.zeros((num_envs, self.num_agents, self.hidden_size))

    def first_reset(self, num_envs: int) -> jax.Array:
        """Reset flags of a first step: every state starts from zero (``[E]``, or ``[E, A]`` per agent)."""
        shape = (num_envs,) if self.config.done_scope == "env" else (num_envs, self.num_agents)
        return jnp.ones(shape, bool)

    def next_reset(self, ts: Timestep) -> jax.Array:
        """Where the recurrent states restart at the step that acts on ``ts.obs`` (``done_scope``).

        ``env``: ``d_e`` = the env's episode ended (``[E]``); ``agent``: ``d_{e,i}`` = agent ``i`` is not alive
        in the state the step reached before the auto-reset (``[E, A]``; JaxMARL SMAX's ``dones[agent]`` =
        ``¬unit_alive``, so a dead agent restarts every step and a survivor of an ended episode carries its
        state into the next); ``env_or_agent``: ``d_e ∨ ¬alive_{e,i}`` at ``obs`` (``[E, A]``).
        """
        scope = self.config.done_scope
        if scope == "env":
            return ts.terminated | ts.truncated
        if scope == "agent":
            return ~ts.final_active
        return (ts.terminated | ts.truncated)[..., None] | ~ts.active

    def init(self, rng: jax.Array) -> TrainState:
        E = self.config.num_envs
        rng, k_learn, k_env = jax.random.split(rng, 3)
        learner = self.init_learner(k_learn)
        env_state, ts = jax.vmap(self.env.reset)(jax.random.split(k_env, E))
        h = self.init_hidden(E)
        runner = RunnerState(env_state, ts, self.first_reset(E), h, h)
        return TrainState(learner, runner, rng, jnp.zeros((), jnp.int32))

    @staticmethod
    def policy_params(state: TrainState):
        """The actor parameters evaluation and execution act with: the update order's execution policy when
        it keeps one (B2MAPO's derived π_ind, :class:`trustmarl.seams.dag.DagState`), else the actor's."""
        order = state.learner.order
        return order.execution_params if hasattr(order, "execution_params") else state.learner.actor_params

    # -- acting -------------------------------------------------------------------------------------------
    def draw_noise(self, key: jax.Array, lead: tuple) -> jax.Array:
        """Sampling noise for :meth:`act`: one uniform per agent (discrete) or a standard normal per action
        dimension (Gaussian), shape ``lead + [A]`` or ``lead + [A, D]``."""
        if self.spec.discrete:
            return jax.random.uniform(key, lead + (self.num_agents,))
        return jax.random.normal(key, lead + (self.num_agents, self.spec.num_actions))

    def behaviour_groups(self, learner: LearnerState):
        """The batches π's rollout is sampled with (``preceding_actions``: B2MAPO's current DAG levels
        ``[K, A]``), else None (every agent acts at once on its own input)."""
        return learner.order.groups if self.preceding_actions else None

    def act(self, actor_params, hidden: jax.Array, obs: jax.Array, avail: jax.Array, reset: jax.Array,
            noise: jax.Array, greedy: bool = False, groups: Optional[jax.Array] = None) -> PolicyStep:
        """One policy step for every env and agent: ``obs`` ``[E, A, O]``, ``avail`` ``[E, A, U]``, ``reset``
        ``[E]``, ``hidden`` ``[E, A, H]``, ``noise`` from :meth:`draw_noise`. Decentralised unless ``groups``
        ``[K, A]`` is given (:meth:`behaviour_groups`): then π reads the actions of the agents in preceding
        batches and the joint action is drawn batch level by batch level, ``K`` passes of the actor
        (:func:`trustmarl.seams.dag.sample_by_batches`); the input it acted on is returned in ``actor_in``.

        Discrete: inverse-CDF sampling, ``a = #{k : F_k < u·F_U}`` with ``F`` the cumulative probabilities and
        one uniform ``u`` per agent (masked actions have zero mass, so they are never drawn). Gaussian:
        ``a = μ + σ·ξ``. ``greedy``: the most likely action (the mean). Drawing a rollout's noise in one call
        before the time loop, one number per agent, is several times cheaper on a CPU than ``distrax``'s
        ``sample`` inside the loop; the distribution is the same.
        """
        own = self.actor_input(obs)

        def policy_pass(block):
            x = own if block is None else jnp.concatenate([own, block], axis=-1)
            h, out = self.actor_apply(actor_params, hidden, x[None], reset[None], avail[None])
            return h, out[0], self._sample(out[0], noise, greedy)

        if groups is None:
            h, out, action = policy_pass(None)
            return PolicyStep(h, action, self.logp_entropy(out, action)[0], out)
        if isinstance(actor_params, PrecedingParams):
            # MAPPO's part of π reads only the own input, the same in every level's pass: run it (and its GRU)
            # once and only the shift network per level, instead of K passes of the whole actor
            h_base, base = apply_agents(self.actor, actor_params.base, hidden, own[None], reset[None], avail[None])

            def policy_pass(block):
                x = jnp.concatenate([own, block], axis=-1)
                out = self._with_shift(actor_params.shift, hidden, x[None], reset[None], avail[None], base)
                return h_base, out[0], self._sample(out[0], noise, greedy)
        h, out, action, block = sample_by_batches(
            policy_pass, groups, lambda a: action_features(a, self.spec.num_actions, self.spec.discrete),
            self.num_agents * self.action_feature_dim, obs.shape[:-2])
        return PolicyStep(h, action, self.logp_entropy(out, action)[0], out, jnp.concatenate([own, block], -1))

    def _sample(self, out, noise, greedy: bool):
        if self.spec.discrete:
            if greedy:
                return jnp.argmax(out, axis=-1)
            cdf = jnp.cumsum(jax.nn.softmax(out, axis=-1), axis=-1)
            action = jnp.sum(cdf < noise[..., None] * cdf[..., -1:], axis=-1)
            return jnp.minimum(action, self.spec.num_actions - 1)
        mean, log_std = jnp.split(out, 2, axis=-1)
        return mean if greedy else mean + jnp.exp(log_std) * noise

    def env_action(self, action: jax.Array) -> jax.Array:
        """Gaussian samples are clipped to the action box for the env only (the log-prob stays the sample's)."""
        if self.spec.discrete:
            return action
        return jnp.clip(action, self.spec.action_low, self.spec.action_high)

    # -- rollout ------------------------------------------------------------------------------------------
    def _env_step(self, keys, env_state, actions):
        """Step the batch of envs (the adapter's conditional-reset batch step when it has one)."""
        if hasattr(self.env, "step_batch"):
            return self.env.step_batch(keys, env_state, actions)
        return jax.vmap(self.env.step)(keys, env_state, actions)

    def rollout(self, learner: LearnerState, runner: RunnerState, rng: jax.Array):
        c = self.config
        E, T = c.num_envs, c.rollout_length
        k_noise, k_env = jax.random.split(rng)
        noise = self.draw_noise(k_noise, (T, E))
        env_keys = jax.random.split(k_env, T * E).reshape((T, E) + k_env.shape)

        def step(runner: RunnerState, xs):
            step_noise, keys = xs
            ts = runner.timestep
            pol = self.act(learner.actor_params, runner.actor_h, ts.obs, ts.avail, runner.reset, step_noise,
                           groups=self.behaviour_groups(learner))
            env_state, nts = self._env_step(keys, runner.env_state, self.env_action(pol.action))
            final_cin = self.critic_in(nts.final_obs, nts.final_state) if c.bootstrap_truncation else None
            tr = Transition(
                actor_in=self.actor_input(ts.obs) if pol.actor_in is None else pol.actor_in,
                critic_in=self.critic_in(ts.obs, ts.state),
                final_critic_in=final_cin, avail=ts.avail, action=pol.action, logp=pol.logp, dist=pol.dist,
                reward=nts.reward, active=ts.active, reset=runner.reset, terminated=nts.terminated,
                truncated=nts.truncated, ep_done=nts.episode.done, ep_return=nts.episode.returned_return,
                ep_length=nts.episode.returned_length.astype(jnp.float32), ep_won=nts.episode.returned_won)
            return RunnerState(env_state, nts, self.next_reset(nts), pol.hidden, runner.critic_h), tr

        return jax.lax.scan(step, runner, (noise, env_keys))

    # -- critic pass and advantages (seam 1) ----------------------------------------------------------------
    def evaluate(self, learner: LearnerState, runner_start: RunnerState, runner_end: RunnerState,
                 traj: Transition):
        """Values of the rollout, bootstrap values and advantages.

        Returns ``(values, targets, advantages, critic_h, trace)``; ``trace`` (:class:`TraceInputs`) lets a
        sequential update order re-estimate advantages off-policy."""
        c = self.config
        ended = traj.terminated | traj.truncated
        h_end, out = self.critic_apply(learner.critic_params, runner_start.critic_h, traj.critic_in, traj.reset,
                                       self.preceding_block_of(traj.actor_in), traj.final_critic_in, ended)
        if c.bootstrap_truncation:
            values, final_values = out
        else:
            values, final_values = out, jnp.zeros_like(out)
        ts = runner_end.timestep
        last_in = self.critic_in(ts.obs, ts.state)[None]
        # s_T's actions are not sampled yet: with preceding_values it is valued by V(s_T, 0)
        _, last_value = self.critic_apply(learner.critic_params, h_end, last_in, runner_end.reset[None])
        vn = learner.value_norm
        denorm = (lambda v: L.denormalize(vn, v)) if c.value_norm else (lambda v: v)
        v = denorm(values)
        # V'_t: V_{t+1} within an episode; the pre-reset final state's value where step t ended an episode.
        following = jnp.concatenate([v[1:], denorm(last_value)], axis=0)
        ended = ended[..., None]
        next_v = jnp.where(ended, denorm(final_values), following)
        adv, targets = self.advantage(traj.reward, v, next_v, traj.terminated[..., None], ended, c.gamma,
                                      c.gae_lambda)
        trace = TraceInputs(traj.reward + c.gamma * (1.0 - traj.terminated[..., None]) * next_v - v, ended,
                            traj.reward)
        return values, targets, adv, h_end, trace

    # -- losses (seams 2 and 3) ---------------------------------------------------------------------------
    def _mask(self, active):
        return active if self.config.use_active_masks else jnp.ones_like(active)

    def actor_loss(self, params, b: Batch, agents: Optional[jax.Array] = None, bounds=None):
        """The chosen policy objective (ratio and surrogate seams) minus the entropy bonus; returns
        ``(loss, per-agent diagnostics)`` (:meth:`actor_loss_out` without the actor's outputs)."""
        loss, (metrics, _) = self.actor_loss_out(params, b, agents, bounds)
        return loss, metrics

    def actor_loss_out(self, params, b: Batch, agents: Optional[jax.Array] = None, bounds=None):
        """:meth:`actor_loss` with the actor's outputs on the minibatch: ``(loss, (diagnostics, out))``.

        ``agents`` [A] bool: whose entries are optimised (all when None); a group's loss is its share of the
        full mean, normalised by every active entry. ``b.factor`` / ``b.inner``: the update order's factors
        (1 when None). ``bounds``: ``(low, high)`` clip bounds overriding the configured ones (per-position
        clip schedules).
        """
        c = self.config
        _, out = self.actor_apply(params, b.actor_h, b.actor_in, b.reset, b.avail)
        logp, entropy = self.logp_entropy(out, b.action)
        mask = self._mask(b.active)
        opt_mask = mask if agents is None else mask & agents
        low, high = (self.clip_low, self.clip_high) if bounds is None else bounds
        factor = jnp.ones_like(b.adv) if b.factor is None else b.factor
        adv, adv_joint = b.adv, b.adv_joint
        if c.adv_norm and c.adv_norm_scope == "minibatch":
            # JaxMARL's choice: (A − mean)/(std + 1e-8) over this minibatch's (masked) entries, not the rollout's
            adv = L.normalize_advantages(adv, mask)
            adv_joint = None if adv_joint is None else team_advantage(adv, mask)
        pg_loss, clipped = self.objective(ObjectiveInputs(logp, b.logp, adv, adv_joint, opt_mask, factor,
                                                          low, high, b.inner, mask))
        ent = masked_share(entropy, opt_mask, mask)
        loss = pg_loss - c.ent_coef * ent
        log_ratio = TR.independent_log_ratio(logp, b.logp)
        metrics = jax.lax.stop_gradient(self._actor_diagnostics(log_ratio, clipped, entropy, mask))
        metrics["policy_loss"] = jax.lax.stop_gradient(pg_loss)
        if c.measure_trust_region and c.measure_at == "minibatch":
            metrics["tr"] = self._measure_outputs(b, jax.lax.stop_gradient(out), jax.lax.stop_gradient(logp))
        return loss, (metrics, out)

    def policy_logp(self, actor_params, batch: Batch) -> jax.Array:
        """Log-probs ``[T, B, A]`` of the batch's actions under ``actor_params`` (one pass over the batch)."""
        _, out = self.actor_apply(actor_params, batch.actor_h, batch.actor_in, batch.reset, batch.avail)
        return self.logp_entropy(out, batch.action)[0]

    def logp_entropy(self, out, action):
        """Log-prob of ``action`` and entropy from actor outputs; for categoricals from one log-softmax."""
        if self.spec.discrete:
            logp_all = jax.nn.log_softmax(out, axis=-1)
            logp = jnp.take_along_axis(logp_all, action[..., None], axis=-1)[..., 0]
            return logp, -jnp.sum(jnp.exp(logp_all) * logp_all, axis=-1)
        pi = distribution(out, False)
        return pi.log_prob(action), pi.entropy()

    def _actor_diagnostics(self, log_ratio, clipped, entropy, mask):
        axes = tuple(range(log_ratio.ndim - 1))
        m = mask.astype(jnp.float32)
        n = jnp.maximum(m.sum(axes), 1.0)
        ratio = jnp.exp(log_ratio)
        mean = lambda x: (x * m).sum(axes) / n  # noqa: E731
        clipped = jnp.broadcast_to(clipped, mask.shape)
        return {
            "ratio_min": jnp.where(mask, ratio, jnp.inf).min(axes),
            "ratio_mean": mean(ratio),
            "ratio_max": jnp.where(mask, ratio, -jnp.inf).max(axes),
            "clip_frac": mean(clipped.astype(jnp.float32)),
            "approx_kl": mean((ratio - 1.0) - log_ratio),
            "entropy": mean(entropy),
        }

    def critic_loss(self, params, b: Batch, vn: L.ValueNormState):
        c = self.config
        target = L.normalize(vn, b.target) if c.value_norm else b.target
        mask = self._mask(b.active)
        if isinstance(params, PrecedingParams):
            block = self.preceding_block_of(b.actor_in)
            _, base = self.critic_apply(params, b.critic_h, b.critic_in, b.reset)
            _, shift = apply_agents(self.critic_shift_net, params.shift, b.critic_h, block, b.reset)
            value = base + shift[..., 0]
            per = L.value_loss(value, b.value, target, self.value_clip, c.huber_delta)
            # V(s, 0) on the same target, unclipped (b.value is the old V(s, a^{B_k}), not its anchor)
            per_zero = L.value_loss(base, b.value, target, None, c.huber_delta)
            loss = c.vf_coef * preceding_value_loss(per, per_zero, mask, has_preceding(block))
        else:
            _, value = self.critic_apply(params, b.critic_h, b.critic_in, b.reset)
            per = L.value_loss(value, b.value, target, self.value_clip, c.huber_delta)
            loss = c.vf_coef * L.masked_mean(per, mask)
        pred = L.denormalize(vn, value) if c.value_norm else value
        ev = jax.vmap(L.explained_variance, in_axes=(-1, -1, -1))(pred, b.target, mask)
        return loss, {"value_loss": jax.lax.stop_gradient(L.masked_mean(per, mask)),
                      "explained_variance": jax.lax.stop_gradient(ev)}

    # -- the pieces an update order uses (seam 4) -----------------------------------------------------------
    def actor_step(self, learner: LearnerState, b: Batch, agents: jax.Array, bounds=None,
                   companion: Optional[Companion] = None):
        """One policy gradient step on minibatch ``b`` (its ``factor``/``inner`` set by the update order); only
        the agents selected by ``agents`` [A] are optimised, and with per-agent stacks only they move.

        ``companion`` (B2MAPO's ``ind_during``: :func:`trustmarl.seams.dag.ind_companion`): a second parameter
        set φ whose loss ``ℓ(φ, sg(out_θ), b)`` reads the actor's outputs on this minibatch through a stop-gradient
        and is added to the step's loss, ``L(θ) + ℓ(φ, sg(out_θ))``: one forward and backward pass gives
        ``∇_θ = ∇_θ L`` (the added term has no path to θ) and ``∇_φ = ∇_φ ℓ``, without a second pass of the actor
        for ℓ's targets; φ then takes its own optimiser step (``companion.step``)."""
        if companion is None:
            (_, m), g = jax.value_and_grad(self.actor_loss, has_aux=True)(learner.actor_params, b, agents, bounds)
        else:
            def total(params):
                theta, phi = params
                loss, (metrics, out) = self.actor_loss_out(theta, b, agents, bounds)
                extra, extra_metrics = companion.loss(phi, jax.lax.stop_gradient(out), b)
                return loss + extra, {**metrics, **extra_metrics}

            (_, m), (g, g_phi) = jax.value_and_grad(total, has_aux=True)(
                (learner.actor_params, companion.params(learner)))
            learner, step_metrics = companion.step(learner, g_phi)
            m.update(step_metrics)
        m["grads_finite"] = _all_finite(g)
        # its own flag: an order that skips a group reports that group's loss as NaN (no step was taken)
        m["policy_loss_finite"] = jnp.isfinite(m["policy_loss"])
        params, opt = self.actor_opt.step(learner.actor_params, learner.actor_opt, g, learner.updates, agents)
        return learner._replace(actor_params=params, actor_opt=opt), m

    def critic_step(self, learner: LearnerState, b: Batch):
        """One critic gradient step on minibatch ``b`` (after updating the value normaliser with it)."""
        c = self.config
        vn = learner.value_norm
        if c.value_norm:
            vn = L.value_norm_update(vn, b.target, c.value_norm_beta, self._mask(b.active))
        (_, m), g = jax.value_and_grad(self.critic_loss, has_aux=True)(learner.critic_params, b, vn)
        m["critic_grads_finite"] = _all_finite(g)
        everyone = jnp.ones((self.num_agents,), bool)
        params, opt = self.critic_opt.step(learner.critic_params, learner.critic_opt, g, learner.updates,
                                           everyone)
        return learner._replace(critic_params=params, critic_opt=opt, value_norm=vn), m

    def make_batch(self, traj: Transition, values, targets, adv, runner_start: RunnerState) -> Batch:
        c = self.config
        mask = self._mask(traj.active)
        if c.adv_norm and c.adv_norm_scope == "rollout":
            adv = L.normalize_advantages(adv, mask)
        return Batch(traj.actor_in, traj.critic_in, traj.avail, traj.action, traj.logp, traj.dist, traj.active,
                     traj.reset, values, targets, adv, team_advantage(adv, mask), runner_start.actor_h,
                     runner_start.critic_h)

    def minibatches(self, batch: Batch, key) -> Batch:
        """Shuffle and split into ``num_minibatches`` along the leading axis of the result.

        ``minibatch_over=envs``: one permutation of the units (GRU: envs; FF: env-steps) moves every agent of a
        unit together. ``minibatch_over=agents``: :func:`shuffle_per_agent` first gives each agent its own
        permutation, so position ``j`` of agent ``a`` holds unit ``perm_a[j]``; the split below then puts each
        (agent, unit) sequence in exactly one minibatch, ``units / M`` per agent in each.
        """
        c = self.config
        M = c.num_minibatches
        if c.minibatch_over == "agents":
            k_agents, key = jax.random.split(key)
            batch = shuffle_per_agent(batch, k_agents, recurrent=self.recurrent)
        if self.recurrent:
            perm = jax.random.permutation(key, c.num_envs)

            def split(x, env_axis):
                x = jnp.take(x, perm, axis=env_axis)
                shape = x.shape[:env_axis] + (M, c.num_envs // M) + x.shape[env_axis + 1:]
                return jnp.moveaxis(x.reshape(shape), env_axis, 0)

            seq = {f: None if getattr(batch, f) is None else split(getattr(batch, f), 1) for f in Batch._fields
                   if f not in ("actor_h", "critic_h")}
            return Batch(**seq, actor_h=split(batch.actor_h, 0), critic_h=split(batch.critic_h, 0))
        n = c.num_envs * c.rollout_length
        perm = jax.random.permutation(key, n)

        def split(x):
            x = x.reshape((n,) + x.shape[2:])
            x = jnp.take(x, perm, axis=0)
            return x.reshape((M, 1, n // M) + x.shape[1:])

        seq = {f: None if getattr(batch, f) is None else split(getattr(batch, f)) for f in Batch._fields
               if f not in ("actor_h", "critic_h")}
        h = jnp.zeros((M, n // M, self.num_agents, self.hidden_size))
        return Batch(**seq, actor_h=h, critic_h=h)

    # -- trust-region measurement -------------------------------------------------------------------------
    def measure(self, actor_params, batch: Batch) -> TR.UpdateMeasures:
        """Measurements of the update so far against the behaviour policy, on every rollout state."""
        _, out = self.actor_apply(actor_params, batch.actor_h, batch.actor_in, batch.reset, batch.avail)
        logp_new, _ = self.logp_entropy(out, batch.action)
        return self._measure_outputs(batch, out, logp_new)

    def _measure_outputs(self, batch: Batch, out, logp_new) -> TR.UpdateMeasures:
        # The joint TV is estimated from the rollout's own sampled joint actions (num_mc_samples=0): one
        # unbiased draw per state from the old joint policy, at no sampling cost.
        active = self._mask(batch.active)
        if self.spec.discrete:
            return TR.measure_update(batch.dist, out, batch.avail, active, batch.logp, logp_new,
                                     num_mc_samples=0, exact_joint_limit=0)
        om, ols = jnp.split(batch.dist, 2, axis=-1)
        nm, nls = jnp.split(out, 2, axis=-1)
        return TR.measure_update_gaussian(om, ols, nm, nls, active, batch.logp, logp_new,
                                          num_mc_samples=0, tv_method="auto")

    def _epoch_measure(self, learner: LearnerState, batch: Batch, metrics: dict):
        """The epoch's measurements: exact at the epoch's end, or merged from the minibatches' in-loss ones."""
        c = self.config
        metrics = dict(metrics)
        in_loss = metrics.pop("tr", None)
        if not c.measure_trust_region:
            return None, metrics
        if c.measure_at == "epoch_end":
            return self.measure(learner.actor_params, batch), metrics
        return _combine_measures(in_loss), metrics

    # -- one update ---------------------------------------------------------------------------------------
    def learn(self, learner: LearnerState, traj: Transition, start: RunnerState, end: RunnerState,
              rng: jax.Array):
        """Everything after the rollout: critic pass, advantages, the update order, measurements.

        ``start``/``end`` are the runner states before and after the rollout (only their hidden states,
        reset flags and last timestep are read), so a rollout collected on the host goes through the very
        same learning step. Returns ``(learner, critic_h, metrics)``.
        """
        values, targets, adv, critic_h, trace = self.evaluate(learner, start, end, traj)
        batch = self.make_batch(traj, values, targets, adv, start)
        learner, (mb_metrics, tr) = self._update(learner, batch, rng, trace)
        learner = learner._replace(updates=learner.updates + 1)
        metrics = self._summarise(traj, mb_metrics, tr)
        metrics["nonfinite"] = nonfinite_flags(traj, mb_metrics, learner)
        return learner, critic_h, metrics

    def update(self, state: TrainState, _=None):
        rng, k_roll, k_learn = jax.random.split(state.rng, 3)
        runner, traj = self.rollout(state.learner, state.runner, k_roll)
        learner, critic_h, metrics = self.learn(state.learner, traj, state.runner, runner, k_learn)
        return TrainState(learner, runner._replace(critic_h=critic_h), rng, state.update + 1), metrics

    def _summarise(self, traj: Transition, mb, tr) -> dict:
        """Per-update metrics (:data:`METRIC_SCHEMA`): scalars, per-agent [A] arrays, per-epoch arrays."""
        done = traj.ep_done.astype(jnp.float32)
        n_done = done.sum()
        mean_done = lambda x: jnp.where(n_done > 0, (x * done).sum() / jnp.maximum(n_done, 1.0), jnp.nan)  # noqa
        out = {
            "return_mean": mean_done(traj.ep_return),
            "episode_length": mean_done(traj.ep_length),
            "episodes": n_done,
            "reward_mean": traj.reward.mean(),
        }
        if self.spec.has_win:
            out["win_rate"] = mean_done(traj.ep_won)
        flat = lambda x: x.reshape((-1,) + x.shape[2:])  # noqa: E731  [epochs*minibatches, ...]
        for k, v in mb.items():
            if k.endswith("_finite"):
                continue  # folded into the "nonfinite" flags
            v = flat(v)
            if k.endswith("_min"):
                out[k] = v.min(0)
            elif k.endswith("_max"):
                out[k] = v.max(0)
            else:
                out[k] = jnp.nanmean(v, 0)
        if tr is not None:
            for k, v in tr._asdict().items():
                out[f"tr/{k}"] = v  # [epochs, ...]
        return out

    # -- whole runs -----------------------------------------------------------------------------------------
    def __call__(self, rng: jax.Array):
        """The pure ``train(rng)``: init and every update in one ``lax.scan``. Returns (state, metrics)."""
        state = self.init(rng)
        return jax.lax.scan(self.update, state, None, self.num_updates)

    def run_chunk(self, state: TrainState, num_updates: int):
        """``num_updates`` updates as one scan (jit this, vmapped over seeds)."""
        return jax.lax.scan(self.update, state, None, num_updates)


# Bits of the per-update "nonfinite" metric: which kind of value went NaN/inf during that update.
NONFINITE_BITS = {1: "env outputs (observations, rewards)", 2: "losses", 4: "gradients", 8: "parameters"}


def shuffle_per_agent(batch: Batch, key: jax.Array, recurrent: bool) -> Batch:
    """Reorder each agent's units by its own permutation: ``new[.., j, a] = old[.., perm_a[j], a]``.

    Units are envs (GRU: whole sequences, axis 1 of ``[T, E, A, ...]``, hidden states axis 0 of ``[E, A, H]``)
    or env-steps (FF: the ``T·E`` entries). Per-env fields without an agent axis (``reset``) gain one, since
    agent ``a``'s entry now comes from env ``perm_a[j]``; ``adv_joint`` (a mean over one env's agents) has no
    meaning after the shuffle and is dropped (``minibatch_over=agents`` requires ``ratio=independent``).
    Pure; the permutations are ``jax.random.permutation(k_a, units)`` for ``k_a`` in ``split(key, A)``.
    """
    T, E, A = batch.action.shape[:3]
    units = E if recurrent else T * E
    perms = jax.vmap(lambda k: jax.random.permutation(k, units))(jax.random.split(key, A))  # [A, units]
    cols = jnp.arange(A)

    def per_agent(x):
        if not recurrent:
            flat = x.reshape((T * E,) + x.shape[2:])
            out = flat[perms.T, cols] if x.ndim > 2 else flat[perms.T]  # [units, A, ...]
            return out.reshape((T, E, A) + out.shape[2:])
        return x[:, perms.T, cols] if x.ndim > 2 else x[:, perms.T]  # [T, E, A, ...]

    fields = {}
    for f in Batch._fields:
        x = getattr(batch, f)
        if x is None or f == "adv_joint":
            fields[f] = None
        elif f in ("actor_h", "critic_h"):
            fields[f] = x[perms.T, cols] if recurrent else x  # FF carries a dummy hidden state
        else:
            fields[f] = per_agent(x)
    return Batch(**fields)


def _all_finite(tree) -> jax.Array:
    leaves = jax.tree.leaves(tree)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves])) if leaves else jnp.asarray(True)


def nonfinite_flags(traj: Transition, mb: dict, learner: LearnerState) -> jax.Array:
    """One int32 per update, the sum of :data:`NONFINITE_BITS` for each kind of value that was not finite
    (0 when everything was). Cheap: reductions over arrays the update already holds."""
    env_ok = _all_finite((traj.actor_in, traj.critic_in, traj.reward))
    loss_ok = jnp.all(mb["policy_loss_finite"]) & _all_finite([v for k, v in mb.items()
                                                               if k in ("value_loss", "derived_kl")])
    grads_ok = jnp.all(jnp.stack([jnp.all(v) for k, v in mb.items() if k.endswith("grads_finite")]))
    # the update order's own learned state (B2MAPO's upper layer and π_ind) counts as parameters
    params_ok = _all_finite((learner.actor_params, learner.critic_params, learner.order))
    bad = [~env_ok, ~loss_ok, ~grads_ok, ~params_ok]
    return sum(jnp.where(b, bit, 0) for b, bit in zip(bad, NONFINITE_BITS)).astype(jnp.int32)


def _combine_measures(m: TR.UpdateMeasures) -> TR.UpdateMeasures:
    """Merge per-minibatch measurements [M, ...] of one epoch into one (count-weighted means, min/max)."""
    w = m.count.astype(jnp.float32)
    wmean = lambda x: jnp.nansum(x * w, 0) / jnp.maximum(w.sum(0), 1.0)  # noqa: E731
    tv = wmean(m.tv_mean)
    return TR.UpdateMeasures(
        ratio_min=jnp.nanmin(m.ratio_min, 0), ratio_max=jnp.nanmax(m.ratio_max, 0),
        dist_ratio_min=jnp.nanmin(m.dist_ratio_min, 0), dist_ratio_max=jnp.nanmax(m.dist_ratio_max, 0),
        tv_mean=tv, kl_mean=wmean(m.kl_mean), count=m.count.sum(0), sum_tv=jnp.nansum(tv),
        joint_tv_bound=jnp.nanmean(m.joint_tv_bound), joint_tv_coupling=jnp.nanmean(m.joint_tv_coupling),
        joint_tv_mc=jnp.nanmean(m.joint_tv_mc), joint_tv_exact=jnp.nanmean(m.joint_tv_exact),
        joint_kl=jnp.nanmean(m.joint_kl), joint_ratio_min=jnp.nanmin(m.joint_ratio_min),
        joint_ratio_max=jnp.nanmax(m.joint_ratio_max))


"""The off-policy trainer (MADDPG, MAAC, MAMD, MAMT): jitted env interaction, a flashbax replay buffer, target
networks with Polyak updates, one gradient-step skeleton with each algorithm's math injected (:mod:`trustmarl.
offpolicy.rules`). It implements the trainer protocol (:mod:`.protocol`), so the run loop, checkpoints (the
whole state: networks, optimisers, targets, buffer, env states, keys), logging and evaluation are shared.

One *update* of the run loop (one :meth:`OffPolicyTrainer.update`, what ``num_updates`` counts) is one
iteration of Li et al.'s Algorithms 2-3 / MAAC's loop:

1. **collect** — ``collect_steps`` steps of the ``num_envs`` envs with the behaviour policy (the action head's
   exploration: a categorical sample drawn with Gumbel noise; for continuous actions a squashed-Gaussian sample
   or MADDPG's ``tanh`` action plus Gaussian noise), each step's ``num_envs`` transitions ``(o, a, r, o', d)``
   added to the buffer; ``o'`` is the pre-reset observation of the state reached and ``d`` marks
   terminations only, so time-limit ends are bootstrapped;
2. **learn** — once the buffer holds ``max(learning_starts, batch_size)`` transitions, ``gradient_steps``
   times: sample ``batch_size`` transitions uniformly (per-agent normalised rewards when ``reward_norm``),
   ``rule.before_step``, one critic step, one actor step, Polyak update of the target actor and critic
   (``θ̄ ← (1 − τ)θ̄ + τθ``), ``rule.after_step``;
3. **metrics** — :data:`METRIC_SCHEMA` plus the rule's.

The buffer holds ``max(batch_size, min(buffer_size, env steps of the budget))`` transitions: a run never
stores more than it collects, so a short run does not allocate Table 3's 10⁶ entries per seed.

Actions reach the networks only through the action head (:mod:`trustmarl.offpolicy.heads`, chosen from the
env's action space and the rule's ``continuous`` entry): a discrete action is stored as an index and read by
the critics one-hot; a continuous one is stored and read as its normalised vector in ``[−1, 1]^D`` and mapped
onto the env's box only when the env is stepped. With continuous actions the attention critic reads the own
action (``AttentionCritic.own_action``) and returns one value per agent.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import flashbax as fbx
import jax
import jax.numpy as jnp
import optax

from trustmarl.algos import ALGORITHMS
from trustmarl.config import Config, ConfigError, Derived
from trustmarl.envs import AdapterState, Timestep
from trustmarl.offpolicy import functional as F
from trustmarl.offpolicy.heads import make_head
from trustmarl.offpolicy.networks import AgentMLP, AttentionCritic, MLPCritic
from trustmarl.offpolicy.rules import RULES
from trustmarl.seams.critic_inputs import with_agent_id
from trustmarl.trainers.on_policy import PolicyStep
from trustmarl.trainers.protocol import MetricSpec


# ---------------------------------------------------------------------------------------------------------
# typed state
# ---------------------------------------------------------------------------------------------------------
class Experience(NamedTuple):
    """One stored transition of one env (a buffer item); agent fields ``[A, ...]``."""

    obs: jax.Array  # [A,O]
    avail: jax.Array  # [A,U] bool (all true for continuous actions)
    action: jax.Array  # [A] int32 (discrete) or [A,D] float32 in [-1, 1] (continuous)
    reward: jax.Array  # [A]
    next_obs: jax.Array  # [A,O] pre-reset observation of the state reached
    next_avail: jax.Array  # [A,U] bool (all true after an episode end: the final state's mask is not kept)
    terminated: jax.Array  # [] float32, 1 at a termination (not at a time limit)
    active: jax.Array  # [A] bool, agent alive at obs


class OffBatch(NamedTuple):
    """A sampled batch, ``[B, ...]``, rewards normalised when ``reward_norm``; ``act`` is the action as the
    critics read it (one-hot, or the continuous vector)."""

    obs: jax.Array
    avail: jax.Array
    action: jax.Array
    act: jax.Array  # [B,A,U] one-hot of action, or the continuous action [B,A,D]
    reward: jax.Array
    next_obs: jax.Array
    next_avail: jax.Array
    terminated: jax.Array  # [B]
    active: jax.Array


class OffLearner(NamedTuple):
    actor_params: Any  # leaves [S, ...] (S = A per-agent, 1 shared)
    critic_params: Any
    target_actor: Any
    target_critic: Any
    actor_opt: Any
    critic_opt: Any
    extra: Any  # the rule's own state (OffPolicyRule.init_extra)
    reward_stats: F.RewardStats
    grad_steps: jax.Array  # int32, gradient steps done


class CollectTrace(NamedTuple):
    """What a collection reports besides the buffer, ``[T, E, ...]``."""

    done: jax.Array  # [T,E] an episode ended at step t
    ret: jax.Array  # [T,E] its team return (valid where done)
    length: jax.Array  # [T,E]
    won: jax.Array  # [T,E]
    reward: jax.Array  # [T,E,A]
    env_ok: jax.Array  # [T] observations and rewards finite


class OffRunner(NamedTuple):
    env_state: AdapterState  # batched over E
    timestep: Timestep


class OffTrainState(NamedTuple):
    learner: OffLearner
    buffer: Any  # flashbax TrajectoryBufferState
    runner: OffRunner
    rng: jax.Array
    update: jax.Array  # int32, iterations done
    transitions: jax.Array  # int32, transitions stored so far


METRIC_SCHEMA: dict[str, MetricSpec] = {
    "return_mean": MetricSpec("scalar", "mean team return of the episodes that ended in the iteration"),
    "episode_length": MetricSpec("scalar", "mean length of those episodes"),
    "episodes": MetricSpec("scalar", "episodes that ended in the iteration"),
    "reward_mean": MetricSpec("scalar", "mean reward per agent-step collected"),
    "win_rate": MetricSpec("scalar", "fraction of ended episodes won (envs with a win flag)"),
    "learning": MetricSpec("scalar", "1 when the iteration ran its gradient steps (buffer filled enough), else 0"),
    "critic_loss": MetricSpec("scalar", "Σ_i E[(Q_i − y_i)²], mean over the gradient steps (NaN before learning)"),
    "policy_loss": MetricSpec("scalar", "the rule's actor loss, mean over the gradient steps"),
    "q_mean": MetricSpec("agent", "mean Q_i(o, a) on the sampled batches"),
    "entropy": MetricSpec("agent", "policy entropy on the sampled observations (squashed Gaussian: the "
                          "Gaussian's before the tanh; NaN for MADDPG's deterministic continuous actor)"),
    "kl_iteration": MetricSpec("agent", "KL[π_before ‖ π_after] of the iteration's gradient steps on its last batch"),
    "nonfinite": MetricSpec("scalar", "0, or the sum of NONFINITE_BITS of the kinds of values that were "
                            "NaN/inf (1 env outputs, 2 losses, 4 gradients, 8 parameters)"),
}


def _per_stack(tx: optax.GradientTransformation) -> optax.GradientTransformation:
    """``tx`` applied to each slice of the leading stack axis on its own (own moments, own norm clip)."""
    return optax.GradientTransformation(jax.vmap(tx.init), jax.vmap(tx.update))


class OffPolicyTrainer:
    """The static pieces (env, networks, buffer, optimisers, the algorithm's rule) and the pure functions."""

    family = "off_policy"

    def __init__(self, config: Config, env=None):
        from trustmarl.envs.from_config import build_env
        self.config = c = config
        self.algo = ALGORITHMS[c.algo]
        if c.algo not in RULES:
            raise ConfigError(f"algo={c.algo!r} has no off-policy rule; allowed: {', '.join(RULES)}")
        self.rule = RULES[c.algo]
        if c.network != "ff":
            raise ConfigError(f"network={c.network!r} is not supported by the off-policy family; allowed: ff")
        if c.layer_norm_input:
            raise ConfigError("layer_norm_input=True is not supported by the off-policy family; allowed: false")
        self.env = env if env is not None else build_env(c)
        if not hasattr(self.env, "step_batch") and not hasattr(self.env, "step"):
            raise ConfigError(f"env={c.env!r}: the off-policy trainer needs a JAX env; allowed: spread, mpe_spread, "
                              f"pursuit, rover_tower, smax or an as_jax_env(...) env")
        self.spec = spec = self.env.spec
        self.head = make_head(spec.discrete, spec.num_actions, self.rule.continuous, c.explore_noise, c.algo)
        self.num_agents = A = spec.num_agents
        self.num_actions = U = spec.num_actions  # discrete: action count; continuous: action dimension
        self.derived: Derived = c.derived(A)
        self.num_updates = self.derived.num_updates
        self.metric_schema = {**METRIC_SCHEMA, **{k: MetricSpec(*v) for k, v in (self.rule.metric_schema or {}).items()}}
        if not spec.has_win:
            self.metric_schema.pop("win_rate")
        self.stacks = 1 if c.share_params else A
        self.actor_in_dim = spec.obs_dim + (A if c.agent_id else 0)
        self.policy = AgentMLP(c.hidden, self.head.out_dim, self.stacks, c.activation)
        if self.rule.critic == "attention":
            if c.hidden[-1] % c.attention_heads:
                raise ConfigError(f"attention_heads={c.attention_heads} must divide the critic width "
                                  f"hidden[-1]={c.hidden[-1]}")
            cont = self.head.continuous
            self.critic = AttentionCritic(1 if cont else U, c.hidden[-1], c.attention_heads, self.stacks, cont)
        else:
            self.critic = MLPCritic(c.hidden, self.stacks, c.activation)
        capacity = max(c.batch_size, min(c.buffer_size, self.derived.env_steps))
        self.capacity = capacity
        self.learn_start = max(c.learning_starts, c.batch_size)
        self.buffer = fbx.make_item_buffer(max_length=capacity, min_length=1, sample_batch_size=c.batch_size,
                                           add_batches=True)
        total_steps = self.num_updates * c.gradient_steps
        self.actor_tx = _per_stack(optax.chain(optax.clip_by_global_norm(c.max_grad_norm),
                                               optax.scale_by_adam(eps=c.adam_eps),
                                               optax.scale_by_learning_rate(self._schedule(c.lr, total_steps))))
        critic_clip = c.critic_max_grad_norm or 10.0 * A  # MAAC / Table 3: 10 · number of agents
        self.critic_tx = optax.chain(optax.clip_by_global_norm(critic_clip), optax.add_decayed_weights(c.critic_l2),
                                     optax.scale_by_adam(eps=c.adam_eps),
                                     optax.scale_by_learning_rate(self._schedule(self.derived.critic_lr,
                                                                                 total_steps)))

    def _schedule(self, lr: float, total: int):
        if not self.config.anneal_lr:
            return lr
        return optax.linear_schedule(lr, 0.0, max(total, 1))

    # -- networks -------------------------------------------------------------------------------------------
    def actor_input(self, obs: jax.Array) -> jax.Array:
        return with_agent_id(obs, self.config.agent_id)

    def logits(self, actor_params, obs: jax.Array, avail: jax.Array) -> jax.Array:
        """The policy outputs the head reads ``[..., A, head.out_dim]``: masked logits for discrete actions."""
        return self.head.mask(self.policy.apply(actor_params, self.actor_input(obs)), avail)

    def raw_logits(self, actor_params, obs: jax.Array) -> jax.Array:
        """Unmasked policy-net outputs (what the logit regulariser penalises)."""
        return self.policy.apply(actor_params, self.actor_input(obs))

    def pick(self, q: jax.Array, act: jax.Array) -> jax.Array:
        """The attention critic's value at the own action: ``Σ_u q_u·onehot(a)_u`` (discrete: ``q`` lists every
        own action) or its single output (continuous: the action is an input)."""
        return q[..., 0] if self.head.continuous else jnp.sum(q * act, axis=-1)

    def attend_mask(self, active: jax.Array) -> jax.Array:
        """``[..., A(i), A(j)]``: agent ``i`` attends to the other active agents."""
        return F.off_diagonal(self.num_agents) & active[..., None, :]

    def q_all(self, critic_params, obs, act, active):
        """``Q_i(o, (u, a_{−i}))`` for every own action ``u``: ``[..., A, U]``, and the critic's regulariser."""
        if self.rule.critic == "attention":
            q, logits = self.critic.apply(critic_params, obs, act, self.attend_mask(active))
            allowed = jnp.broadcast_to(self.attend_mask(active)[..., None, :, :], logits.shape)
            reg = jnp.sum(logits ** 2) / jnp.maximum(allowed.sum(), 1)
            return q, self.config.attend_reg * reg
        A, U = self.num_agents, self.num_actions
        rows = jnp.broadcast_to(act[..., None, :, :], act.shape[:-2] + (A, A, U))
        eye = jnp.eye(A, dtype=bool)[..., None]

        def with_own(u):
            return self.critic.apply(critic_params, obs, jnp.where(eye, jax.nn.one_hot(u, U), rows))

        return jnp.moveaxis(jax.vmap(with_own)(jnp.arange(U)), 0, -1), jnp.zeros(())

    def q_joint(self, critic_params, obs, acts, active):
        """``Q_i`` at the joint action of row ``i`` of ``acts`` ``[..., A(i), A(j), U]`` → ``[..., A]``; the own
        action enters through ``acts[i, i]`` (one-hot or relaxed), so gradients reach it."""
        if self.rule.critic == "mlp":
            return self.critic.apply(critic_params, obs, acts)
        A = self.num_agents

        def row(i):
            q, _ = self.critic.apply(critic_params, obs, acts[..., i, :, :], self.attend_mask(active))
            return self.pick(q[..., i, :], acts[..., i, i, :])

        return jnp.moveaxis(jax.vmap(row)(jnp.arange(A)), 0, -1)

    def q_taken(self, critic_params, obs, act, active):
        """``Q_i(o, a)`` at one joint action ``act`` ``[..., A, U]`` → ``([..., A], regulariser)``."""
        if self.rule.critic == "attention":
            q, reg = self.q_all(critic_params, obs, act, active)
            return self.pick(q, act), reg
        return self.q_joint(critic_params, obs, self.rows(act), active), jnp.zeros(())

    def q_without(self, critic_params, obs, act, active):
        """``Q_i(o, a_{\\j})``: critic ``i`` with agent ``j`` left out of the joint action → ``[..., A(i), A(j)]``.
        Attention critic: ``j`` is removed from ``i``'s attention; concatenation critic: ``j``'s action is
        zeroed (the action a one-hot encoding cannot name)."""
        A = self.num_agents
        if self.rule.critic == "attention":
            def drop(j):
                keep = active & (jnp.arange(A) != j)
                q, _ = self.critic.apply(critic_params, obs, act, self.attend_mask(keep))
                return self.pick(q, act)
        else:
            def drop(j):
                a = jnp.where((jnp.arange(A) == j)[:, None], 0.0, act)
                return self.q_joint(critic_params, obs, self.rows(a), active)
        return jnp.moveaxis(jax.vmap(drop)(jnp.arange(A)), 0, -1)

    def rows(self, act):
        """``[..., A, U]`` → ``[..., A(i), A(j), U]``: every critic sees the same joint action."""
        return jnp.broadcast_to(act[..., None, :, :], act.shape[:-2] + (self.num_agents,) + act.shape[-2:])

    # -- init -----------------------------------------------------------------------------------------------
    def init_learner(self, rng: jax.Array) -> OffLearner:
        A, U, O = self.num_agents, self.num_actions, self.spec.obs_dim  # U: width of an encoded action
        k_a, k_c, k_x = jax.random.split(rng, 3)
        actor = self.policy.init(k_a, jnp.zeros((A, self.actor_in_dim)))
        obs, act = jnp.zeros((A, O)), jnp.zeros((A, U))
        if self.rule.critic == "attention":
            critic = self.critic.init(k_c, obs, act, self.attend_mask(jnp.ones((A,), bool)))
        else:
            critic = self.critic.init(k_c, obs, self.rows(act))
        learner = OffLearner(actor, critic, actor, critic, self.actor_tx.init(actor), self.critic_tx.init(critic),
                             self.rule.init_extra(self, k_x, actor), F.reward_stats_init(A), jnp.zeros((), jnp.int32))
        # strong dtypes throughout: a weakly typed leaf (a Python-scalar fill) would make the state returned by a
        # jitted step differ in type from a fresh one, and every jitted function compile twice
        return jax.tree.map(lambda x: jnp.asarray(x, dtype=x.dtype), learner)

    def _item(self) -> Experience:
        A, U, O = self.num_agents, self.num_actions, self.spec.obs_dim
        action = jnp.zeros((A,) + self.head.action_shape, self.head.action_dtype)
        return Experience(jnp.zeros((A, O)), jnp.zeros((A, U), bool), action, jnp.zeros((A,)),
                          jnp.zeros((A, O)), jnp.zeros((A, U), bool), jnp.zeros(()), jnp.zeros((A,), bool))

    def init(self, rng: jax.Array) -> OffTrainState:
        rng, k_learn, k_env = jax.random.split(rng, 3)
        env_state, ts = jax.vmap(self.env.reset)(jax.random.split(k_env, self.config.num_envs))
        return OffTrainState(self.init_learner(k_learn), self.buffer.init(self._item()), OffRunner(env_state, ts),
                             rng, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))

    def init_hidden(self, num_envs: int) -> jax.Array:
        """Feed-forward policies: a dummy ``[E, A, 1]`` state (kept for the protocol)."""
        return jnp.zeros((num_envs, self.num_agents, 1))

    @staticmethod
    def policy_params(state: OffTrainState):
        return state.learner.actor_params

    # -- acting ---------------------------------------------------------------------------------------------
    def draw_noise(self, key: jax.Array, lead: tuple) -> jax.Array:
        """The head's exploration noise ``lead + [A, ...]``: Gumbel ``[A, U]`` (``argmax(z + g)`` is a sample of
        ``softmax(z)``) or standard normal ``[A, D]``."""
        return self.head.noise(key, lead + (self.num_agents,))

    def act(self, actor_params, hidden, obs, avail, reset, noise, greedy: bool = False) -> PolicyStep:
        """The behaviour policy: the head's sample (``greedy``: the most likely action, or the mean policy,
        as Li et al. evaluate)."""
        logits = self.logits(actor_params, obs, avail)
        action, logp = self.head.act(logits, noise, greedy)
        return PolicyStep(hidden, action, logp, logits)

    def env_action(self, action: jax.Array) -> jax.Array:
        """Continuous actions: the normalised ``[−1, 1]`` vector mapped onto the env's box."""
        return self.head.env_action(action, self.spec.action_low, self.spec.action_high)

    def _env_step(self, keys, env_state, actions):
        if hasattr(self.env, "step_batch"):
            return self.env.step_batch(keys, env_state, actions)
        return jax.vmap(self.env.step)(keys, env_state, actions)

    def collect(self, state: OffTrainState, key: jax.Array):
        """``collect_steps`` env steps, each adding ``num_envs`` transitions → (runner, buffer, count, trace)."""
        c = self.config
        E = c.num_envs
        params = state.learner.actor_params

        def step(carry, k):
            runner, buf = carry
            k_n, k_e = jax.random.split(k)
            ts = runner.timestep
            pol = self.act(params, None, ts.obs, ts.avail, None, self.draw_noise(k_n, (E,)))
            env_state, nts = self._env_step(jax.random.split(k_e, E), runner.env_state, self.env_action(pol.action))
            ended = (nts.terminated | nts.truncated)[:, None, None]
            exp = Experience(ts.obs, ts.avail, pol.action.astype(self.head.action_dtype), nts.reward, nts.final_obs,
                             jnp.where(ended, True, nts.avail), nts.terminated.astype(jnp.float32), ts.active)
            ep = nts.episode
            trace = CollectTrace(ep.done, ep.returned_return, ep.returned_length.astype(jnp.float32),
                                 ep.returned_won, nts.reward,
                                 jnp.all(jnp.isfinite(nts.obs)) & jnp.all(jnp.isfinite(nts.reward)))
            return (OffRunner(env_state, nts), self.buffer.add(buf, exp)), trace

        (runner, buf), trace = jax.lax.scan(step, (state.runner, state.buffer),
                                            jax.random.split(key, c.collect_steps))
        return runner, buf, state.transitions + c.collect_steps * E, trace

    # -- one gradient step ------------------------------------------------------------------------------------
    def sample(self, buf, stats: F.RewardStats, key) -> OffBatch:
        e: Experience = self.buffer.sample(buf, key).experience
        r = F.normalise_rewards(stats, e.reward) if self.config.reward_norm else e.reward
        return OffBatch(e.obs, e.avail, e.action, self.head.encode(e.action), r, e.next_obs,
                        e.next_avail, e.terminated, e.active)

    def critic_loss(self, critic_params, learner: OffLearner, b: OffBatch, y):
        """Li et al. eq. 9 (MAAC, MADDPG): ``Σ_i E[(Q_i(o, a) − y_i)²]`` over active entries, plus the critic's
        regulariser (MAAC's attention-logit penalty)."""
        q, reg = self.q_taken(critic_params, b.obs, b.act, b.active)
        m = b.active.astype(q.dtype)
        per_agent = jnp.sum(m * (q - jax.lax.stop_gradient(y)) ** 2, 0) / jnp.maximum(m.sum(0), 1.0)
        return jnp.sum(per_agent) + reg, q

    def grad_step(self, learner: OffLearner, buf, key):
        c = self.config
        k_s, k_x, k_t, k_a = jax.random.split(key, 4)
        b = self.sample(buf, learner.reward_stats, k_s)
        metrics = {}
        if self.rule.before_step is not None:
            learner, metrics = self.rule.before_step(self, learner, b, k_x)
        y = self.rule.target(self, learner, b, k_t)
        (closs, q), g_c = jax.value_and_grad(self.critic_loss, has_aux=True)(learner.critic_params, learner, b, y)
        if self.rule.critic == "attention":
            # MAAC scales the shared attention modules' gradients by 1/n: each agent's loss reaches them
            g_c = jax.tree_util.tree_map_with_path(
                lambda p, g: g / self.num_agents if any("attend_" in str(k) for k in p) else g, g_c)
        upd, c_opt = self.critic_tx.update(g_c, learner.critic_opt, learner.critic_params)
        learner = learner._replace(critic_params=optax.apply_updates(learner.critic_params, upd), critic_opt=c_opt)
        (ploss, am), g_a = jax.value_and_grad(self.rule.actor_loss, argnums=1, has_aux=True)(
            self, learner.actor_params, learner, b, k_a)
        upd, a_opt = self.actor_tx.update(g_a, learner.actor_opt, learner.actor_params)
        learner = learner._replace(actor_params=optax.apply_updates(learner.actor_params, upd), actor_opt=a_opt)
        learner = learner._replace(target_actor=F.soft_update(learner.target_actor, learner.actor_params, c.tau),
                                   target_critic=F.soft_update(learner.target_critic, learner.critic_params, c.tau),
                                   grad_steps=learner.grad_steps + 1)
        if self.rule.after_step is not None:
            learner = self.rule.after_step(self, learner)
        logits = self.logits(learner.actor_params, b.obs, b.avail)
        m = b.active.astype(jnp.float32)
        n = jnp.maximum(m.sum(0), 1.0)
        out = {**metrics, **am, "critic_loss": closs, "policy_loss": ploss,
               "q_mean": jnp.sum(q * m, 0) / n,
               "entropy": jnp.sum(self.head.entropy(logits) * m, 0) / n,
               "grads_finite": _all_finite((g_a, g_c))}
        return learner, jax.tree.map(jax.lax.stop_gradient, out), b

    def learn(self, learner: OffLearner, buf, key):
        """``gradient_steps`` gradient steps → (learner, metrics averaged over the steps, last batch)."""
        def body(lr, k):
            lr, m, b = self.grad_step(lr, buf, k)
            return lr, (m, b)

        learner, (m, batches) = jax.lax.scan(body, learner, jax.random.split(key, self.config.gradient_steps))
        last = jax.tree.map(lambda x: x[-1], batches)
        return learner, m, last

    # -- one iteration ------------------------------------------------------------------------------------------
    def update(self, state: OffTrainState, _=None):
        rng, k_col, k_learn = jax.random.split(state.rng, 3)
        runner, buf, count, trace = self.collect(state, k_col)
        learner, metrics = self.learn_phase(state.learner, buf, count, trace, k_learn)
        return OffTrainState(learner, buf, runner, rng, state.update + 1, count), metrics

    def learn_phase(self, learner: OffLearner, buf, count, trace: "CollectTrace", key):
        """Everything after the collection: reward statistics, the gated gradient steps, the metrics. The host
        path (:mod:`trustmarl.offpolicy.host`) runs the very same function after collecting on the host."""
        stats = F.reward_stats_update(learner.reward_stats, trace.reward)
        learner = learner._replace(reward_stats=stats)
        ready = count >= self.learn_start
        shapes = jax.eval_shape(self.learn, learner, buf, key)

        def skip(lr, bf, k):
            nan = jax.tree.map(lambda s: jnp.full(s.shape, jnp.nan, s.dtype) if jnp.issubdtype(s.dtype, jnp.floating)
                               else jnp.ones(s.shape, s.dtype), shapes[1])
            last = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes[2])
            return lr, nan, last

        new, m, last = jax.lax.cond(ready, self.learn, skip, learner, buf, key)
        before = self.logits(learner.actor_params, last.obs, last.avail)
        after = self.logits(new.actor_params, last.obs, last.avail)
        mask = last.active.astype(jnp.float32)
        kl = jnp.sum(self.head.kl(before, after) * mask, 0) / jnp.maximum(mask.sum(0), 1.0)
        grads_ok = jnp.all(m.pop("grads_finite"))
        out = {k: jnp.nanmean(v, 0) for k, v in m.items()}
        out["kl_iteration"] = jnp.where(ready, kl, jnp.nan)
        d = trace.done.astype(jnp.float32)
        n_done = d.sum()
        mean_done = lambda x: jnp.where(n_done > 0, (x * d).sum() / jnp.maximum(n_done, 1.0), jnp.nan)  # noqa
        out.update({"return_mean": mean_done(trace.ret), "episode_length": mean_done(trace.length),
                    "episodes": n_done, "reward_mean": trace.reward.mean(), "learning": ready.astype(jnp.float32)})
        if self.spec.has_win:
            out["win_rate"] = mean_done(trace.won)
        losses_ok = jnp.isfinite(out["critic_loss"]) & jnp.isfinite(out["policy_loss"]) | ~ready
        params_ok = _all_finite((new.actor_params, new.critic_params))
        bad = [~jnp.all(trace.env_ok), ~losses_ok, ~grads_ok, ~params_ok]
        out["nonfinite"] = sum(jnp.where(x, bit, 0) for x, bit in zip(bad, (1, 2, 4, 8))).astype(jnp.int32)
        return new, out

    # -- whole runs -------------------------------------------------------------------------------------------
    def __call__(self, rng: jax.Array):
        state = self.init(rng)
        return jax.lax.scan(self.update, state, None, self.num_updates)

    def run_chunk(self, state: OffTrainState, num_updates: int):
        return jax.lax.scan(self.update, state, None, num_updates)


def _all_finite(tree) -> jax.Array:
    leaves = jax.tree.leaves(tree)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves])) if leaves else jnp.asarray(True)


def effective_buffer_size(config: Config, num_agents: int) -> int:
    """The transitions the buffer of ``config`` holds (see the module docstring)."""
    d = config.derived(num_agents)
    return max(config.batch_size, min(config.buffer_size, d.env_steps))


__all__ = ["OffPolicyTrainer", "OffTrainState", "OffLearner", "OffBatch", "Experience", "CollectTrace", "METRIC_SCHEMA",
           "effective_buffer_size"]

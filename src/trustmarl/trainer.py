"""The on-policy trainer: ``make_train(config) -> train(rng)``, pure and jitted with the environment.

Layout everywhere: ``[T time, E env, A agent, ...]``. One update is

1. **rollout** — ``lax.scan`` over T steps of the actor and the env, ``vmap``-ed over E envs;
   the critic is *not* run inside the loop:
2. **critic pass** — one batched pass over the whole rollout gives ``V(s_t)``, the value of every
   pre-reset final state (bootstrap at truncations) and ``V(s_T)``;
3. **advantages** — seam 1, :func:`trustmarl.losses.gae`;
4. **epochs × minibatches** — the surrogate (seams 2 and 3: ratio and clipping) and the critic loss
   (seam 5 decided what the critic sees), with agents updated in the order of seam 4;
5. **trust-region measurements** after every epoch, from the full action distributions on the
   rollout's states (:func:`trustmarl.trust_region.measure_update`).

``train(rng)`` runs the whole budget as one ``lax.scan`` (``jax.vmap`` it over seeds); the CLI instead
calls :meth:`Trainer.run_chunk` repeatedly to log, draw progress and checkpoint between jitted chunks.
"""
from __future__ import annotations

import json
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from trustmarl import losses as L
from trustmarl import trust_region as TR
from trustmarl.algos import ALGORITHMS
from trustmarl.config import Config
from trustmarl.envs import AdapterState, Timestep, make_env
from trustmarl.networks import Actor, AgentNets, Critic, apply_agents, distribution, init_agents


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
    reset: jax.Array  # [T,E] bool, obs_t starts an episode
    terminated: jax.Array  # [T,E] bool
    truncated: jax.Array  # [T,E] bool
    ep_done: jax.Array  # [T,E] bool, an episode finished at step t
    ep_return: jax.Array  # [T,E] finished episode's return (valid where ep_done)
    ep_length: jax.Array  # [T,E]
    ep_won: jax.Array  # [T,E]


class RunnerState(NamedTuple):
    env_state: AdapterState  # batched over E
    timestep: Timestep  # last timestep, batched over E
    reset: jax.Array  # [E] bool, the current obs starts an episode
    actor_h: jax.Array  # [E,A,H]
    critic_h: jax.Array  # [E,A,H]


class LearnerState(NamedTuple):
    actor_params: Any
    critic_params: Any
    actor_opt: Any
    critic_opt: Any
    value_norm: L.ValueNormState


class TrainState(NamedTuple):
    learner: LearnerState
    runner: RunnerState
    rng: jax.Array
    update: jax.Array  # int32, updates done


class Batch(NamedTuple):
    """What the losses see; layout ``[T', B', A, ...]`` (FF: T'=1, B' = env-steps; GRU: T'=T, B' = envs)."""

    actor_in: jax.Array
    critic_in: jax.Array
    avail: jax.Array
    action: jax.Array
    logp: jax.Array
    dist: jax.Array
    active: jax.Array
    reset: jax.Array  # [T', B']
    value: jax.Array  # [T',B',A] old value (network space: normalised when value_norm)
    target: jax.Array  # [T',B',A] λ-return, un-normalised
    adv: jax.Array  # [T',B',A] normalised advantage per agent
    adv_joint: jax.Array  # [T',B'] centralised advantage (mean over active agents)
    actor_h: jax.Array  # [B',A,H] hidden at the start of the sequence
    critic_h: jax.Array


# ---------------------------------------------------------------------------------------------------------
class Trainer:
    """Holds the static pieces (env, networks, optimisers) and the pure functions built on them.

    Calling the trainer, ``trainer(rng)``, is the pure ``train(rng)`` of the purejaxrl pattern.
    """

    def __init__(self, config: Config, env=None):
        """``env``: an already-built environment with a ``spec`` (e.g. a host vector env); default: the
        registry's JAX env named by ``config.env``."""
        self.config = c = config
        self.algo = ALGORITHMS[c.algo]
        env_opts = json.loads(c.env_options) if c.env_options else {}
        if c.env == "smax":
            env_opts.setdefault("map", c.map)
        if c.env in ("mpe_spread", "spread"):
            env_opts.setdefault("num_agents", c.num_agents)
        if c.global_state != "auto":
            env_opts["global_state"] = c.global_state
        try:
            self.env = env if env is not None else make_env(c.env, **env_opts)
        except ValueError as err:
            from trustmarl.config import ConfigError
            raise ConfigError(str(err)) from None
        self.spec = spec = self.env.spec
        if hasattr(self.env, "compute_state"):
            self.env.compute_state = c.critic_input == "global"
        self.num_agents = A = spec.num_agents
        self.d = d = c.derived(A)
        self.num_updates = d["num_updates"]
        self.recurrent = c.network == "gru"
        self.hidden_size = c.hidden[-1] if self.recurrent else 1
        self.actor_in_dim = spec.obs_dim + (A if c.agent_id else 0)
        if c.critic_input == "global":
            self.critic_in_dim = spec.state_dim
        else:
            self.critic_in_dim = spec.obs_dim + (A if c.agent_id else 0)
        actor = Actor(num_actions=spec.num_actions, discrete=spec.discrete, hidden=c.hidden,
                      recurrent=self.recurrent, activation=c.activation, layer_norm_input=c.layer_norm_input)
        critic = Critic(hidden=c.hidden, recurrent=self.recurrent, activation=c.activation,
                        layer_norm_input=c.layer_norm_input)
        self.actor = AgentNets(actor, c.share_params, A, self.hidden_size)
        self.critic = AgentNets(critic, c.share_params, A, self.hidden_size)
        n_opt_steps = c.update_epochs * c.num_minibatches

        def opt(lr):
            sched = (lambda count: lr * (1.0 - (count // n_opt_steps) / self.num_updates)) if c.anneal_lr else lr
            return optax.chain(optax.clip_by_global_norm(c.max_grad_norm),
                               optax.adam(learning_rate=sched, eps=c.adam_eps))

        self.actor_tx = opt(c.lr)
        self.critic_tx = opt(d["critic_lr"])
        eps = d["clip_eps"]
        if c.no_clip:
            self.clip_low, self.clip_high = -jnp.inf, jnp.inf
        else:
            self.clip_low, self.clip_high = TR.clip_bounds(eps, c.clip_kind)
        self.value_clip = None if not c.value_clip else d["value_clip_eps"]

    # -- inputs -------------------------------------------------------------------------------------------
    def _with_id(self, obs):
        if not self.config.agent_id:
            return obs
        ids = jnp.broadcast_to(jnp.eye(self.num_agents, dtype=obs.dtype), obs.shape[:-1] + (self.num_agents,))
        return jnp.concatenate([obs, ids], axis=-1)

    def _critic_in(self, obs, state):
        return state if self.config.critic_input == "global" else self._with_id(obs)

    # -- init ---------------------------------------------------------------------------------------------
    def init_learner(self, rng: jax.Array) -> LearnerState:
        """Fresh parameters, optimiser states and value normaliser."""
        k_a, k_c = jax.random.split(rng)
        actor_params = init_agents(self.actor, k_a, jnp.zeros((self.actor_in_dim,)),
                                   jnp.ones((self.spec.num_actions,), bool))
        critic_params = init_agents(self.critic, k_c, jnp.zeros((self.critic_in_dim,)))
        return LearnerState(actor_params, critic_params, self.actor_tx.init(actor_params),
                            self.critic_tx.init(critic_params), L.value_norm_init())

    def init(self, rng: jax.Array) -> TrainState:
        A, E = self.num_agents, self.config.num_envs
        rng, k_learn, k_env = jax.random.split(rng, 3)
        learner = self.init_learner(k_learn)
        env_state, ts = jax.vmap(self.env.reset)(jax.random.split(k_env, E))
        h = jnp.zeros((E, A, self.hidden_size))
        runner = RunnerState(env_state, ts, jnp.ones((E,), bool), h, h)
        return TrainState(learner, runner, rng, jnp.zeros((), jnp.int32))

    # -- rollout ------------------------------------------------------------------------------------------
    def _env_step(self, keys, env_state, actions):
        """Step the batch of envs (the adapter's conditional-reset batch step when it has one)."""
        if hasattr(self.env, "step_batch"):
            return self.env.step_batch(keys, env_state, actions)
        return jax.vmap(self.env.step)(keys, env_state, actions)

    def _sample(self, out: jax.Array, noise: jax.Array):
        """Sample actions from actor outputs ``out`` [E, A, ·] with pre-drawn ``noise``; returns (action, logp).

        Discrete: inverse-CDF sampling, ``a = #{k : F_k < u·F_U}`` with ``F`` the cumulative probabilities and
        one uniform ``u`` per agent (masked actions have zero mass, so they are never drawn). Gaussian:
        ``a = μ + σ·ξ``. Drawing all of a rollout's noise in one call before the time loop, and one number per
        agent rather than Gumbel noise per action, makes sampling several times cheaper on a CPU than calling
        ``distrax``'s ``sample`` inside the loop; the distribution is the same.
        """
        if self.spec.discrete:
            cdf = jnp.cumsum(jax.nn.softmax(out, axis=-1), axis=-1)
            action = jnp.sum(cdf < noise[..., None] * cdf[..., -1:], axis=-1)
            action = jnp.minimum(action, self.spec.num_actions - 1)
        else:
            mean, log_std = jnp.split(out, 2, axis=-1)
            action = mean + jnp.exp(log_std) * noise
        return action, self._logp_entropy(out, action)[0]

    def rollout(self, learner: LearnerState, runner: RunnerState, rng: jax.Array):
        c = self.config
        E, A, T = c.num_envs, self.num_agents, c.rollout_length
        k_noise, k_env = jax.random.split(rng)
        if self.spec.discrete:
            noise = jax.random.uniform(k_noise, (T, E, A))
        else:
            noise = jax.random.normal(k_noise, (T, E, A, self.spec.num_actions))
        env_keys = jax.random.split(k_env, T * E).reshape((T, E) + k_env.shape)

        def step(runner: RunnerState, xs):
            step_noise, keys = xs
            ts = runner.timestep
            x = self._with_id(ts.obs)
            h, out = apply_agents(self.actor, learner.actor_params, runner.actor_h, x[None],
                                  runner.reset[None], ts.avail[None])
            out = out[0]
            action, logp = self._sample(out, step_noise)
            # Gaussian samples are clipped for the env only: the log-prob stays that of the sampled action.
            env_action = action if self.spec.discrete else jnp.clip(
                action, self.spec.action_low, self.spec.action_high)
            env_state, nts = self._env_step(keys, runner.env_state, env_action)
            done = nts.terminated | nts.truncated
            final_cin = self._critic_in(nts.final_obs, nts.final_state) if c.bootstrap_truncation else None
            tr = Transition(
                actor_in=x, critic_in=self._critic_in(ts.obs, ts.state), final_critic_in=final_cin,
                avail=ts.avail, action=action, logp=logp, dist=out, reward=nts.reward, active=ts.active,
                reset=runner.reset, terminated=nts.terminated, truncated=nts.truncated,
                ep_done=nts.episode.done, ep_return=nts.episode.returned_return,
                ep_length=nts.episode.returned_length.astype(jnp.float32), ep_won=nts.episode.returned_won)
            return RunnerState(env_state, nts, done, h, runner.critic_h), tr

        return jax.lax.scan(step, runner, (noise, env_keys))

    # -- critic pass and advantages ---------------------------------------------------------------------
    def evaluate(self, learner: LearnerState, runner_start: RunnerState, runner_end: RunnerState,
                 traj: Transition):
        """Values of the rollout, bootstrap values and GAE. Returns (values, targets, advantages, critic_h)."""
        c = self.config
        h_end, out = apply_agents(self.critic, learner.critic_params, runner_start.critic_h, traj.critic_in,
                                  traj.reset, traj.final_critic_in)
        if c.bootstrap_truncation:
            values, final_values = out
        else:
            values, final_values = out, jnp.zeros_like(out)
        ts = runner_end.timestep
        last_in = self._critic_in(ts.obs, ts.state)[None]
        _, last_value = apply_agents(self.critic, learner.critic_params, h_end, last_in, runner_end.reset[None])
        vn = learner.value_norm
        denorm = (lambda v: L.denormalize(vn, v)) if c.value_norm else (lambda v: v)
        v = denorm(values)
        # V'_t: V_{t+1} within an episode; the pre-reset final state's value where step t ended an episode.
        following = jnp.concatenate([v[1:], denorm(last_value)], axis=0)
        ended = (traj.terminated | traj.truncated)[..., None]
        next_v = jnp.where(ended, denorm(final_values), following)
        adv, targets = L.gae(traj.reward, v, next_v, traj.terminated[..., None], ended, c.gamma, c.gae_lambda)
        return values, targets, adv, h_end

    # -- losses -------------------------------------------------------------------------------------------
    def _mask(self, active):
        return active if self.config.use_active_masks else jnp.ones_like(active)

    def actor_loss(self, params, b: Batch):
        """Seam 2 (ratio) and seam 3 (surrogate, clipping); returns (loss, per-agent diagnostics)."""
        c = self.config
        _, out = apply_agents(self.actor, params, b.actor_h, b.actor_in, b.reset, b.avail)
        logp, entropy = self._logp_entropy(out, b.action)
        mask = self._mask(b.active)
        log_ratio = TR.independent_log_ratio(logp, b.logp)
        if c.ratio == "joint":
            joint_lr = TR.joint_log_ratio(logp, b.logp, mask)
            step_mask = jnp.any(mask, axis=-1)
            surr = TR.clipped_surrogate(jnp.exp(joint_lr), b.adv_joint, self.clip_low, self.clip_high)
            pg_loss = -L.masked_mean(surr, step_mask)
            clipped = ((b.adv_joint > 0) & (jnp.exp(joint_lr) > self.clip_high)) | \
                      ((b.adv_joint < 0) & (jnp.exp(joint_lr) < self.clip_low))
            clipped = jnp.broadcast_to(clipped[..., None], mask.shape)
        else:
            ratio = jnp.exp(log_ratio)
            surr = TR.clipped_surrogate(ratio, b.adv, self.clip_low, self.clip_high)
            pg_loss = -L.masked_mean(surr, mask)
            clipped = ((b.adv > 0) & (ratio > self.clip_high)) | ((b.adv < 0) & (ratio < self.clip_low))
        ent = L.masked_mean(entropy, mask)
        loss = pg_loss - c.ent_coef * ent
        metrics = jax.lax.stop_gradient(self._actor_diagnostics(log_ratio, clipped, entropy, mask))
        metrics["policy_loss"] = jax.lax.stop_gradient(pg_loss)
        if c.measure_trust_region and c.measure_at == "minibatch":
            metrics["tr"] = self._measure_outputs(b, jax.lax.stop_gradient(out), jax.lax.stop_gradient(logp))
        return loss, metrics

    def _logp_entropy(self, out, action):
        """Log-prob of ``action`` and entropy; for categoricals from one shared log-softmax."""
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
        _, value = apply_agents(self.critic, params, b.critic_h, b.critic_in, b.reset)
        target = L.normalize(vn, b.target) if c.value_norm else b.target
        mask = self._mask(b.active)
        per = L.value_loss(value, b.value, target, self.value_clip, c.huber_delta)
        loss = c.vf_coef * L.masked_mean(per, mask)
        pred = L.denormalize(vn, value) if c.value_norm else value
        ev = jax.vmap(L.explained_variance, in_axes=(-1, -1, -1))(pred, b.target, mask)
        return loss, {"value_loss": jax.lax.stop_gradient(L.masked_mean(per, mask)),
                      "explained_variance": jax.lax.stop_gradient(ev)}

    # -- one minibatch step: seam 4 (update order) ----------------------------------------------------------
    def minibatch_step(self, learner: LearnerState, b: Batch):
        """Simultaneous update: every agent's parameters take one gradient step on the same minibatch."""
        c = self.config
        vn = learner.value_norm
        if c.value_norm:
            vn = L.value_norm_update(vn, b.target, c.value_norm_beta, self._mask(b.active))
        (_, am), ag = jax.value_and_grad(self.actor_loss, has_aux=True)(learner.actor_params, b)
        (_, cm), cg = jax.value_and_grad(self.critic_loss, has_aux=True)(learner.critic_params, b, vn)
        a_upd, a_opt = self.actor_tx.update(ag, learner.actor_opt, learner.actor_params)
        c_upd, c_opt = self.critic_tx.update(cg, learner.critic_opt, learner.critic_params)
        learner = LearnerState(optax.apply_updates(learner.actor_params, a_upd), optax.apply_updates(
            learner.critic_params, c_upd), a_opt, c_opt, vn)
        return learner, {**am, **cm}

    # -- batching -----------------------------------------------------------------------------------------
    def _make_batch(self, traj: Transition, values, targets, adv, runner_start: RunnerState) -> Batch:
        c = self.config
        mask = self._mask(traj.active)
        if c.adv_norm:
            adv = L.normalize_advantages(adv, mask)
        m = mask.astype(adv.dtype)
        adv_joint = (adv * m).sum(-1) / jnp.maximum(m.sum(-1), 1.0)
        return Batch(traj.actor_in, traj.critic_in, traj.avail, traj.action, traj.logp, traj.dist, traj.active,
                     traj.reset, values, targets, adv, adv_joint, runner_start.actor_h, runner_start.critic_h)

    def _minibatches(self, batch: Batch, key) -> Batch:
        """Shuffle and split into ``num_minibatches`` along the leading axis of the result."""
        c = self.config
        M = c.num_minibatches
        if self.recurrent:
            perm = jax.random.permutation(key, c.num_envs)

            def split(x, env_axis):
                x = jnp.take(x, perm, axis=env_axis)
                shape = x.shape[:env_axis] + (M, c.num_envs // M) + x.shape[env_axis + 1:]
                return jnp.moveaxis(x.reshape(shape), env_axis, 0)

            seq = {f: split(getattr(batch, f), 1) for f in Batch._fields if f not in ("actor_h", "critic_h")}
            return Batch(**seq, actor_h=split(batch.actor_h, 0), critic_h=split(batch.critic_h, 0))
        n = c.num_envs * c.rollout_length
        perm = jax.random.permutation(key, n)

        def split(x):
            x = x.reshape((n,) + x.shape[2:])
            x = jnp.take(x, perm, axis=0)
            return x.reshape((M, 1, n // M) + x.shape[1:])

        seq = {f: split(getattr(batch, f)) for f in Batch._fields if f not in ("actor_h", "critic_h")}
        h = jnp.zeros((M, n // M, self.num_agents, self.hidden_size))
        return Batch(**seq, actor_h=h, critic_h=h)

    # -- trust-region measurement -------------------------------------------------------------------------
    def measure(self, actor_params, batch: Batch) -> TR.UpdateMeasures:
        """Measurements of the update so far against the behaviour policy, on every rollout state."""
        _, out = apply_agents(self.actor, actor_params, batch.actor_h, batch.actor_in, batch.reset, batch.avail)
        logp_new, _ = self._logp_entropy(out, batch.action)
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

    @staticmethod
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

    # -- one update ---------------------------------------------------------------------------------------
    def learn(self, learner: LearnerState, traj: Transition, start: RunnerState, end: RunnerState, rng: jax.Array):
        """Everything after the rollout: critic pass, advantages, epochs, measurements.

        ``start``/``end`` are the runner states before and after the rollout (only their hidden states,
        reset flags and last timestep are read), so a rollout collected on the host (``trustmarl.host``)
        goes through the very same learning step. Returns ``(learner, critic_h, metrics)``.
        """
        c = self.config
        values, targets, adv, critic_h = self.evaluate(learner, start, end, traj)
        batch = self._make_batch(traj, values, targets, adv, start)

        def epoch(learner, key):
            mbs = self._minibatches(batch, key)
            learner, mb_metrics = jax.lax.scan(self.minibatch_step, learner, mbs)
            tr = None
            if c.measure_trust_region:
                if c.measure_at == "epoch_end":
                    tr = self.measure(learner.actor_params, batch)
                else:
                    tr = self._combine_measures(mb_metrics.pop("tr"))
            return learner, (mb_metrics, tr)

        learner, (mb_metrics, tr) = jax.lax.scan(epoch, learner, jax.random.split(rng, c.update_epochs))
        return learner, critic_h, self._summarise(traj, mb_metrics, tr)

    def update(self, state: TrainState, _=None):
        rng, k_roll, k_learn = jax.random.split(state.rng, 3)
        runner, traj = self.rollout(state.learner, state.runner, k_roll)
        learner, critic_h, metrics = self.learn(state.learner, traj, state.runner, runner, k_learn)
        return TrainState(learner, runner._replace(critic_h=critic_h), rng, state.update + 1), metrics

    def _summarise(self, traj: Transition, mb, tr) -> dict:
        """Per-update metrics: scalars, per-agent [A] arrays, and per-epoch trust-region arrays."""
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
            v = flat(v)
            if k == "ratio_min":
                out[k] = v.min(0)
            elif k == "ratio_max":
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


def make_train(config: Config, env=None) -> Trainer:
    """``train = make_train(config); state, metrics = jax.jit(train)(rng)`` (``jax.vmap`` it over seeds)."""
    return Trainer(config, env)

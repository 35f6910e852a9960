"""How the run loop executes chunks of updates: one driver for JAX envs, one for host-path envs.

A driver has ``init() -> state`` (seeds on a leading axis), ``compile(state, n) -> bool`` (compiles the
chunk program once per chunk size; True when it did), ``run(state, n) -> (state, metrics [S, n, ...])``,
``trainer`` (the protocol object) and ``close()``. The state is the whole pytree the loop checkpoints.

* :class:`JaxDriver` — ``jax.jit(jax.vmap(trainer.run_chunk))``: env, policy and learning in one program.
  With ``devices`` other than 1 the seed axis is split over a one-axis :class:`jax.sharding.Mesh` (axis
  ``"seeds"``) and each device runs the vmapped program on its own block of seeds (``jax.shard_map``): seeds
  are independent, so no device ever talks to another; every seed starts from the same key as on one device
  and its metrics agree with the one-device run to float32 rounding (XLA compiles the program for S/D seeds
  instead of S, which may order a reduction differently; changing ``num_seeds`` does the same on one device).
* :class:`HostDriver` — Python environments (PettingZoo, GRF) stepped in worker processes by
  :class:`trustmarl.envs.host_vector.HostVectorEnv`; the policy step (:meth:`act` of the trainer) and the
  learning step (``trainer.learn``) are jitted. One seed (the envs are not vmapped). Env states live in
  the workers and are not checkpointed: a resumed host run starts fresh episodes.
"""
from __future__ import annotations

import time
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np


def seed_keys(config) -> jax.Array:
    """Seed ``i`` of ``num_seeds`` uses key ``split(PRNGKey(seed), num_seeds)[i]``."""
    return jax.random.split(jax.random.PRNGKey(config.seed), config.num_seeds)


SEED_AXIS = "seeds"


def select_devices(requested: int, num_seeds: int, available: Optional[list] = None) -> list:
    """The devices a JAX run shards its seeds over (the first ``n`` of ``available``, default ``jax.devices()``).

    ``requested`` is the ``devices`` config key: 1 one device; ``n > 1`` exactly ``n`` devices, which must
    exist and divide ``num_seeds``; 0 the largest ``n <= len(available)`` dividing ``num_seeds`` (5 seeds on 8
    GPUs use 5; 3 seeds on 2 devices use 1), so an automatic choice never fails and never pads seeds.
    One-line :class:`~trustmarl.config.ConfigError` otherwise."""
    from trustmarl.config import ConfigError
    available = list(jax.devices()) if available is None else list(available)
    if requested == 0:
        n = max(d for d in range(1, len(available) + 1) if num_seeds % d == 0)
    elif requested > len(available):
        kind = available[0].platform if available else "none"
        raise ConfigError(f"devices={requested} but jax.devices() has {len(available)} ({kind}); allowed: 0 (all "
                          f"that divide num_seeds) or 1..{len(available)} (on the CPU, more host devices need "
                          f"XLA_FLAGS=--xla_force_host_platform_device_count=N before jax is imported)")
    elif num_seeds % requested:
        raise ConfigError(f"devices={requested} does not divide num_seeds={num_seeds}; allowed: a device count "
                          f"dividing num_seeds, or devices=0")
    else:
        n = requested
    return available[:n]


class JaxDriver:
    """Runs the seed-vmapped trainer as one jitted program, on one device or with the seeds sharded.

    ``devices`` (:func:`select_devices`) decides the layout: on one device the programs are
    ``jit(vmap(f))``; on ``D > 1`` devices they are ``jit(shard_map(vmap(f)))`` over the mesh axis ``"seeds"``,
    device ``d`` holding seeds ``d*S/D .. (d+1)*S/D - 1`` of every state leaf and metric. The seed keys are the
    same either way (:func:`seed_keys`), so a seed's run depends on the device count only through float32
    rounding (tests/test_sharding.py)."""

    def __init__(self, trainer):
        self.trainer = trainer
        self.num_seeds = trainer.config.num_seeds
        self.devices = select_devices(trainer.config.devices, self.num_seeds)
        if len(self.devices) > 1:
            from jax.sharding import Mesh, NamedSharding, PartitionSpec
            self.mesh = Mesh(np.asarray(self.devices), (SEED_AXIS,))
            self.sharding = NamedSharding(self.mesh, PartitionSpec(SEED_AXIS))
        else:
            self.mesh = self.sharding = None
        self._chunk = jax.jit(self._chunk_fn, static_argnums=1)
        self._init = jax.jit(self._per_device(jax.vmap(self.trainer.init)))  # once per driver (resume inits too)
        self._compiled: dict[int, Any] = {}

    def _per_device(self, fn):
        """``fn`` (seed-vmapped) as it runs: itself on one device, else on each device's block of seeds."""
        if self.mesh is None:
            return fn
        from jax.sharding import PartitionSpec
        # Every input leaf and output leaf has the seed axis first; no collective is used, so the
        # replication check has nothing to verify (and is skipped for primitives it has no rule for).
        return jax.shard_map(fn, mesh=self.mesh, in_specs=PartitionSpec(SEED_AXIS),
                             out_specs=PartitionSpec(SEED_AXIS), check_vma=False)

    def _chunk_fn(self, state, n: int):
        return self._per_device(jax.vmap(lambda s: self.trainer.run_chunk(s, n)))(state)

    def _place(self, tree):
        """Seed-sharded over the mesh (a restored checkpoint arrives on the host or on one device)."""
        return tree if self.sharding is None else jax.device_put(tree, self.sharding)

    def init(self):
        return self._init(self._place(seed_keys(self.trainer.config)))

    def compile(self, state, n: int) -> bool:
        if n in self._compiled:
            return False
        self._compiled[n] = self._chunk.lower(self._place(state), n).compile()
        return True

    def run(self, state, n: int):
        self.compile(state, n)
        state, metrics = self._compiled[n](self._place(state))
        jax.block_until_ready(state)
        return state, metrics

    def close(self):
        pass


class HostState(NamedTuple):
    """What a host-path run checkpoints: the learner, the key chain and the update count (seed axis of 1)."""

    learner: Any
    rng: jax.Array
    act_key: jax.Array
    update: jax.Array


def _light_runner(trainer_mod, ts, reset, actor_h, critic_h):
    """A RunnerState for ``learn``: it reads only the hidden states, reset flags and last timestep."""
    from trustmarl.envs.core import Timestep
    light = Timestep(obs=jnp.asarray(ts.obs), state=jnp.asarray(ts.state), avail=None, reward=None,
                     terminated=None, truncated=None, active=None, final_obs=None, final_state=None, episode=None)
    return trainer_mod.RunnerState(env_state=None, timestep=light, reset=jnp.asarray(reset), actor_h=actor_h,
                                   critic_h=critic_h)


def open_host_envs(config, env_fn: Callable[[], Any], async_: bool, episode_limit: Optional[int],
                   context: Optional[str], num_envs: Optional[int]):
    """The host path's vector env and the config's trainer built on it (any family): ``(global_state, venv,
    trainer)``; the workers are closed again if the trainer cannot be built."""
    from trustmarl.envs.host_vector import HostVectorEnv
    from trustmarl.trainers import make_train
    c = config
    if c.num_seeds != 1:
        raise ValueError(f"num_seeds={c.num_seeds} is not supported on the host path; allowed: 1")
    global_state = "concat_obs" if c.global_state == "auto" else c.global_state
    # A worker that hangs is stopped after stall_timeout seconds for one reset/step (one line, no leftover
    # processes) rather than by the watchdog, which ends the whole process.
    venv = HostVectorEnv(env_fn, num_envs or c.num_envs, global_state=global_state, seed=c.seed,
                         async_=async_, episode_limit=episode_limit, context=context,
                         timeout=c.stall_timeout if c.stall_timeout > 0 else None)
    try:
        trainer = make_train(c, env=venv)
    except Exception:
        venv.close()
        raise
    return global_state, venv, trainer


class HostDriver:
    """Rollouts collected on the host, then the trainer's own jitted ``learn`` (the same learning step)."""

    def __init__(self, config, env_fn: Callable[[], Any], *, async_: bool = True,
                 episode_limit: Optional[int] = None, context: Optional[str] = "spawn",
                 num_envs: Optional[int] = None):
        """``num_envs`` overrides ``config.num_envs`` (evaluation steps its own number of envs)."""
        c = config
        self.global_state, self.venv, self.trainer = open_host_envs(c, env_fn, async_, episode_limit, context,
                                                                    num_envs)
        self.num_seeds = 1
        self.devices = jax.devices()[:1]  # the jitted policy and learning steps run on the default device
        self.env_s = 0.0
        self._act = jax.jit(self._act_fn)
        self._learn = jax.jit(self.trainer.learn)
        self._assemble = jax.jit(self._assemble_fn)
        self._ts = None  # host runner: last timestep, reset flags, hidden states (not checkpointed)

    # -- jitted pieces ------------------------------------------------------------------------------------
    def _act_fn(self, learner, h, obs, avail, reset, key):
        key, k = jax.random.split(key)
        t = self.trainer
        pol = t.act(learner.actor_params, h, obs, avail, reset, t.draw_noise(k, (obs.shape[0],)),
                    groups=t.behaviour_groups(learner))
        return pol, key

    def _assemble_fn(self, raw):
        """numpy rollout → Transition (actor/critic inputs built as in the JAX rollout)."""
        from trustmarl.trainers.on_policy import Transition
        t = self.trainer
        final_cin = t.critic_in(raw["final_obs"], raw["final_state"]) if t.config.bootstrap_truncation else None
        return Transition(
            actor_in=raw["actor_in"] if "actor_in" in raw else t.actor_input(raw["obs"]),
            critic_in=t.critic_in(raw["obs"], raw["state"]),
            final_critic_in=final_cin, avail=raw["avail"], action=raw["action"], logp=raw["logp"],
            dist=raw["dist"], reward=raw["reward"], active=raw["active"], reset=raw["reset"],
            terminated=raw["terminated"], truncated=raw["truncated"], ep_done=raw["ep_done"],
            ep_return=raw["ep_return"], ep_length=raw["ep_length"], ep_won=raw["ep_won"])

    # -- driver interface ---------------------------------------------------------------------------------
    def init(self) -> HostState:
        key = jax.random.PRNGKey(self.trainer.config.seed)
        key, k_init, k_act = jax.random.split(key, 3)
        learner = self.trainer.init_learner(k_init)
        return jax.tree.map(lambda x: x[None], HostState(learner, key, k_act, jnp.zeros((), jnp.int32)))

    def compile(self, state, n: int) -> bool:
        return False  # compiled on the first call; the loop counts the first update's time as compile time

    def _start_envs(self):
        E = self.trainer.config.num_envs
        ts = self.venv.reset(seed=self.trainer.config.seed)
        h = self.trainer.init_hidden(E)
        self._ts = (ts, np.ones(E, bool), h, h)

    def run(self, state: HostState, n: int):
        from trustmarl.trainers import on_policy
        if self._ts is None:
            self._start_envs()
        t = self.trainer
        T = t.config.rollout_length
        st = jax.tree.map(lambda x: x[0], state)
        learner, key, k_act = st.learner, st.rng, st.act_key
        ts, reset, actor_h, critic_h = self._ts
        history = []
        for _ in range(n):
            start = _light_runner(on_policy, ts, reset, actor_h, critic_h)
            raw = {k: [] for k in ("obs", "state", "avail", "active", "reset", "action", "logp", "dist",
                                   "reward", "terminated", "truncated", "final_obs", "final_state",
                                   "ep_done", "ep_return", "ep_length", "ep_won")}
            for _step in range(T):
                pol, k_act = self._act(learner, actor_h, ts.obs, ts.avail, reset, k_act)
                actor_h = pol.hidden
                action, logp, dist = np.asarray(pol.action), np.asarray(pol.logp), np.asarray(pol.dist)
                te = time.perf_counter()
                nts = self.venv.step(np.asarray(t.env_action(action)))
                self.env_s += time.perf_counter() - te
                for k, v in (("obs", ts.obs), ("state", ts.state), ("avail", ts.avail),
                             ("active", ts.active), ("reset", reset), ("action", action), ("logp", logp),
                             ("dist", dist), ("reward", nts.reward), ("terminated", nts.terminated),
                             ("truncated", nts.truncated), ("final_obs", nts.final_obs),
                             ("final_state", nts.final_state), ("ep_done", nts.episode.done),
                             ("ep_return", nts.episode.returned_return),
                             ("ep_length", nts.episode.returned_length.astype(np.float32)),
                             ("ep_won", nts.episode.returned_won)):
                    raw[k].append(v)
                if pol.actor_in is not None:  # π read the preceding batches' actions (B2MAPO §4.2)
                    raw.setdefault("actor_in", []).append(np.asarray(pol.actor_in))
                reset = nts.terminated | nts.truncated
                ts = nts
            raw = {k: np.stack(v) for k, v in raw.items()}
            end = _light_runner(on_policy, ts, reset, actor_h, critic_h)
            key, k_learn = jax.random.split(key)
            learner, critic_h, metrics = self._learn(learner, self._assemble(raw), start, end, k_learn)
            history.append(jax.device_get(metrics))
        self._ts = (ts, reset, actor_h, critic_h)
        new = HostState(learner, key, k_act, st.update + n)
        metrics = {k: np.stack([np.asarray(m[k]) for m in history])[None] for k in history[0]}
        return jax.tree.map(lambda x: x[None], new), metrics

    def close(self):
        self.venv.close()

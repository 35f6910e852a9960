"""Host-path environments: any PettingZoo ``ParallelEnv`` as a vector of worker processes in trustmarl's
array contract.

JAX environments run inside the jitted ``lax.scan`` of the trainer. Environments written in plain Python
(PettingZoo's SISL suite, Google Research Football, ...) cannot; for them the rollout is collected on the
host (:class:`trustmarl.runtime.drivers.HostDriver`) and only the policy step and the learning step are
jitted::

    for update:
        for t < T:   a_t ~ π(·|o_t)            jitted trainer.act (the same policy step as the JAX rollout)
                     o_{t+1}, r_t, ... = env    HostVectorEnv: num_envs copies in worker processes
        traj = Transition[T, E, A, ...]         numpy -> jnp, one jitted assembly
        learner = trainer.learn(learner, traj, start, end, rng)     the very same learning step

so every on-policy algorithm, feed-forward or GRU, trains on these environments exactly as on the JAX ones,
through the same run loop (:func:`trustmarl.runtime.train`; :func:`trustmarl.runtime.loop.host_train` for a
ParallelEnv constructor given in Python).

:class:`HostVectorEnv` keeps the environment contract of :mod:`trustmarl.envs.core` (same
:class:`~trustmarl.envs.core.Timestep` fields, layout ``[E, A, ...]``, numpy arrays):

* agents are stacked on an agent axis in ``possible_agents`` order; observations are flattened and
  zero-padded to the largest agent's size ``O``; discrete actions are padded to the largest count ``U``
  (padded actions are never available), continuous ones to the largest dimension (padded dims ignored);
* an agent that leaves the episode early (terminated while others go on) is inactive (``active=False``,
  zero observation, zero reward) until the episode ends;
* each env auto-resets when its episode ends; ``final_obs``/``final_state`` keep the pre-reset view for
  bootstrapping;
* terminations and truncations are kept apart. The env's own flags are trusted, with one correction: an
  episode that ends at the time limit (``episode length == episode_limit``) with terminations but no
  truncation is a **truncation**. ``multiwalker_v9`` reports ``terminations`` at ``max_cycles`` (its
  ``raw_env.step`` sets every termination once ``frames >= max_cycles``); taken literally, value targets
  would never bootstrap at the time limit. (The price: a walker falling exactly at the last step also counts as a truncation.) An episode
  that ends with both flags set at the limit (e.g. pursuit catching the last evader at the last step) is
  a termination. An env whose flags are exact declares ``reports_truncations = True`` (as
  :class:`trustmarl.envs.grf.GRFParallelEnv` does) and is trusted at the limit too. When the env does
  not end the episode by ``episode_limit``, the adapter cuts it there (truncation), so
  ``spec.episode_limit`` is always a real bound.

Why gymnasium's ``AsyncVectorEnv``: it is Farama's maintained vector-env library (the PettingZoo team's
own), ships with gymnasium which trustmarl already depends on, runs each env in its own process with
observations returned through shared memory, and re-raises worker exceptions in the parent. SuperSuit's
``pettingzoo_env_to_vec_env_v1`` + ``concat_vec_envs_v1`` treats every *agent* as an env (a flat
``E·A`` batch): it loses the agent axis trustmarl's centralised critics and joint ratio need, and
envs whose agents die need its black-death wrapper (zero observations, no death flag) instead of an
active mask. Here a small per-env adapter (:class:`AgentStackEnv`) turns one ``ParallelEnv`` into a
gymnasium ``Env`` whose observation is a ``Dict`` of the stacked per-agent arrays, and does the
auto-reset itself so that the pre-reset observation and the new episode's first observation arrive in
the same step through shared memory (gymnasium's same-step auto-reset would pickle the final
observation into the info dict).

Global state per agent (``global_state``), death-masked (zeros except the one-hot id for inactive agents):

* ``"concat_obs"`` (default) ``s_i = [o_i, o_{i+1}, ..., o_{i-1}, onehot(i)]`` — own observation first,
  then the others in agent order; computed in the parent from the stacked observations;
* ``"env"`` ``s_i = [w, onehot(i)]`` and ``"agent_specific"`` ``s_i = [o_i, w, onehot(i)]`` with
  ``w = env.state()`` flattened (only for envs implementing ``ParallelEnv.state``).

Failures (docs/reliability.md): a worker whose env raises, returns malformed data (checked in the worker:
an observation of the wrong size or not numeric, a missing observation of a live agent, a reward that is not
a number, an action mask of the wrong length), dies, or does not answer within ``timeout`` seconds ends the
call with one :class:`HostEnvError` naming the worker and the cause, after every worker process has been
stopped. Workers ignore SIGINT, so Ctrl-C reaches only the parent (the run loop stops cleanly there).
"""
from __future__ import annotations

# Only numpy/gymnasium at module level: worker processes import this module to unpickle their env
# constructor, and keeping JAX out of them saves a second of start-up per worker.
import contextlib
import dataclasses
import functools
import json
import math
import multiprocessing
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable, Optional

import gymnasium
import numpy as np
from gymnasium import spaces

HOST_GLOBAL_STATE_KINDS = ("concat_obs", "env", "agent_specific")


class HostEnvError(RuntimeError):
    """A host-path env worker crashed, hung or returned malformed data; every worker has been stopped."""

    exit_code = 6


class MalformedEnvData(ValueError):
    """Raised in a worker when the ParallelEnv returns data that does not fit its declared spaces."""
_EP_FIELDS = 6  # episode_return, episode_length, returned_return, returned_length, returned_won, done


# ---------------------------------------------------------------------------------------------------------
# static layout, read once from a probe env in the parent
# ---------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Layout:
    """What the parent learned from a probe env; sent to every worker (plain picklable values)."""

    name: str
    agents: tuple
    obs_dims: tuple  # flattened size per agent
    obs_dim: int  # padded O
    discrete: bool
    action_dims: tuple  # Discrete n, or flattened Box size, per agent
    num_actions: int  # padded U
    action_shapes: tuple  # Box shape per agent (continuous)
    action_lows: tuple  # per agent, flattened Box lows (continuous)
    action_highs: tuple
    episode_limit: int
    world_dim: int  # flattened env.state() size; 0 when not used
    has_win: bool
    limit_terminations_truncate: bool  # read terminations at the time limit as truncations


def _flat_obs(space) -> int:
    if isinstance(space, spaces.Dict) and "observation" in space.spaces:
        space = space["observation"]
    if space.shape is None:
        raise ValueError(f"observation space {space} has no shape; only Box-like observations are supported")
    return int(np.prod(space.shape))


def find_episode_limit(penv) -> Optional[int]:
    """``max_cycles`` of a PettingZoo env wherever its wrappers keep it (SISL: ``env.unwrapped.env``)."""
    candidates = [penv, getattr(penv, "unwrapped", None), getattr(penv, "aec_env", None)]
    candidates.append(getattr(candidates[1], "env", None))
    for obj in candidates:
        for attr in ("max_cycles", "episode_limit", "max_steps"):
            value = getattr(obj, attr, None) if obj is not None else None
            if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value > 0:
                return int(value)
    return None


def probe_layout(penv, episode_limit: Optional[int] = None, need_world: bool = False) -> Layout:
    """Read agents, padded sizes, action kind and the episode limit off a (fresh) ParallelEnv."""
    agents = tuple(penv.possible_agents)
    if not agents:
        raise ValueError("the ParallelEnv has no possible_agents")
    name = str(getattr(penv, "metadata", {}).get("name", type(penv).__name__))
    obs_dims = tuple(_flat_obs(penv.observation_space(a)) for a in agents)
    act_spaces = [penv.action_space(a) for a in agents]
    kinds = {isinstance(s, spaces.Discrete) for s in act_spaces}
    if len(kinds) != 1:
        raise ValueError(f"env {name!r} mixes discrete and continuous action spaces; only one kind is supported")
    discrete = kinds.pop()
    if not discrete and not all(isinstance(s, spaces.Box) for s in act_spaces):
        kinds = sorted({type(s).__name__ for s in act_spaces})
        raise ValueError(f"action spaces {kinds} of env {name!r} are not supported; allowed: Discrete or Box")
    if discrete:
        action_dims = tuple(int(s.n) for s in act_spaces)
        shapes, lows, highs = (), (), ()
    else:
        action_dims = tuple(int(np.prod(s.shape)) for s in act_spaces)
        shapes = tuple(tuple(s.shape) for s in act_spaces)
        lows = tuple(tuple(np.asarray(s.low, np.float64).reshape(-1).tolist()) for s in act_spaces)
        highs = tuple(tuple(np.asarray(s.high, np.float64).reshape(-1).tolist()) for s in act_spaces)
        if not all(np.isfinite(lo).all() and np.isfinite(hi).all() for lo, hi in zip(lows, highs)):
            raise ValueError(f"env {name!r} has an unbounded Box action space; bounded Box spaces are required")
    limit = episode_limit if episode_limit is not None else find_episode_limit(penv)
    if limit is None:
        raise ValueError(f"env {name!r} exposes no max_cycles; pass episode_limit (a positive integer)")
    if not isinstance(limit, (int, np.integer)) or isinstance(limit, bool) or limit < 1:
        raise ValueError(f"episode_limit={limit!r} must be a positive integer")
    world_dim = 0
    if need_world:
        try:
            penv.reset(seed=0)
            world_dim = int(np.asarray(penv.state()).size)
        except (NotImplementedError, AttributeError):
            raise ValueError(f"env {name!r} does not implement state(); use global_state='concat_obs'") from None
    return Layout(name=name, agents=agents, obs_dims=obs_dims, obs_dim=max(obs_dims), discrete=discrete,
                  action_dims=action_dims, num_actions=max(action_dims), action_shapes=shapes, action_lows=lows,
                  action_highs=highs, episode_limit=int(limit), world_dim=world_dim,
                  has_win=bool(getattr(penv, "has_win", False)),
                  limit_terminations_truncate=not bool(getattr(penv, "reports_truncations", False)))


# ---------------------------------------------------------------------------------------------------------
# one env in a worker: ParallelEnv -> gymnasium Env with stacked-agent Dict observations
# ---------------------------------------------------------------------------------------------------------
class AgentStackEnv(gymnasium.Env):
    """One PettingZoo ``ParallelEnv`` as a gymnasium ``Env`` whose observation is a ``Dict`` of arrays.

    Keys: ``obs``/``final_obs`` [A, O] float32, ``active``/``final_active`` [A] int8, ``avail`` [A, U] int8,
    ``reward`` [A] float32, ``flags`` [2] int8 (terminated, truncated), ``episode`` [6] float64 (running
    return and length, last finished return, length and win, done), and with a world state ``world`` /
    ``final_world`` [W]. Auto-reset happens here, so the gymnasium-level ``terminated``/``truncated`` are
    always False and the vector env never resets on its own.

    The ParallelEnv is built on the first ``reset`` (gymnasium's AsyncVectorEnv builds one throw-away copy
    in the parent only to read the spaces).
    """

    metadata = {"render_modes": []}

    def __init__(self, make_env_fn: Callable[[], Any], layout: Layout):
        self.make_env_fn = make_env_fn
        self.layout = lay = layout
        A, O, U = len(lay.agents), lay.obs_dim, lay.num_actions
        box = lambda shape, dtype=np.float32: spaces.Box(-np.inf, np.inf, shape, dtype)  # noqa: E731
        d = {"obs": box((A, O)), "final_obs": box((A, O)), "active": spaces.MultiBinary(A),
             "final_active": spaces.MultiBinary(A), "avail": spaces.MultiBinary((A, U)), "reward": box((A,)),
             "flags": spaces.MultiBinary(2), "episode": box((_EP_FIELDS,), np.float64)}
        if lay.world_dim:
            d["world"] = box((lay.world_dim,))
            d["final_world"] = box((lay.world_dim,))
        self.observation_space = spaces.Dict(d)
        if lay.discrete:
            self.action_space = spaces.MultiDiscrete([U] * A)
        else:
            self.action_space = spaces.Box(-np.inf, np.inf, (A, U), np.float32)
        # Padded action slots are never available; true slots are unless the env masks them.
        self._pad_avail = np.array([[u < n for u in range(U)] for n in lay.action_dims], np.int8)
        self.penv = None
        self._alive: list = []
        self._ep = np.zeros(_EP_FIELDS, np.float64)

    # -- pieces -------------------------------------------------------------------------------------------
    def _stack(self, obs: dict, infos: dict, alive) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        lay = self.layout
        A, O = len(lay.agents), lay.obs_dim
        out = np.zeros((A, O), np.float32)
        avail = self._pad_avail.copy()
        active = np.zeros(A, np.int8)
        if not isinstance(obs, Mapping):
            raise MalformedEnvData(f"observations must be a dict keyed by agent, not {type(obs).__name__}")
        infos = infos if isinstance(infos, Mapping) else {}
        for i, a in enumerate(lay.agents):
            if a not in obs:
                if a in alive:
                    raise MalformedEnvData(f"no observation for live agent {a!r}")
                continue
            o = obs[a]
            mask = None
            if isinstance(o, dict):
                mask = o.get("action_mask")
                o = o.get("observation")
            try:
                o = np.asarray(o, np.float32).reshape(-1)
            except (TypeError, ValueError) as err:
                raise MalformedEnvData(f"observation of agent {a!r} is not numeric ({type(o).__name__}: "
                                       f"{' '.join(str(err).split())})") from None
            if o.shape[0] != lay.obs_dims[i]:
                raise MalformedEnvData(f"observation of agent {a!r} has {o.shape[0]} values; its observation_space "
                                       f"declares {lay.obs_dims[i]}")
            out[i, : o.shape[0]] = o
            info = infos.get(a) or {}
            mask = info.get("action_mask", mask) if isinstance(info, dict) else mask
            if mask is not None and lay.discrete:
                try:
                    m = np.asarray(mask, np.int8).reshape(-1)
                except (TypeError, ValueError):
                    m = np.zeros(0, np.int8)
                if m.shape[0] != lay.action_dims[i]:
                    raise MalformedEnvData(f"action mask of agent {a!r} has {m.shape[0]} entries; its action space "
                                           f"has {lay.action_dims[i]} actions")
                avail[i, : lay.action_dims[i]] &= m
            active[i] = a in alive
        # Inactive agents keep zero observations (the agent is not there) but a valid action row, so that
        # the policy's logits stay finite; their actions are never sent to the env.
        out[active == 0] = 0.0
        avail[active == 0] = self._pad_avail[active == 0]
        return out, avail, active

    def _world(self) -> np.ndarray:
        return np.asarray(self.penv.state(), np.float32).reshape(-1)

    def _env_action(self, i: int, action: np.ndarray):
        lay = self.layout
        if lay.discrete:
            return int(action[i])
        a = np.asarray(action[i, : lay.action_dims[i]], np.float32)
        # The trainer clips to the common [low, high]; heterogeneous per-agent bounds are enforced here.
        a = np.clip(a, lay.action_lows[i], lay.action_highs[i]).astype(np.float32)
        return a.reshape(lay.action_shapes[i])

    def _start_episode(self, seed=None):
        obs, infos = self.penv.reset(seed=seed)
        self._alive = [a for a in self.layout.agents if a in self.penv.agents]
        return obs, infos or {}

    # -- gymnasium API ------------------------------------------------------------------------------------
    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if self.penv is None:
            self.penv = self.make_env_fn()
        obs, infos = self._start_episode(seed)
        o, avail, active = self._stack(obs, infos, self._alive)
        self._ep = np.zeros(_EP_FIELDS, np.float64)
        A = len(self.layout.agents)
        out = {"obs": o, "final_obs": o, "active": active, "final_active": active, "avail": avail,
               "reward": np.zeros(A, np.float32), "flags": np.zeros(2, np.int8), "episode": self._ep.copy()}
        if self.layout.world_dim:
            out["world"] = out["final_world"] = self._world()
        return out, {}

    def step(self, action):
        lay = self.layout
        before = list(self._alive)
        acts = {a: self._env_action(i, action) for i, a in enumerate(lay.agents) if a in before}
        out = self.penv.step(acts)
        if not (isinstance(out, tuple) and len(out) == 5):
            raise MalformedEnvData(f"step must return (observations, rewards, terminations, truncations, infos), "
                                   f"not {type(out).__name__}" + (f" of {len(out)}" if isinstance(out, tuple) else ""))
        obs, rew, term, trunc, infos = out
        infos = infos or {}
        for name, d in (("rewards", rew), ("terminations", term), ("truncations", trunc)):
            if not isinstance(d, Mapping):
                raise MalformedEnvData(f"{name} must be a dict keyed by agent, not {type(d).__name__}")
        try:
            reward = np.array([float(rew.get(a, 0.0)) for a in lay.agents], np.float32)
        except (TypeError, ValueError) as err:
            raise MalformedEnvData(f"a reward is not a number ({' '.join(str(err).split())})") from None
        term_b = {a: bool(term.get(a, False)) for a in before}
        trunc_b = {a: bool(trunc.get(a, False)) for a in before}
        ep = self._ep
        length = int(ep[1]) + 1
        at_limit = length >= lay.episode_limit
        still = [a for a in before if not (term_b[a] or trunc_b[a]) and a in self.penv.agents]
        done = not still or at_limit
        any_term, any_trunc = any(term_b.values()), any(trunc_b.values())
        # The time-limit rule (module docstring): terminations without truncation at the limit are a cut.
        terminated = done and any_term and not (lay.limit_terminations_truncate and at_limit and not any_trunc)
        truncated = done and not terminated
        # Pre-reset view: when the episode ends, every agent that took part in the last step is in the final
        # state (an end is not a death; the critic bootstraps from it at a truncation). Agents that left
        # earlier stay out. Within an episode the final view is the next observation itself.
        final_alive = before if done else still
        final_obs, final_avail, final_active = self._stack(obs, infos, final_alive)
        team_return = ep[0] + float(reward.mean())
        won = 0.0
        if done and lay.has_win:
            won = float(any(isinstance(infos.get(a), dict) and infos[a].get("won", False) for a in lay.agents))
        out = {"final_obs": final_obs, "final_active": final_active, "reward": reward,
               "flags": np.array([terminated, truncated], np.int8)}
        if lay.world_dim:
            out["final_world"] = self._world()
        if done:
            self._ep = np.array([0.0, 0.0, team_return, length, won, 1.0])
            obs, infos = self._start_episode()
            out["obs"], out["avail"], out["active"] = self._stack(obs, infos, self._alive)
            if lay.world_dim:
                out["world"] = self._world()
        else:
            self._ep = np.array([team_return, length, ep[2], ep[3], ep[4], 0.0])
            self._alive = still
            out["obs"], out["avail"], out["active"] = final_obs, final_avail, final_active
            if lay.world_dim:
                out["world"] = out["final_world"]
        out["episode"] = self._ep.copy()
        return out, float(reward.mean()), False, False, {}

    def close(self):
        if self.penv is not None:
            self.penv.close()
            self.penv = None


def _make_stack_env(make_env_fn, layout):
    if multiprocessing.parent_process() is not None:
        # In a worker: Ctrl-C (SIGINT to the whole process group) is the parent's to handle; a worker that
        # died of it would turn a clean stop into an env failure.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    return AgentStackEnv(make_env_fn, layout)


@contextlib.contextmanager
def _quiet_gymnasium():
    """gymnasium logs a worker's traceback before re-raising it; :class:`HostEnvError` reports it in one line."""
    level = gymnasium.logger.min_level
    gymnasium.logger.min_level = gymnasium.logger.ERROR + 10
    try:
        yield
    finally:
        gymnasium.logger.min_level = level


# ---------------------------------------------------------------------------------------------------------
# the vector env in the parent
# ---------------------------------------------------------------------------------------------------------
class HostVectorEnv:
    """``num_envs`` copies of a PettingZoo ``ParallelEnv`` behind the trainer's env contract (numpy, ``[E, A, ...]``).

    Args:
      make_env_fn: zero-argument callable returning a fresh ``ParallelEnv`` (picklable by cloudpickle; it
        runs in each worker). Discrete or Box action spaces; Box (or ``{"observation", "action_mask"}``)
        observations. Action masks are read from ``infos[agent]["action_mask"]`` or the Dict observation.
        An env with ``has_win = True`` reports a win through ``infos[agent]["won"]`` at its last step.
      num_envs: parallel copies ``E``.
      global_state: ``"concat_obs"``, ``"env"`` or ``"agent_specific"`` (module docstring).
      seed: episode seeds: env ``i`` is reset with ``seed + i`` by :meth:`reset`; later episodes continue
        each env's own random stream.
      async_: worker processes (``gymnasium.vector.AsyncVectorEnv``); False steps all copies in this
        process (``SyncVectorEnv``; for debugging and tiny tests).
      episode_limit: time limit; default the env's ``max_cycles``. A shorter limit is enforced (truncation).
      context: multiprocessing start method. ``"spawn"`` (default) starts workers from a fresh interpreter:
        forking a process that runs JAX's thread pools can deadlock (JAX warns on ``os.fork``). Scripts
        therefore need the usual ``if __name__ == "__main__":`` guard.
      timeout: seconds one ``reset``/``step`` of the workers may take (None: no limit); past it, or when a
        worker dies or fails, every worker is stopped and :class:`HostEnvError` is raised.

    Attributes: ``spec`` (:class:`~trustmarl.envs.core.EnvSpec`), ``num_envs``, ``compute_state`` (the
    trainer switches it off when its critic reads local observations; ``state`` is then ``[E, A, 0]``).
    """

    def __init__(self, make_env_fn: Callable[[], Any], num_envs: int, global_state: str = "concat_obs",
                 seed: int = 0, async_: bool = True, episode_limit: Optional[int] = None,
                 context: Optional[str] = "spawn", timeout: Optional[float] = None):
        from trustmarl.envs.core import EnvSpec
        if not callable(make_env_fn):
            raise ValueError(f"make_env_fn={make_env_fn!r} must be a zero-argument callable returning a ParallelEnv")
        if not isinstance(num_envs, (int, np.integer)) or isinstance(num_envs, bool) or num_envs < 1:
            raise ValueError(f"num_envs={num_envs!r} must be an integer >= 1")
        if global_state not in HOST_GLOBAL_STATE_KINDS:
            raise ValueError(f"global_state={global_state!r} is not one of {HOST_GLOBAL_STATE_KINDS}")
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"seed={seed!r} must be an integer >= 0")
        if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0):
            raise ValueError(f"timeout={timeout!r} must be a number of seconds > 0, or None")
        self.timeout = None if timeout is None else float(timeout)
        self.closed = True  # until the workers exist
        self.num_envs = int(num_envs)
        self.global_state_kind = global_state
        self.seed = int(seed)
        need_world = global_state != "concat_obs"
        probe = make_env_fn()
        try:
            self.layout = lay = probe_layout(probe, episode_limit, need_world)
        finally:
            probe.close()
        A, O = len(lay.agents), lay.obs_dim
        if global_state == "concat_obs":
            state_dim = O * A + A
        elif global_state == "env":
            state_dim = lay.world_dim + A
        else:
            state_dim = O + lay.world_dim + A
        low = min(min(lo) for lo in lay.action_lows) if not lay.discrete else -1.0
        high = max(max(hi) for hi in lay.action_highs) if not lay.discrete else 1.0
        self.spec = EnvSpec(name=f"host:{lay.name}", agents=lay.agents, obs_dim=O, state_dim=state_dim,
                            num_actions=lay.num_actions, discrete=lay.discrete, episode_limit=lay.episode_limit,
                            has_win=lay.has_win, obs_dims=lay.obs_dims, action_dims=lay.action_dims,
                            action_low=float(low), action_high=float(high))
        self.compute_state = True
        fns = [functools.partial(_make_stack_env, make_env_fn, lay) for _ in range(self.num_envs)]
        self.async_ = bool(async_)
        if async_:
            self.vec = gymnasium.vector.AsyncVectorEnv(fns, shared_memory=True, copy=True, context=context)
        else:
            self.vec = gymnasium.vector.SyncVectorEnv(fns, copy=True)
        self._ids = np.eye(A, dtype=np.float32)
        self.closed = False

    # -- global state ---------------------------------------------------------------------------------------
    def global_state(self, obs: np.ndarray, active: np.ndarray, world: Optional[np.ndarray]) -> np.ndarray:
        """Per-agent global state ``[E, A, S]`` from obs ``[E, A, O]``, active ``[E, A]``, world ``[E, W]``."""
        E, A, O = obs.shape
        if not self.compute_state:
            return np.zeros((E, A, 0), np.float32)
        ids = np.broadcast_to(self._ids, (E, A, A))
        if self.global_state_kind == "concat_obs":
            # s_i = [o_i, o_{i+1}, ..., o_{i-1}]: agent i's row is the obs rolled by -i along the agent axis.
            idx = (np.arange(A)[:, None] + np.arange(A)[None, :]) % A  # [i, k] -> agent (i + k) mod A
            body = obs[:, idx].reshape(E, A, A * O)
        else:
            w = np.broadcast_to(world[:, None, :], (E, A, world.shape[-1]))
            body = w if self.global_state_kind == "env" else np.concatenate([obs, w], axis=-1)
        body = np.where(active[..., None], body, 0.0)
        return np.concatenate([body, ids], axis=-1).astype(np.float32)

    def _timestep(self, d: dict):
        from trustmarl.envs.core import EpisodeStats, Timestep
        active = d["active"].astype(bool)
        final_active = d["final_active"].astype(bool)
        obs, final_obs = d["obs"].astype(np.float32), d["final_obs"].astype(np.float32)
        ep = d["episode"]
        episode = EpisodeStats(episode_return=ep[:, 0].astype(np.float32), episode_length=ep[:, 1].astype(np.int32),
                               returned_return=ep[:, 2].astype(np.float32),
                               returned_length=ep[:, 3].astype(np.int32), returned_won=ep[:, 4].astype(np.float32),
                               done=ep[:, 5] > 0.5)
        return Timestep(obs=obs, state=self.global_state(obs, active, d.get("world")),
                        avail=d["avail"].astype(bool), reward=d["reward"].astype(np.float32),
                        terminated=d["flags"][:, 0].astype(bool), truncated=d["flags"][:, 1].astype(bool),
                        active=active, final_obs=final_obs,
                        final_state=self.global_state(final_obs, final_active, d.get("final_world")),
                        episode=episode)

    # -- API ----------------------------------------------------------------------------------------------
    def _guarded(self, what: str, start: Callable, wait: Callable):
        """Run one worker call (``start()`` then ``wait(timeout)``); any failure stops every worker and
        becomes one :class:`HostEnvError` line."""
        if self.closed:
            raise HostEnvError(f"host env {self.layout.name!r}: {what} after the workers were stopped")
        try:
            with _quiet_gymnasium():
                start()
                return wait(self.timeout)
        except multiprocessing.TimeoutError:
            msg = (f"a worker did not answer within {self.timeout:g} s during {what} (a hung env?); raise "
                   f"stall_timeout if the env is just slow")
        except (EOFError, BrokenPipeError, ConnectionResetError) as err:
            dead = self._dead_workers()
            msg = (f"worker process {', '.join(dead) or '?'} died during {what} "
                   f"({type(err).__name__}: the env crashed the process)")
        except Exception as err:  # noqa: BLE001 - the worker's own exception, re-raised by gymnasium
            kind = "returned malformed data" if isinstance(err, MalformedEnvData) else "raised"
            msg = f"a worker's env {kind} during {what}: {type(err).__name__}: {' '.join(str(err).split())}"
        self.terminate()
        raise HostEnvError(f"host env {self.layout.name!r}: {msg}; all {self.num_envs} worker(s) were stopped")

    def _dead_workers(self) -> list[str]:
        out = []
        for i, p in enumerate(getattr(self.vec, "processes", [])):
            p.join(timeout=1.0)
            if not p.is_alive():
                out.append(f"{i} (exit code {p.exitcode})")
        return out

    def worker_pids(self) -> list[int]:
        """Process ids of the workers (empty in-process)."""
        return [p.pid for p in getattr(self.vec, "processes", [])]

    def reset(self, seed: Optional[int] = None):
        """Start every env's first episode (env ``i`` seeded ``seed + i``); returns a Timestep ``[E, A, ...]``."""
        seed = self.seed if seed is None else int(seed)
        if self.async_:
            d, _ = self._guarded("reset", lambda: self.vec.reset_async(seed=seed), self.vec.reset_wait)
        else:
            d, _ = self._guarded("reset", lambda: None, lambda _t: self.vec.reset(seed=seed))
        return self._timestep(d)

    def step(self, actions) -> Any:
        """Step with ``actions`` ``[E, A]`` (discrete ints) or ``[E, A, D]`` (continuous); auto-resets."""
        actions = np.asarray(actions)
        E, A = self.num_envs, self.spec.num_agents
        want = (E, A) if self.spec.discrete else (E, A, self.spec.num_actions)
        if actions.shape != want:
            raise ValueError(f"actions of shape {actions.shape} do not fit; expected {want}")
        actions = actions.astype(np.int64 if self.spec.discrete else np.float32)
        if self.async_:
            d = self._guarded("step", lambda: self.vec.step_async(actions), self.vec.step_wait)[0]
        else:
            d = self._guarded("step", lambda: None, lambda _t: self.vec.step(actions))[0]
        return self._timestep(d)

    def random_actions(self, rng: np.random.Generator, avail: np.ndarray) -> np.ndarray:
        """Uniform random valid actions ``[E, A(, D)]``, for smoke tests and ceilings."""
        if self.spec.discrete:
            u = rng.random(avail.shape) * avail
            return np.argmax(u, axis=-1)
        return rng.uniform(self.spec.action_low, self.spec.action_high,
                           (self.num_envs, self.spec.num_agents, self.spec.num_actions)).astype(np.float32)

    def terminate(self):
        """Stop every worker at once (SIGTERM, then SIGKILL) and wait for them; idempotent."""
        if self.closed:
            return
        self.closed = True
        if not self.async_:
            try:
                self.vec.close()
            except Exception:  # noqa: BLE001 - the env already failed
                pass
            return
        for p in self.vec.processes:
            if p.is_alive():
                p.terminate()
        for pipe in self.vec.parent_pipes:
            if pipe is not None:
                try:
                    pipe.close()
                except OSError:
                    pass
        self._reap()
        # gymnasium's own close (also run by its __del__) would wait on the dead pipes again and warn
        self.vec.closed = True

    def _reap(self):
        for p in getattr(self.vec, "processes", []):
            if p.is_alive():
                p.join(timeout=2.0)
            if p.is_alive():
                p.kill()
                p.join(timeout=5.0)

    def close(self):
        """Close the envs (each worker closes its env and exits); workers that do not are stopped."""
        if self.closed:
            return
        self.closed = True
        try:
            with _quiet_gymnasium():
                if self.async_:
                    self.vec.close(timeout=self.timeout or 10.0)
                else:
                    self.vec.close()
        except Exception:  # noqa: BLE001 - a dead or hung worker: stopped below
            for p in getattr(self.vec, "processes", []):
                if p.is_alive():
                    p.terminate()
        self._reap()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

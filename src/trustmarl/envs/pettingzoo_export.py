"""Expose any JaxMARL-API environment as a PettingZoo ``ParallelEnv``.

Why: JaxMARL environments are pure functions of ``(key, state, actions)`` built for ``jit`` and
``vmap``; PettingZoo is the common interface of non-JAX MARL tooling (RLlib, SuperSuit, the
PettingZoo API tests, human play). :func:`to_parallel_env` runs a JaxMARL env one step at a
time behind the PettingZoo parallel API, with jitted reset/step and NumPy outputs.

Semantics
---------
* **Spaces** are converted to gymnasium spaces (:func:`to_gymnasium_space`): ``Discrete(n)`` ->
  ``Discrete(n)``, ``Box`` -> ``Box`` (same bounds, shape and dtype), ``MultiDiscrete`` ->
  ``MultiDiscrete``, ``Dict``/``Tuple`` recursively.
* **Episode end, termination vs truncation.** The wrapper counts steps ``t`` since reset. The
  time limit is ``T = min(max_steps, env.max_steps)`` over those that exist (``env.max_steps`` is
  read with ``getattr``; JaxMARL's MPE and SMAX define it). The episode ends at the first step
  where the env reports ``dones["__all__"]`` or ``t >= T``. At that step every live agent gets
  ``truncations = (t >= T)`` and ``terminations = not truncations``; an env-side end at exactly
  step ``T`` (e.g. SMAX's own time limit, or a battle that happens to end on that step) is
  therefore reported as truncation. Before the end, an agent whose own ``dones[agent]`` is true
  (a dead SMAX unit) is terminated. Note JaxMARL's MPE sets ``done`` one step *after*
  ``max_steps`` (``done = step >= max_steps`` is tested before incrementing); the wrapper ends MPE
  episodes after exactly ``max_steps`` steps, as PettingZoo's own MPE (``max_cycles``) does.
* **Agents** that terminated or truncated are removed from ``agents`` (PettingZoo parallel API);
  after the episode ends ``agents`` is empty until ``reset``. The underlying JaxMARL env still
  needs an action for every agent: finished agents get the first action their availability
  mask allows (a dead SMAX unit's only action, "stop"), or the zero action if the env has no
  masks.
* **Auto-reset.** Where the env class implements ``step_env`` (all JaxMARL environments) the
  wrapper calls it, so the observations of the last step are the true terminal ones. Where it
  does not (a JaxMARL wrapper such as ``LogWrapper``, which forwards ``step_env`` to the inner
  env and would bypass itself) the wrapper calls ``env.step``, whose auto-reset means the last
  step's observations are those of the next episode's start.
* **Infos**: ``infos[agent]["action_mask"]`` (int8, 1 = allowed) when the env implements
  ``get_avail_actions``; ``infos[agent]["env_info"]`` holds the env's own info dict (NumPy) when
  it is not empty.
* **State**: :meth:`JaxMARLParallelEnv.state` returns the env's ``obs["world_state"]`` where it
  provides one (SMAX), else raises ``NotImplementedError``.
* **Seeding**: the wrapper keeps a JAX PRNG key, started from ``seed``. ``reset(seed=s)``
  restarts it from ``PRNGKey(s)`` (and seeds each action space with ``s + index``), so the same
  seed and actions give the same trajectory; ``reset()`` without a seed continues the chain.
  Each step uses ``key, sub = split(key)`` and passes ``sub`` to the env exactly as
  ``MultiAgentEnv.step`` would.
"""
from __future__ import annotations

import functools
from typing import Any

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
from pettingzoo.utils.env import ParallelEnv

__all__ = ["to_parallel_env", "to_gymnasium_space", "JaxMARLParallelEnv"]


def to_gymnasium_space(space) -> gymnasium.spaces.Space:
    """Convert a JaxMARL space (``jaxmarl.environments.spaces``) to the gymnasium equivalent."""
    if isinstance(space, gymnasium.spaces.Space):
        return space
    kind = type(space).__name__
    if kind == "Discrete":
        n = int(space.n)
        if n < 1:
            raise ValueError(f"Discrete space with n={n} cannot be exported; gymnasium needs n >= 1")
        return gymnasium.spaces.Discrete(n)
    if kind == "MultiDiscrete":
        return gymnasium.spaces.MultiDiscrete(np.asarray(space.num_categories, dtype=np.int64))
    if kind == "Box":
        dtype = np.dtype(space.dtype)
        shape = tuple(int(s) for s in space.shape)
        low = np.broadcast_to(np.asarray(space.low, dtype=dtype), shape)
        high = np.broadcast_to(np.asarray(space.high, dtype=dtype), shape)
        return gymnasium.spaces.Box(low=low, high=high, shape=shape, dtype=dtype)
    if kind == "Dict":
        return gymnasium.spaces.Dict({k: to_gymnasium_space(v) for k, v in space.spaces.items()})
    if kind == "Tuple":
        return gymnasium.spaces.Tuple(tuple(to_gymnasium_space(s) for s in space.spaces))
    raise ValueError(f"space of type {kind!r} cannot be exported; allowed: Discrete, MultiDiscrete, Box, "
                     f"Dict, Tuple")


def _defines_step_env(env) -> bool:
    from jaxmarl.environments.multi_agent_env import MultiAgentEnv
    for klass in type(env).__mro__:
        if klass is MultiAgentEnv or klass is object:
            return False
        if "step_env" in vars(klass):
            return True
    return False


def _strong(tree):
    # Envs return some state leaves weakly typed from reset but not from step (or the reverse);
    # jit keys its cache on weak_type, so without this the second step would compile again.
    return jax.tree.map(lambda x: jax.lax.convert_element_type(x, jnp.asarray(x).dtype), tree)


# The env is a static (hashed by identity) argument, so several wrappers around one env object
# share one compilation.
@functools.partial(jax.jit, static_argnums=(0, 1))
def _reset(env, with_avail, key):
    obs, state = env.reset(key)
    avail = env.get_avail_actions(state) if with_avail else None
    return obs, _strong(state), avail


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _step(env, with_avail, use_step_env, key, state, actions):
    if use_step_env:
        # Same key split as MultiAgentEnv.step, so trajectories match env.step's.
        key, _ = jax.random.split(key)
        obs, state, rewards, dones, infos = env.step_env(key, state, actions)
    else:
        obs, state, rewards, dones, infos = env.step(key, state, actions)
    avail = env.get_avail_actions(state) if with_avail else None
    return obs, _strong(state), rewards, dones, infos, avail


def _check_int(name, value, low, allow_none=False):
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        allowed = f"an integer >= {low}" + (" or None" if allow_none else "")
        raise ValueError(f"{name}={value!r} is not allowed; expected {allowed}")


class JaxMARLParallelEnv(ParallelEnv):
    """PettingZoo ``ParallelEnv`` view of a JaxMARL ``MultiAgentEnv``; see the module docstring.

    Build it with :func:`to_parallel_env`. ``env`` is the wrapped JaxMARL env, ``time_limit`` the
    effective step limit (``None`` = none), ``jax_state`` the current JaxMARL state.
    """

    metadata = {"render_modes": [], "name": "jaxmarl_parallel_v0", "is_parallelizable": True}

    def __init__(self, env, seed: int = 0, max_steps: int | None = None, render_mode: str | None = None):
        for attr in ("agents", "reset", "step", "observation_space", "action_space"):
            if not hasattr(env, attr):
                raise ValueError(f"env={type(env).__name__} lacks {attr!r}; expected a JaxMARL MultiAgentEnv")
        _check_int("seed", seed, 0)
        _check_int("max_steps", max_steps, 1, allow_none=True)
        if render_mode is not None:
            raise ValueError(f"render_mode={render_mode!r} is not supported; allowed: None")
        self.env = env
        self.render_mode = None
        self.possible_agents = list(env.agents)
        self.agents: list[str] = []
        self.observation_spaces = {a: to_gymnasium_space(env.observation_space(a)) for a in self.possible_agents}
        self.action_spaces = {a: to_gymnasium_space(env.action_space(a)) for a in self.possible_agents}
        self.metadata = dict(self.metadata, name=f"jaxmarl_{getattr(env, 'name', type(env).__name__)}")

        limits = [int(m) for m in (max_steps, getattr(env, "max_steps", None)) if m is not None]
        self.time_limit = min(limits) if limits else None
        self._use_step_env = _defines_step_env(env)

        self._key = jax.random.PRNGKey(seed)
        obs_shape, state_shape = jax.eval_shape(env.reset, self._key)
        try:
            jax.eval_shape(env.get_avail_actions, state_shape)
            self._with_avail = True
        except NotImplementedError:
            self._with_avail = False
        if "world_state" in obs_shape:
            ws = obs_shape["world_state"]
            self.state_space = gymnasium.spaces.Box(-np.inf, np.inf, shape=ws.shape, dtype=np.dtype(ws.dtype))

        self.jax_state = None
        self._t = 0
        self._avail: dict[str, np.ndarray] = {}
        self._world_state = None

    # --- PettingZoo API ------------------------------------------------------------------------
    def observation_space(self, agent: str) -> gymnasium.spaces.Space:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> gymnasium.spaces.Space:
        return self.action_spaces[agent]

    def reset(self, seed: int | None = None, options: dict | None = None):
        """Start an episode; returns ``(observations, infos)`` for every agent."""
        if seed is not None:
            _check_int("seed", seed, 0)
            self._key = jax.random.PRNGKey(seed)
            for i, agent in enumerate(self.possible_agents):
                self.action_spaces[agent].seed(int(seed) + i)
        self._key, sub = jax.random.split(self._key)
        obs, self.jax_state, avail = _reset(self.env, self._with_avail, sub)
        # The state stays on the device; only what the caller sees is copied to NumPy.
        obs, avail = jax.device_get((obs, avail))
        self._t = 0
        self.agents = list(self.possible_agents)
        self._store_avail(avail)
        observations = self._convert_obs(obs, self.agents)
        infos = {a: self._info(a, {}) for a in self.agents}
        return observations, infos

    def step(self, actions: dict[str, Any]):
        """Advance one step; returns ``(observations, rewards, terminations, truncations, infos)``.

        ``actions`` must hold an action for every live agent; actions for agents that already
        finished are ignored. The returned dicts cover the agents live before this step.
        """
        if not self.agents:
            raise ValueError("step() called with no live agents; call reset() first")
        if not isinstance(actions, dict):
            raise ValueError(f"actions={type(actions).__name__} is not allowed; expected a dict agent -> action")
        unknown = [a for a in actions if a not in self.action_spaces]
        if unknown:
            raise ValueError(f"actions for unknown agents {unknown}; allowed: {self.possible_agents}")
        missing = [a for a in self.agents if a not in actions]
        if missing:
            raise ValueError(f"no action for live agents {missing}; every agent in env.agents needs one")
        live = list(self.agents)
        full = {a: (self._check_action(a, actions[a]) if a in live else self._fill_action(a))
                for a in self.possible_agents}

        self._key, sub = jax.random.split(self._key)
        out = _step(self.env, self._with_avail, self._use_step_env, sub, self.jax_state, full)
        obs, self.jax_state, rewards, dones, env_infos, avail = out
        obs, rewards, dones, env_infos, avail = jax.device_get((obs, rewards, dones, env_infos, avail))
        self._t += 1
        self._store_avail(avail)

        truncated = self.time_limit is not None and self._t >= self.time_limit
        over = truncated or bool(dones["__all__"])
        terminations, truncations = {}, {}
        for a in live:
            truncations[a] = bool(over and truncated)
            terminations[a] = bool(over and not truncated) or (not over and bool(dones[a]))

        observations = self._convert_obs(obs, live)
        rewards_out = {a: float(rewards[a]) for a in live}
        infos = {a: self._info(a, env_infos) for a in live}
        self.agents = [a for a in live if not (terminations[a] or truncations[a])]
        return observations, rewards_out, terminations, truncations, infos

    def state(self) -> np.ndarray:
        """The env's global ``world_state`` observation (SMAX) for centralised critics."""
        if self._world_state is None:
            if not hasattr(self, "state_space"):
                raise NotImplementedError(f"{type(self.env).__name__} provides no obs['world_state']")
            raise ValueError("state() called before reset()")
        return self._world_state

    def render(self):
        return None

    def close(self):
        pass

    # --- helpers -------------------------------------------------------------------------------
    def _convert_obs(self, obs, agents):
        if "world_state" in obs:
            self._world_state = np.asarray(obs["world_state"])
        return {a: self._as_space_value(self.observation_spaces[a], obs[a]) for a in agents}

    def _as_space_value(self, space, value):
        if isinstance(space, gymnasium.spaces.Dict):
            return {k: self._as_space_value(s, value[k]) for k, s in space.spaces.items()}
        if isinstance(space, gymnasium.spaces.Tuple):
            return tuple(self._as_space_value(s, v) for s, v in zip(space.spaces, value))
        if isinstance(space, gymnasium.spaces.Discrete):
            return np.int64(value)
        return np.array(value, dtype=space.dtype)

    def _store_avail(self, avail):
        if avail is not None:
            self._avail = {a: np.asarray(avail[a]).astype(np.int8) for a in self.possible_agents}

    def _info(self, agent, env_infos):
        info = {}
        if self._with_avail:
            info["action_mask"] = self._avail[agent]
        if env_infos:
            info["env_info"] = env_infos
        return info

    def _fill_action(self, agent):
        space = self.action_spaces[agent]
        if self._with_avail and isinstance(space, gymnasium.spaces.Discrete):
            mask = self._avail[agent]
            return np.int32(np.argmax(mask) if mask.any() else 0)
        if isinstance(space, gymnasium.spaces.Discrete):
            return np.int32(0)
        if isinstance(space, gymnasium.spaces.MultiDiscrete):
            return np.zeros(space.shape, dtype=np.int32)
        if isinstance(space, gymnasium.spaces.Box):
            return np.clip(np.zeros(space.shape, dtype=space.dtype), space.low, space.high)
        raise ValueError(f"cannot build a default action for agent {agent!r} with space {space}")

    def _check_action(self, agent, action):
        space = self.action_spaces[agent]
        if isinstance(space, gymnasium.spaces.Discrete):
            a = np.asarray(action)
            if a.shape != () or not np.issubdtype(a.dtype, np.integer) or not 0 <= int(a) < space.n:
                raise ValueError(f"action {action!r} for {agent!r} is not allowed; expected an integer in "
                                 f"[0, {space.n})")
            return np.int32(a)
        if isinstance(space, gymnasium.spaces.MultiDiscrete):
            a = np.asarray(action)
            if (a.shape != space.shape or not np.issubdtype(a.dtype, np.integer)
                    or np.any(a < 0) or np.any(a >= space.nvec)):
                raise ValueError(f"action {action!r} for {agent!r} is not allowed; expected integers of shape "
                                 f"{space.shape} below {space.nvec.tolist()}")
            return a.astype(np.int32)
        if isinstance(space, gymnasium.spaces.Box):
            a = np.asarray(action, dtype=space.dtype)
            if a.shape != space.shape or np.any(a < space.low) or np.any(a > space.high) or np.any(np.isnan(a)):
                raise ValueError(f"action {action!r} for {agent!r} is not allowed; expected shape {space.shape} "
                                 f"within [{space.low.min()}, {space.high.max()}]")
            return a
        raise ValueError(f"actions for space {space} are not supported; allowed: Discrete, MultiDiscrete, Box")


def to_parallel_env(env, seed: int = 0, max_steps: int | None = None,
                    render_mode: str | None = None) -> JaxMARLParallelEnv:
    """Wrap a JaxMARL ``MultiAgentEnv`` as a PettingZoo ``ParallelEnv``.

    ``seed`` starts the wrapper's PRNG chain (``reset(seed=...)`` restarts it); ``max_steps``
    adds a step limit (the effective one is the smaller of it and ``env.max_steps``); episodes
    ending at that limit report truncation, other ends termination. Only ``render_mode=None``
    is supported. See the module docstring for the full semantics.
    """
    return JaxMARLParallelEnv(env, seed=seed, max_steps=max_steps, render_mode=render_mode)

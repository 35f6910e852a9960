"""Tiny user environments for tests/envs/test_registry.py ("bring your own environment").

Importable as ``custom_envs`` (pytest puts this folder on ``sys.path``), so factory paths such as
``custom_envs:make_cue_env`` resolve the way a user's ``mypkg.envs:make_my_env`` would.

Cue game: each agent sees a one-hot cue of ``K`` values (plus its own id) and is paid 1 for playing the
cue's index. One step is a handful of array ops, so the envs check and step in milliseconds.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jaxmarl.environments import spaces
from jaxmarl.environments.multi_agent_env import MultiAgentEnv

K = 3  # cue values = discrete actions
OBS = K + 2  # one-hot cue + one-hot agent id (2 agents)


@struct.dataclass
class CueState:
    cue: jax.Array  # [] int32
    t: jax.Array  # [] int32


class CueEnv(MultiAgentEnv):
    """2 agents, Box observations, Discrete(K) actions, a time limit ``max_steps``."""

    def __init__(self, max_steps: int = 5):
        super().__init__(num_agents=2)
        self.max_steps = max_steps
        self.observation_spaces = {a: spaces.Box(0.0, 1.0, (OBS,)) for a in self.agents}
        self.action_spaces = {a: spaces.Discrete(K) for a in self.agents}

    def _obs(self, st: CueState) -> dict:
        cue = jax.nn.one_hot(st.cue, K)
        return {a: jnp.concatenate([cue, jax.nn.one_hot(i, 2)]) for i, a in enumerate(self.agents)}

    def reset(self, key):
        st = CueState(cue=jax.random.randint(key, (), 0, K), t=jnp.zeros((), jnp.int32))
        return self._obs(st), st

    def _ends(self, t):
        return t >= self.max_steps

    def step_env(self, key, st, actions):
        rew = {a: (actions[a] == st.cue).astype(jnp.float32) for a in self.agents}
        t = st.t + 1
        nxt = CueState(cue=jax.random.randint(key, (), 0, K), t=t)
        done = self._ends(t)
        dones = {a: done for a in self.agents} | {"__all__": done}
        return self._obs(nxt), nxt, rew, dones, {}


class NoLimitCueEnv(CueEnv):
    """The cue game without a time limit: no ``max_steps``, never done."""

    def __init__(self):
        super().__init__()
        del self.max_steps

    def _ends(self, t):
        return jnp.zeros((), bool)


class MaskedCueEnv(CueEnv):
    """Action masks: the last action is never available."""

    def get_avail_actions(self, st):
        return {a: jnp.arange(K) < K - 1 for a in self.agents}


class BadAvailCueEnv(CueEnv):
    """Action masks of the wrong shape (K - 1 flags for K actions)."""

    def get_avail_actions(self, st):
        return {a: jnp.ones((K - 1,), bool) for a in self.agents}


class WorldCueEnv(CueEnv):
    """A world state for the centralised critic: the cue and the time step."""

    def get_world_state(self, st):
        return jnp.concatenate([jax.nn.one_hot(st.cue, K), st.t[None].astype(jnp.float32)])


class MixedCueEnv(CueEnv):
    """Agent 0 discrete, agent 1 continuous: not supported."""

    def __init__(self):
        super().__init__()
        self.action_spaces = {"agent_0": spaces.Discrete(K), "agent_1": spaces.Box(-1.0, 1.0, (2,))}


class WrongObsCueEnv(CueEnv):
    """Declares a larger observation than it returns."""

    def __init__(self):
        super().__init__()
        self.observation_spaces = {a: spaces.Box(0.0, 1.0, (OBS + 1,)) for a in self.agents}


# --- factories (factory paths: custom_envs:<name>) -----------------------------------------------------------
def make_cue_env(max_steps: int = 5):
    return CueEnv(max_steps=max_steps)


def make_no_limit_env():
    return NoLimitCueEnv()


def make_cue_adapter(global_state: str = "concat_obs"):
    from trustmarl.envs import as_jax_env
    return as_jax_env(WorldCueEnv(), global_state=global_state, name="cue_adapter")


def make_needs_option(size):  # no default: cannot be probed
    return CueEnv()


def make_number():
    return 42


NOT_CALLABLE = 3


# --- a tiny PettingZoo ParallelEnv (host path) -----------------------------------------------------------------
from gymnasium import spaces as gspaces  # noqa: E402
from pettingzoo.utils.env import ParallelEnv  # noqa: E402


class CuePZ(ParallelEnv):
    """The cue game as a PettingZoo ParallelEnv: 2 agents, Box observations, Discrete(K) actions."""

    metadata = {"name": "cue_pz"}

    def __init__(self, max_cycles: int = 5):
        self.max_cycles = max_cycles
        self.possible_agents = ["p0", "p1"]
        self.agents = []
        self._rng = np.random.default_rng(0)
        self._cue, self._t = 0, 0

    def observation_space(self, agent):
        return gspaces.Box(0.0, 1.0, (OBS,), np.float32)

    def action_space(self, agent):
        return gspaces.Discrete(K)

    def _obs(self):
        out = {}
        for i, a in enumerate(self.possible_agents):
            o = np.zeros(OBS, np.float32)
            o[self._cue] = 1.0
            o[K + i] = 1.0
            out[a] = o
        return out

    def reset(self, seed=None, options=None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self.agents = list(self.possible_agents)
        self._cue, self._t = int(self._rng.integers(K)), 0
        return self._obs(), {a: {} for a in self.agents}

    def step(self, actions):
        rew = {a: float(actions[a] == self._cue) for a in self.agents}
        self._t += 1
        self._cue = int(self._rng.integers(K))
        trunc = self._t >= self.max_cycles
        out = (self._obs(), rew, {a: False for a in self.agents}, {a: trunc for a in self.agents},
               {a: {} for a in self.agents})
        if trunc:
            self.agents = []
        return out


def make_pz_env(max_cycles: int = 5):
    """Returns a ParallelEnv: resolved as a host entry whose constructor is partial(make_pz_env, ...)."""
    return CuePZ(max_cycles=max_cycles)


def make_pz_ctor(max_cycles: int = 5):
    """Returns a zero-argument constructor, the register_env(host=True) convention."""
    return functools.partial(CuePZ, max_cycles=max_cycles)

"""JaxMARL envs that break the env contract one way each (for ``trustmarl check-env``'s tests).

They subclass the working cue game of ``tests/envs/custom_envs.py`` (2 agents, Box(5) observations,
Discrete(3) actions, ``max_steps`` 5) and change one thing.
"""
from __future__ import annotations

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "envs"))

from custom_envs import K, OBS, BadAvailCueEnv, CueEnv, CueState, WrongObsCueEnv  # noqa: E402,F401
from jaxmarl.environments import spaces  # noqa: E402


class IntObsEnv(CueEnv):
    """Integer observations (cast by trustmarl: a warning)."""

    def _obs(self, st):
        return {a: o.astype(jnp.int32) for a, o in super()._obs(st).items()}


class NaNObsEnv(CueEnv):
    """Observations turn NaN from the second step."""

    def _obs(self, st):
        return {a: jnp.where(st.t >= 2, jnp.nan, o) for a, o in super()._obs(st).items()}


class VectorRewardEnv(CueEnv):
    """Rewards of shape (2,) per agent."""

    def step_env(self, key, st, actions):
        o, s, r, d, i = super().step_env(key, st, actions)
        return o, s, {a: jnp.stack([v, v]) for a, v in r.items()}, d, i


class NaNRewardEnv(CueEnv):
    def step_env(self, key, st, actions):
        o, s, r, d, i = super().step_env(key, st, actions)
        return o, s, {a: v * jnp.nan for a, v in r.items()}, d, i


class NoAllDoneEnv(CueEnv):
    """dones without '__all__'."""

    def step_env(self, key, st, actions):
        o, s, r, d, i = super().step_env(key, st, actions)
        return o, s, r, {a: d[a] for a in self.agents}, i


class NeverEndsEnv(CueEnv):
    """Declares max_steps but never ends an episode."""

    def _ends(self, t):
        return jnp.zeros((), bool)


class OverLimitEnv(CueEnv):
    """Ends its episodes two steps after max_steps."""

    def _ends(self, t):
        return t >= self.max_steps + 2


class NumpyRandomEnv(CueEnv):
    """Adds numpy noise to its observations: not a function of the key."""

    def _obs(self, st):
        return {a: o + float(np.random.rand()) for a, o in super()._obs(st).items()}


class PythonCounterEnv(CueEnv):
    """Keeps its step count in a Python attribute (not in the state): jitted and eager steps disagree."""

    def reset(self, key):
        self.calls = 0
        return super().reset(key)

    def step_env(self, key, st, actions):
        self.calls = getattr(self, "calls", 0) + 1
        o, s, r, d, i = super().step_env(key, st, actions)
        return o, s, {a: v + self.calls for a, v in r.items()}, d, i


class PythonIfEnv(CueEnv):
    """Python control flow on array values: runs eagerly, cannot be jitted."""

    def step_env(self, key, st, actions):
        o, s, r, d, i = super().step_env(key, st, actions)
        if st.t > 100:  # a Python bool of a traced value fails under jit
            r = {a: v * 0 for a, v in r.items()}
        return o, s, r, d, i


class PaddedMaskEnv(CueEnv):
    """Agent 1 has K - 1 actions but its mask (K entries) marks the missing action available."""

    def __init__(self):
        super().__init__()
        self.action_spaces = {"agent_0": spaces.Discrete(K), "agent_1": spaces.Discrete(K - 1)}

    def step_env(self, key, st, actions):
        return super().step_env(key, st, {a: jnp.minimum(v, K - 2) for a, v in actions.items()})

    def get_avail_actions(self, st):
        return {a: jnp.ones((K,), bool) for a in self.agents}


class NoActionEnv(CueEnv):
    """A live agent with no available action."""

    def get_avail_actions(self, st):
        return {a: jnp.zeros((K,), bool) for a in self.agents}


class GrowingWorldEnv(CueEnv):
    """get_world_state changes size from step to step."""

    def get_world_state(self, st):
        return jnp.zeros((3 + int(st.t),))


class BrokenResetEnv(CueEnv):
    def reset(self, key):
        raise RuntimeError("forgot to build the arena")


class UnboundedBoxEnv(CueEnv):
    """Continuous actions without bounds."""

    def __init__(self):
        super().__init__()
        self.action_spaces = {a: spaces.Box(-jnp.inf, jnp.inf, (2,)) for a in self.agents}

    def step_env(self, key, st, actions):
        return super().step_env(key, st, {a: jnp.argmax(v).astype(jnp.int32) for a, v in actions.items()})


def make_working():
    return CueEnv()

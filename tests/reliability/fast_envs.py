"""JAX test envs that import no jaxmarl (process start-up in the subprocess tests stays ~5 s shorter).

The cue game of ``tests/envs/custom_envs.py`` written against the JaxMARL API by duck typing, returned as a
ready :class:`~trustmarl.envs.core.JaxMARLAdapter`, so ``env=fast_envs:make_fast`` resolves without
importing jaxmarl. ``nan_at=k`` makes the reward NaN at the k-th step of every env (episodes then last the
whole run), to test the non-finite guard.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from trustmarl.envs.core import JaxMARLAdapter

K = 3  # cue values = actions


class Discrete(NamedTuple):
    n: int


class Box(NamedTuple):
    low: float
    high: float
    shape: tuple


class CueState(NamedTuple):
    cue: jax.Array
    t: jax.Array


class FastCue:
    """2 agents see a one-hot cue (and their id) and are paid 1 for playing its index."""

    def __init__(self, max_steps: int = 5, nan_at: int = 0):
        self.agents = ["a0", "a1"]
        self.max_steps = max_steps
        self.nan_at = nan_at

    def observation_space(self, agent):
        return Box(0.0, 1.0, (K + 2,))

    def action_space(self, agent):
        return Discrete(K)

    def get_avail_actions(self, state):
        raise NotImplementedError

    def _obs(self, st: CueState) -> dict:
        cue = jax.nn.one_hot(st.cue, K)
        return {a: jnp.concatenate([cue, jax.nn.one_hot(i, 2)]) for i, a in enumerate(self.agents)}

    def reset(self, key):
        st = CueState(jax.random.randint(key, (), 0, K), jnp.zeros((), jnp.int32))
        return self._obs(st), st

    def step_env(self, key, st, actions):
        t = st.t + 1
        bad = (t == self.nan_at) if self.nan_at else jnp.zeros((), bool)
        rew = {a: jnp.where(bad, jnp.nan, (actions[a] == st.cue).astype(jnp.float32)) for a in self.agents}
        nxt = CueState(jax.random.randint(key, (), 0, K), t)
        done = t >= self.max_steps
        return self._obs(nxt), nxt, rew, {a: done for a in self.agents} | {"__all__": done}, {}


def make_fast(max_steps: int = 5, nan_at: int = 0):
    if nan_at:
        max_steps = 10**6  # one episode for the whole run: env step k of each env is update k // T + 1
    return JaxMARLAdapter(FastCue(max_steps, nan_at), "fast_cue")

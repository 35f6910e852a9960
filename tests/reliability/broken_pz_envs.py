"""PettingZoo envs for the host-path and check-env tests: a working cue game and deliberately broken copies.

No jaxmarl import (worker processes import this module to unpickle their constructor, so it stays light).
``CuePZ`` is the cue game of ``tests/envs/custom_envs.py``: 2 agents see a one-hot cue and their id and are
paid 1 for playing the cue's index; episodes are cut at ``max_cycles`` (a truncation).
Worker failures (``crash_at``/``hang_at``/...) count the env's steps since construction and only fire in a
worker process, so nothing here can take the test process down.
"""
from __future__ import annotations

import functools
import multiprocessing
import os
import random
import time

import numpy as np
from gymnasium import spaces
from pettingzoo.utils.env import ParallelEnv

K = 3
OBS = K + 2


class CuePZ(ParallelEnv):
    metadata = {"name": "cue_pz"}

    def __init__(self, max_cycles: int = 5):
        self.max_cycles = max_cycles
        self.possible_agents = ["p0", "p1"]
        self.agents = []
        self._rng = np.random.default_rng(0)
        self._cue, self._t, self.total = 0, 0, 0

    def observation_space(self, agent):
        return spaces.Box(0.0, 1.0, (OBS,), np.float32)

    def action_space(self, agent):
        return spaces.Discrete(K)

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

    def _flags(self):
        trunc = self._t >= self.max_cycles
        return {a: False for a in self.agents}, {a: trunc for a in self.agents}

    def step(self, actions):
        self.total += 1
        rew = {a: float(actions[a] == self._cue) for a in self.agents}
        self._t += 1
        self._cue = int(self._rng.integers(K))
        term, trunc = self._flags()
        out = (self._obs(), rew, term, trunc, {a: {} for a in self.agents})
        if any(trunc.values()) or any(term.values()):
            self.agents = []
        return out


def _in_worker() -> bool:
    return multiprocessing.parent_process() is not None


class CrashPZ(CuePZ):
    """The worker process dies (as on a segfault) at its ``at``-th step."""

    def __init__(self, at: int = 3):
        super().__init__()
        self.at = at

    def step(self, actions):
        if _in_worker() and self.total + 1 >= self.at:
            os._exit(3)
        return super().step(actions)


class HangPZ(CuePZ):
    """The env never returns from its ``at``-th step."""

    def __init__(self, at: int = 3):
        super().__init__()
        self.at = at

    def step(self, actions):
        if _in_worker() and self.total + 1 >= self.at:
            time.sleep(3600)
        return super().step(actions)


class RaisePZ(CuePZ):
    """The env raises at its ``at``-th step."""

    def __init__(self, at: int = 3):
        super().__init__()
        self.at = at

    def step(self, actions):
        if self.total + 1 >= self.at:
            raise RuntimeError("the physics engine exploded")
        return super().step(actions)


class WrongObsPZ(CuePZ):
    """Observations of the wrong size from its ``at``-th step (malformed data)."""

    def __init__(self, at: int = 3, max_cycles: int = 5):
        super().__init__(max_cycles)
        self.at = at

    def step(self, actions):
        obs, rew, term, trunc, info = super().step(actions)
        if self.total >= self.at:
            obs = {a: np.zeros(OBS + 2, np.float32) for a in obs}
        return obs, rew, term, trunc, info


class TextRewardPZ(CuePZ):
    """A reward that is not a number (malformed data)."""

    def step(self, actions):
        obs, rew, term, trunc, info = super().step(actions)
        return obs, {a: "lots" for a in rew}, term, trunc, info


# --- broken against the contract (check-env tests) -------------------------------------------------------------
class TerminateAtLimitPZ(CuePZ):
    """Reports terminations, not truncations, when the time limit ends the episode (like multiwalker_v9)."""

    def _flags(self):
        end = self._t >= self.max_cycles
        return {a: end for a in self.agents}, {a: False for a in self.agents}


class BothFlagsPZ(CuePZ):
    """Sets termination and truncation for the same agent."""

    def _flags(self):
        end = self._t >= self.max_cycles
        return {a: end for a in self.agents}, {a: end for a in self.agents}


class NoResetCounterPZ(CuePZ):
    """``reset`` forgets to reset the step counter: the episode after the first ends at once."""

    def reset(self, seed=None, options=None):
        t = self._t
        out = super().reset(seed, options)
        self._t = t
        return out


class UnseededPZ(CuePZ):
    """Draws cues from Python's global random module, ignoring the seed."""

    def reset(self, seed=None, options=None):
        out = super().reset(seed, options)
        self._cue = random.randrange(K)
        return self._obs(), out[1]

    def step(self, actions):
        out = super().step(actions)
        self._cue = random.randrange(K)
        return (self._obs(),) + out[1:]


class BadMaskPZ(CuePZ):
    """Action masks (in infos) of K - 1 entries for K actions."""

    def reset(self, seed=None, options=None):
        obs, _ = super().reset(seed, options)
        return obs, {a: {"action_mask": np.ones(K - 1, np.int8)} for a in self.agents}


class NoActionPZ(CuePZ):
    """Action masks with no available action."""

    def reset(self, seed=None, options=None):
        obs, _ = super().reset(seed, options)
        return obs, {a: {"action_mask": np.zeros(K, np.int8)} for a in self.agents}


class LingeringAgentsPZ(CuePZ):
    """Agents stay in ``env.agents`` after the episode ended."""

    def step(self, actions):
        agents = list(self.agents)
        out = super().step(actions)
        if not self.agents and self._t < self.max_cycles + 3:
            self.agents = agents
        return out


class OverLimitPZ(CuePZ):
    """Runs two steps past its own ``max_cycles``."""

    def _flags(self):
        trunc = self._t >= self.max_cycles + 2
        return {a: False for a in self.agents}, {a: trunc for a in self.agents}


class NaNRewardPZ(CuePZ):
    def step(self, actions):
        obs, rew, term, trunc, info = super().step(actions)
        return obs, {a: float("nan") for a in rew}, term, trunc, info


# --- constructors (factory paths broken_pz_envs:<name>) ----------------------------------------------------------
def make_cue(max_cycles: int = 5):
    return functools.partial(CuePZ, max_cycles=max_cycles)


def make_crash(at: int = 3):
    return functools.partial(CrashPZ, at=at)


def make_hang(at: int = 3):
    return functools.partial(HangPZ, at=at)

"""Google Research Football academy scenarios as a PettingZoo ``ParallelEnv`` for the host path.

``GRFParallelEnv("academy_counterattack_easy")`` (or ``_hard``) wraps
``gfootball.env.create_environment(representation="simple115v2", number_of_left_players_agent_controls=4)``:
4 controlled left-team players (``player_0`` … ``player_3``), each observing the 115-float simple115v2
vector and choosing one of the 19 default actions (``Discrete(19)``). Train it with
:func:`trustmarl.runtime.loop.host_train` (``env_fn=grf_env_fn("academy_counterattack_easy")``).

Reward: team reward shared by all agents, ``r = mean_i r_i`` over the 4 players' gfootball rewards.
With ``rewards="scoring"`` every ``r_i`` is the score difference change (+1 goal for, −1 against), so
``r = r_i``; with ``"scoring,checkpoints"`` the checkpoint bonus (+0.1 per tenth of the distance to the
goal, per player who carries the ball there) is averaged over the team.

Episode ends, mirroring gfootball's own rules (``football_env_core.py``), since gfootball reports only
``done``:

* **termination** (the task ended the episode: no bootstrap): a goal (``end_episode_on_score``), the ball
  going out of play (``end_episode_on_out_of_play``: game mode leaves Normal) or the other team winning the
  ball (``end_episode_on_possession_change``);
* **truncation** (time limit, bootstrap): ``game_duration`` (400 steps for both counterattack scenarios)
  elapsed with none of the above. ``max_cycles`` is ``game_duration``.

``infos[agent]["won"]`` is True when the episode's scoring reward sums to > 0 (a goal scored), so the host
path reports a win rate (``has_win``).

gfootball is optional: it is imported when the first env is built, and a missing install raises an
ImportError naming ``scripts/install_gfootball.sh`` (Debian packages, gym==0.23.1, gfootball==2.10.2).
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import random
import signal
from typing import Callable, Optional

import numpy as np
from gymnasium import spaces
from pettingzoo.utils.env import ParallelEnv

SCENARIOS = ("academy_counterattack_easy", "academy_counterattack_hard")
REWARDS = ("scoring", "scoring,checkpoints")
NUM_ACTIONS = 19  # gfootball's default action set (action_set_v1)
OBS_SIZE = 115  # simple115v2
GAME_MODE_NORMAL = 0
INSTALL_HINT = ("gfootball is not installed; run `bash scripts/install_gfootball.sh` (Debian packages, "
                "gym==0.23.1, gfootball==2.10.2, a ~5 min engine build)")


def gfootball_available() -> bool:
    """Whether gfootball (and its engine) can be imported, without raising."""
    try:
        import gfootball.env  # noqa: F401
    except Exception:  # ImportError, or a broken engine build (OSError from the shared library)
        return False
    return True


@contextlib.contextmanager
def keep_segv_handler():
    """Put back the process's SIGSEGV disposition after gfootball's engine starts a game.

    The engine installs its own SIGSEGV handler whenever a game starts (``install_stacktrace`` in
    ``game_env.cpp``) and never removes it. That handler calls ``backtrace()`` from inside the signal handler,
    which takes the C++ unwinder's lock: a fault that arrives while the lock is held (seen once in the test
    suite: a fault inside the unwinder during an XLA compile, long after the env was closed) then deadlocks
    the whole process instead of ending it with Python's ``faulthandler`` report. The previous ``struct
    sigaction`` is saved and restored byte for byte through libc (Linux, like gfootball itself).
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        saved = ctypes.create_string_buffer(512)  # > sizeof(struct sigaction) (152 bytes on x86-64 glibc)
        ok = libc.sigaction(signal.SIGSEGV, None, saved) == 0
    except (OSError, AttributeError):  # no libc sigaction: nothing to keep
        ok = False
    try:
        yield
    finally:
        if ok:
            libc.sigaction(signal.SIGSEGV, saved, None)


def _import_gfootball():
    try:
        import gfootball.env as football_env
    except ImportError as err:
        raise ImportError(f"{INSTALL_HINT} ({err})") from None
    return football_env


class GRFParallelEnv(ParallelEnv):
    """A gfootball academy scenario with ``num_agents`` controlled players (module docstring).

    Args:
      scenario: one of :data:`SCENARIOS`.
      rewards: ``"scoring"`` or ``"scoring,checkpoints"``.
      num_agents: controlled left players (4 in the counterattack benchmark; 1..4 allowed).
      representation: gfootball observation ("simple115v2"; "simple115" also works, same size).
    """

    metadata = {"name": "grf", "render_modes": []}
    has_win = True  # the host vector env reads infos[agent]["won"] at episode ends
    reports_truncations = True  # time-limit ends are reported as truncations (see trustmarl.envs.host_vector)

    def __init__(self, scenario: str = "academy_counterattack_easy", rewards: str = "scoring",
                 num_agents: int = 4, representation: str = "simple115v2"):
        if scenario not in SCENARIOS:
            raise ValueError(f"scenario={scenario!r} is not supported; allowed: {', '.join(SCENARIOS)}")
        if rewards not in REWARDS:
            raise ValueError(f"rewards={rewards!r} is not supported; allowed: {', '.join(REWARDS)}")
        if not isinstance(num_agents, int) or isinstance(num_agents, bool) or not 1 <= num_agents <= 4:
            raise ValueError(f"num_agents={num_agents!r} must be an integer in 1..4")
        if representation not in ("simple115v2", "simple115"):
            raise ValueError(f"representation={representation!r} is not supported; allowed: simple115v2, simple115")
        football_env = _import_gfootball()
        self.scenario = scenario
        self.metadata = {**self.metadata, "name": f"grf_{scenario}"}
        with keep_segv_handler():
            self._env = football_env.create_environment(
                env_name=scenario, representation=representation, rewards=rewards,
                number_of_left_players_agent_controls=num_agents, stacked=False, render=False,
                write_goal_dumps=False, write_full_episode_dumps=False, write_video=False)
        self._core = self._env.unwrapped  # FootballEnv: raw observations and the scenario config
        scenario_cfg = self._core._config.ScenarioConfig()
        self.max_cycles = int(scenario_cfg.game_duration)
        self._ends = (bool(scenario_cfg.end_episode_on_score), bool(scenario_cfg.end_episode_on_out_of_play),
                      bool(scenario_cfg.end_episode_on_possession_change))
        self.possible_agents = [f"player_{i}" for i in range(num_agents)]
        self.agents: list = []
        self._obs_space = spaces.Box(-np.inf, np.inf, (OBS_SIZE,), np.float32)
        self._act_space = spaces.Discrete(NUM_ACTIONS)
        self._rng = random.Random()
        self._score = 0.0

    def observation_space(self, agent):
        return self._obs_space

    def action_space(self, agent):
        return self._act_space

    def _split(self, obs) -> dict:
        obs = np.asarray(obs, np.float32).reshape(len(self.possible_agents), OBS_SIZE)
        return {a: obs[i] for i, a in enumerate(self.possible_agents)}

    def _raw(self) -> dict:
        return self._core.observation()[0]

    def reset(self, seed: Optional[int] = None, options=None):
        if seed is not None:
            self._rng = random.Random(seed)
        # gfootball draws each episode's engine seed from Python's global `random` unless the config holds
        # one; setting it per episode from our own stream makes episodes reproducible from `seed`.
        self._core._config._values["game_engine_random_seed"] = self._rng.randint(0, 2_000_000_000)
        with keep_segv_handler():
            obs = self._env.reset()
        raw = self._raw()
        self._prev_mode = int(raw["game_mode"])
        self._prev_owner = int(raw["ball_owned_team"])
        self._score = 0.0
        self.agents = list(self.possible_agents)
        return self._split(obs), {a: {} for a in self.agents}

    def _ended_by_task(self, raw: dict, score_reward: float) -> bool:
        """gfootball's three task ends (football_env_core.step), recomputed from the raw observation."""
        on_score, on_out, on_possession = self._ends
        mode, owner = int(raw["game_mode"]), int(raw["ball_owned_team"])
        scored = on_score and (score_reward != 0 or any(s > 0 for s in raw["score"]))
        out_of_play = on_out and mode != GAME_MODE_NORMAL and self._prev_mode == GAME_MODE_NORMAL
        turnover = on_possession and owner != -1 and self._prev_owner != -1 and owner != self._prev_owner
        return bool(scored or out_of_play or turnover)

    def step(self, actions: dict):
        act = np.array([int(actions[a]) for a in self.possible_agents])
        obs, reward, done, info = self._env.step(act)
        raw = self._raw()
        score_reward = float(info.get("score_reward", 0.0))
        self._score += score_reward
        by_task = self._ended_by_task(raw, score_reward) if done else False
        self._prev_mode = int(raw["game_mode"])
        if int(raw["ball_owned_team"]) != -1:
            self._prev_owner = int(raw["ball_owned_team"])
        team = float(np.mean(reward))
        rew = {a: team for a in self.possible_agents}
        term = {a: bool(done and by_task) for a in self.possible_agents}
        trunc = {a: bool(done and not by_task) for a in self.possible_agents}
        infos = {a: {"score_reward": score_reward, "won": bool(done and self._score > 0)}
                 for a in self.possible_agents}
        self.agents = [] if done else list(self.possible_agents)
        return self._split(obs), rew, term, trunc, infos

    def close(self):
        if getattr(self, "_env", None) is not None:
            self._env.close()
            self._env = None


def grf_env_fn(scenario: str = "academy_counterattack_easy", rewards: str = "scoring",
               num_agents: int = 4) -> Callable[[], GRFParallelEnv]:
    """A picklable zero-argument constructor for :class:`trustmarl.envs.host_vector.HostVectorEnv` / ``host_train``.

    Arguments are checked here, in the parent, so that a typo fails before any worker starts.
    """
    if scenario not in SCENARIOS:
        raise ValueError(f"scenario={scenario!r} is not supported; allowed: {', '.join(SCENARIOS)}")
    if rewards not in REWARDS:
        raise ValueError(f"rewards={rewards!r} is not supported; allowed: {', '.join(REWARDS)}")
    return functools.partial(GRFParallelEnv, scenario=scenario, rewards=rewards, num_agents=num_agents)

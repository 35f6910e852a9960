"""Environment registry: every env name trustmarl knows, built into the stacked-array contract.

``make_env(name, **options) -> JaxMARLAdapter``. Names and their options are listed by
:func:`list_envs` (and ``trustmarl list``). Users bring their own environments through
:func:`register_env`, ``package.module:factory`` paths (:func:`resolve_env`) or :func:`as_jax_env`
(:mod:`trustmarl.envs.registry`, docs/envs/custom.md); this module adds the built-ins.
"""
from __future__ import annotations

import importlib
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax.numpy as jnp

from trustmarl.envs.core import (GLOBAL_STATE_KINDS, AdapterState, EnvHooks, EnvSpec, EpisodeStats,
                                 JaxMARLAdapter, Timestep)
from trustmarl.envs.registry import (ENVS, EnvEntry, as_jax_env, check_jax_env, is_host_env, list_envs,
                                     make_env, register_env, resolve_env)

__all__ = ["make_env", "list_envs", "list_smax_maps", "EnvSpec", "Timestep", "AdapterState", "EpisodeStats",
           "JaxMARLAdapter", "EnvHooks", "ENVS", "EnvEntry", "register_env", "resolve_env", "as_jax_env",
           "is_host_env", "check_jax_env", "GLOBAL_STATE_KINDS"]


def _quiet_jaxmarl():
    """jaxmarl prints a line about optional submodules on import; keep CLI output clean."""
    import contextlib
    import io
    with contextlib.redirect_stdout(io.StringIO()):
        import jaxmarl  # noqa: F401
    return jaxmarl


# --- SMAX --------------------------------------------------------------------------------------
def _smax_alive(env, st):
    return st.state.unit_alive[: env.num_allies]


def _smax_won(env, st):
    # A win is every enemy dead while some ally lives (JaxMARL's SMAXLogWrapper counts enemy wipe-out).
    alive = st.state.unit_alive
    return jnp.all(~alive[env.num_allies:]) & jnp.any(alive[: env.num_allies])


def _smax_world(env, st, obs):
    return env._env.get_world_state(st.state)


def _smax_task_terminal(env, st):
    alive = st.state.unit_alive
    return jnp.all(~alive[: env.num_allies]) | jnp.all(~alive[env.num_allies:])


SMAX_HOOKS = EnvHooks(alive=_smax_alive, won=_smax_won, world_state=_smax_world,
                      task_terminal=_smax_task_terminal, has_win=True)


def list_smax_maps() -> dict[str, tuple[int, int]]:
    """Every SMAX map known (built-in plus those trustmarl registers): name -> (allies, enemies)."""
    _quiet_jaxmarl()
    from jaxmarl.environments.smax import smax_env
    try:
        extra = importlib.import_module("trustmarl.envs.smax_maps")
        extra.register_seed_maps()
    except ImportError:
        pass
    registry = getattr(smax_env, "MAP_NAME_TO_SCENARIO", None)
    out = {}
    for name, sc in sorted(registry.items()):
        out[name] = (int(sc.num_allies), int(sc.num_enemies))
    return out


def _make_smax(map: str = "3m", global_state: str = "agent_specific", see_enemy_actions: bool = True,
               walls_cause_death: bool = True, attack_mode: str = "closest", death_masking: bool = True):
    maps = list_smax_maps()
    if map not in maps:
        raise ValueError(f"map={map!r} is not a SMAX map; allowed: {', '.join(maps)}")
    from jaxmarl.environments.smax import HeuristicEnemySMAX, map_name_to_scenario
    env = HeuristicEnemySMAX(scenario=map_name_to_scenario(map), see_enemy_actions=see_enemy_actions,
                             walls_cause_death=walls_cause_death, attack_mode=attack_mode)
    return JaxMARLAdapter(env, f"smax:{map}", hooks=SMAX_HOOKS, global_state=global_state,
                          death_masking=death_masking)


# --- MPE ---------------------------------------------------------------------------------------
def _mpe_spread_world(env, st, obs):
    """MPE simple_spread's compact world state, ``[4N + 2L]``: agent positions (2N), agent velocities (2N),
    landmark positions (2L), each block entity-major. Landmarks never move and agents are silent, so this is
    the whole state the dynamics and rewards read (docs/envs/mpe.md)."""
    n = env.num_agents
    return jnp.concatenate([st.p_pos[:n].reshape(-1), st.p_vel[:n].reshape(-1), st.p_pos[n:].reshape(-1)])


def _mpe_spread_agent_state(env, st, obs):
    """``[N, 4 + 2L + 4(N−1)]`` agent-centred world (:func:`trustmarl.envs.spread.agent_centred_state`): the
    body of the agent-specific state, as wide as one observation (docs/envs/mpe.md)."""
    from trustmarl.envs.spread import agent_centred_state
    n = env.num_agents
    return agent_centred_state(st.p_pos[:n], st.p_vel[:n], st.p_pos[n:])


MPE_SPREAD_HOOKS = EnvHooks(world_state=_mpe_spread_world, agent_state=_mpe_spread_agent_state)


def _make_mpe_spread(num_agents: int = 3, global_state: str = "agent_specific", continuous: bool = False):
    if not isinstance(num_agents, int) or num_agents < 1:
        raise ValueError(f"num_agents={num_agents!r} must be an integer >= 1")
    jaxmarl = _quiet_jaxmarl()
    # Continuous MPE actions are Box(0, 1, (5,)): per-direction forces, as in PettingZoo's MPE.
    env = jaxmarl.make("MPE_simple_spread_v3", num_agents=num_agents, num_landmarks=num_agents,
                       action_type="Continuous" if continuous else "Discrete")
    return JaxMARLAdapter(env, f"mpe_spread:{num_agents}", hooks=MPE_SPREAD_HOOKS, global_state=global_state)


# --- trustmarl's own JAX environments (modules written beside this one) ------------------------
def _own_world(env, st, obs):
    return env.get_world_state(st).astype(jnp.float32)


def _own_agent_state(env, st, obs):
    return env.get_agent_state(st).astype(jnp.float32)


def _own_hooks(env) -> EnvHooks:
    """Spread, Pursuit and Rover-Tower each give a compact O(N) world state (``get_world_state``); Spread also
    gives the agent-specific state's body (``get_agent_state``), else it is ``[own obs, world]``. Layouts:
    docs/envs/<env>.md."""
    return EnvHooks(world_state=_own_world,
                    agent_state=_own_agent_state if hasattr(env, "get_agent_state") else None)


def _own(module: str, factory: str, default_state: str = "agent_specific"):
    def make(global_state: str = default_state, **kw):
        mod = importlib.import_module(f"trustmarl.envs.{module}")
        env = getattr(mod, factory)(**kw)
        return JaxMARLAdapter(env, module, hooks=_own_hooks(env), global_state=global_state)
    return make


def _pz(module: str, name: str):
    """Host-path env: ``make(**kw)`` gives a picklable zero-argument PettingZoo ParallelEnv constructor."""
    def make(**kw):
        import functools
        mod = importlib.import_module(module)
        return functools.partial(getattr(mod, name).parallel_env, **kw)
    return make


def _grf(scenario: str):
    def make(rewards: str = "scoring"):
        from trustmarl.envs.grf import grf_env_fn
        return grf_env_fn(scenario=scenario, rewards=rewards)
    return make


# The built-ins (registry.ENVS starts empty; register_env adds user envs beside these).
ENVS.update({
    "mpe_spread": EnvEntry(_make_mpe_spread, "JaxMARL MPE simple_spread_v3 (N agents, N landmarks)",
                           ("num_agents", "continuous")),
    "smax": EnvEntry(_make_smax, "JaxMARL SMAX with the heuristic enemy (SMAC stand-in)", ("map",)),
    "spread": EnvEntry(_own("spread", "make_spread"), "trustmarl Spread: N agents, reward structures "
                       "standard/sep/mix/ful (MAMT App. D)", ("num_agents", "reward_structure")),
    "pursuit": EnvEntry(_own("pursuit", "make_pursuit"), "SISL pursuit_v5 in JAX (8 pursuers, 30 evaders)",
                        ("n_pursuers", "n_evaders")),
    "rover_tower": EnvEntry(_own("rover_tower", "make_rover_tower"),
                            "Rover-Tower (MAAC multi_speaker_listener): 4 rovers + 4 towers", ()),
    "pz_pursuit": EnvEntry(_pz("pettingzoo.sisl", "pursuit_v5"), "PettingZoo pursuit_v5 on the host path",
                           ("max_cycles",), host=True),
    "pz_multiwalker": EnvEntry(_pz("pettingzoo.sisl", "multiwalker_v9"),
                               "PettingZoo multiwalker_v9 (continuous) on the host path", ("max_cycles",),
                               host=True),
    "grf_counterattack_easy": EnvEntry(_grf("academy_counterattack_easy"),
                                       "Google Research Football academy_counterattack_easy (4 players), host",
                                       ("rewards",), host=True),
    "grf_counterattack_hard": EnvEntry(_grf("academy_counterattack_hard"),
                                       "Google Research Football academy_counterattack_hard (4 players), host",
                                       ("rewards",), host=True),
})

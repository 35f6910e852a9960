"""Spread: N agents cover N landmarks (MPE ``simple_spread``), in pure JAX, plus MAMT's Spread-3 variants.

Semantics follow PettingZoo ``simple_spread_v3`` and JaxMARL 0.2.0 ``MPE_simple_spread_v3`` (the default
configuration gives the same observations and rewards as JaxMARL's, checked in ``tests/envs``), with every
per-agent loop replaced by array operations so that N can be in the hundreds.

World (MPE, ``_mpe_utils/core.py``), per agent ``a`` with position ``p_a``, velocity ``v_a``, mass ``m = 1``::

    u_a = accel * move(action_a)                    accel = 5 ("sensitivity"), move ∈ {0, ±e_x, ±e_y}
    F_a = u_a + Σ_{b≠a} f_ab                        contact forces between colliding agents
    f_ab = c · (p_a − p_b)/‖p_a − p_b‖ · k·log(1 + exp(−(‖p_a − p_b‖ − 2s)/k))     c = 100, k = 1e-3, s = .15
    explicit Euler (v3, default):   p' = p + v·dt ;  v' = (1 − δ)·v + F/m·dt           δ = .25, dt = .1
    semi-implicit (original MPE):   v' = (1 − δ)·v + F/m·dt ;  p' = p + v'·dt

Discrete actions (PettingZoo/JaxMARL order): 0 no-op, 1 −x, 2 +x, 3 −y, 4 +y.

Observation of agent ``a`` (layout ``[vel, pos, landmark rel pos, other agents rel pos, comms]``)::

    [v_a (2), p_a (2), q_l − p_a for each observed landmark (2·L_obs),
     p_b − p_a for each observed other agent (2·K), c_b for each observed other agent (2·K)]

With ``num_observed_others=None`` all N−1 others are seen in index order (the reference layout, size
``4 + 2N + 4(N−1)``); with an int ``K`` only the K nearest others are seen, nearest first (ties: lower index
first), so the size stays ``4 + 2·L_obs + 4K`` for any N. ``num_observed_landmarks`` does the same for
landmarks. Agents are silent, so the comm entries are always zero; they are kept so that the layout is the
reference one.

Reward of agent ``a`` at the state reached by the step (``ρ = local_ratio``)::

    D_a = − Σ_{l ∈ L(a)} min_{b ∈ G(a)} ‖p_b − q_l‖          (distance part)
    C_a = − Σ_{b ∈ G(a), b ≠ a} 1[‖p_a − p_b‖ < 2s]          (collision part, −1 per collision)
    r_a = (1 − ρ)·D_a + ρ·C_a        (PettingZoo v3, ρ = .5)
    r_a = D_a + C_a                  (``local_ratio=None``: the original MPE / MAAC scenario, unweighted)

where ``G(a)`` (the agents ``a``'s reward depends on) and ``L(a)`` (the landmarks it is scored on) are set by
``reward_structure``:

* ``"standard"`` / ``"ful"``: ``G(a)`` = all agents, ``L(a)`` = all landmarks — the usual shared distance
  term and local collision penalty. MAMT Appendix D: "the rightmost MRF is consistent with the standard
  environment settings, labeled Spread-3-Ful".
* ``"sep"`` (Spread-3-Sep, MAMT Appendix D, Fig. 7 left): "all agents are independent. The reward function of
  each agent is only related to itself, only related to the minimum distance between itself and a specific
  landmark, and will not collide with other agents." Here ``G(a) = {a}``, ``L(a) = {landmark a}``, so
  ``D_a = −‖p_a − q_a‖`` and ``C_a = 0``.
* ``"mix"`` (Spread-3-Mix, MAMT Appendix D, Fig. 7 middle; N = 3 only): "the reward function of agent j is
  the same as that of Spread-3-Sep, which is only related to itself; but agent i and k are interdependent.
  For agent i, its reward function consists of the minimum distance between i and k and the landmark and
  whether the two collide. The reward function of agent k is similar." Here ``j = mix_solo_agent``:
  ``G(j) = {j}``, ``L(j) = {landmark j}``; for ``a ∈ {i, k}``: ``G(a) = {i, k}``, ``L(a) = {landmark i,
  landmark k}`` — a two-agent Spread inside the pair, collisions only between i and k.

Where the paper is silent, these choices are made (all documented in ``docs/envs/spread.md``):

* the "specific landmark" of agent a is landmark a (landmarks are i.i.d. uniform, so the index is arbitrary);
* the pair {i, k} in Mix is scored on the two landmarks not owned by j;
* the weighting ``r = (1 − ρ)·D + ρ·C`` of the standard environment is kept for Sep and Mix;
* "will not collide with other agents" is read as physical as well: with ``physical_coupling="group"``
  (default) contact forces act only between agents of the same group ``G``, so the transition factorises like
  the reward (Sep: no contacts at all; Mix: only i–k). ``physical_coupling="all"`` keeps MPE contacts
  between every pair and changes only the rewards. For ``"standard"``/``"ful"`` both options are identical.

World state (:meth:`Spread.get_world_state`, the centralised critic's view for ``global_state="env"`` and
MAPPO's agent-specific state): ``[p_pos (2N), p_vel (2N), landmark_pos (2N)]``, 6N numbers.

Episodes are cut after ``max_steps`` = 25 steps (a truncation: ``dones`` are all true on the 25th step and
``infos["truncated"]`` says so; there is no task termination). JaxMARL 0.2.0's MPE compares the step counter
*before* incrementing it and so ends after 26 steps; PettingZoo ends after 25, as here.

Known reference quirks exposed as options: ``integrator`` (PettingZoo v3 / JaxMARL use explicit Euler since
PettingZoo PR #970; the original OpenAI MPE and MAAC's fork integrate semi-implicitly),
``count_self_collision`` (the original MPE scenario counts every agent as colliding with itself, a constant
−1 per step), ``local_ratio=None`` (the original scenario adds the two parts unweighted).
"""
from __future__ import annotations

from functools import partial
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jaxmarl.environments.multi_agent_env import MultiAgentEnv
from jaxmarl.environments.multi_agent_env import State as BaseState
from jaxmarl.environments.spaces import Box, Discrete

__all__ = ["Spread", "SpreadState", "make_spread", "REWARD_STRUCTURES", "INTEGRATORS", "MOVES",
           "decode_moves", "contact_forces", "integrate", "agent_centred_state"]

REWARD_STRUCTURES = ("standard", "sep", "mix", "ful")
INTEGRATORS = ("explicit_euler", "semi_implicit_euler")
PHYSICAL_COUPLINGS = ("group", "all")

# MPE world constants (PettingZoo ``_mpe_utils/core.py`` / JaxMARL ``mpe/default_params.py``).
DT = 0.1
DAMPING = 0.25
CONTACT_FORCE = 100.0
CONTACT_MARGIN = 1e-3

# Discrete movement action -> unit direction, in the PettingZoo / JaxMARL order.
MOVES = np.array([[0.0, 0.0], [-1.0, 0.0], [1.0, 0.0], [0.0, -1.0], [0.0, 1.0]], dtype=np.float32)


# --------------------------------------------------------------------------------------------------
# MPE physics on stacked arrays (shared with rover_tower.py)
# --------------------------------------------------------------------------------------------------
def decode_moves(actions: jax.Array) -> jax.Array:
    """``[N]`` int actions -> ``[N, 2]`` unit directions (0 no-op, 1 −x, 2 +x, 3 −y, 4 +y)."""
    return jnp.asarray(MOVES)[actions]


def contact_forces(pos: jax.Array, size: float, coupled: jax.Array) -> jax.Array:
    """MPE soft contact forces between agents, summed per agent.

    ``f_ab = c · (p_a − p_b)/‖p_a − p_b‖ · k·softplus(−(‖p_a − p_b‖ − 2·size)/k)`` for every pair with
    ``coupled[a, b]`` (diagonal must be false). Every pair is computed at once (``[N, N, 2]``), which is what
    lets N reach the hundreds; the softplus tail is nonzero but negligible beyond a few margins.

    Args:
      pos: ``[N, 2]`` positions. size: radius of every agent. coupled: ``[N, N]`` bool.
    Returns:
      ``[N, 2]`` total contact force on each agent.
    """
    delta = pos[:, None, :] - pos[None, :, :]
    dist = jnp.sqrt(jnp.sum(jnp.square(delta), axis=-1))
    penetration = jnp.logaddexp(0.0, -(dist - 2.0 * size) / CONTACT_MARGIN) * CONTACT_MARGIN
    # Coincident agents (dist 0, measure zero) would give 0/0 in MPE; here they simply exert no force.
    safe = jnp.where(dist > 0.0, dist, 1.0)
    coef = jnp.where(coupled & (dist > 0.0), CONTACT_FORCE * penetration / safe, 0.0)
    return jnp.sum(coef[..., None] * delta, axis=1)


def agent_centred_state(pos: jax.Array, vel: jax.Array, landmark_pos: jax.Array) -> jax.Array:
    """``[N, 4 + 2L + 4(N−1)]`` the world as each agent sees it, with no feature twice:

        [v_i (2), p_i (2), q_l − p_i for every landmark l (2L), p_b − p_i for every other agent b (2(N−1)),
         v_b for every other agent b (2(N−1))]                                others in index order

    i.e. MPE's full observation with its (always zero) comm block replaced by the other agents' velocities.
    It determines the whole world state (absolute positions are ``p_i`` plus the offsets), and it is as wide
    as one observation, so a critic reading it costs what the actor costs. Shared by Spread and JaxMARL's MPE
    ``simple_spread`` (same observation layout).
    """
    n = pos.shape[0]
    others = np.array([[b for b in range(n) if b != a] for a in range(n)], dtype=np.int32).reshape(n, n - 1)
    rel_land = (landmark_pos[None, :, :] - pos[:, None, :]).reshape(n, -1)
    rel_oth = (pos[others] - pos[:, None, :]).reshape(n, -1)
    return jnp.concatenate([vel, pos, rel_land, rel_oth, vel[others].reshape(n, -1)], axis=1)


def integrate(pos: jax.Array, vel: jax.Array, force: jax.Array, integrator: str,
              max_speed: Optional[float] = None) -> tuple[jax.Array, jax.Array]:
    """One MPE integration step of mass-1 particles (see the module docstring for both schemes).

    ``max_speed`` rescales the new velocity onto the sphere of that radius when it is exceeded (MPE
    ``integrate_state``). Returns ``(pos', vel')``.
    """
    new_vel = vel * (1.0 - DAMPING) + force * DT
    if max_speed is not None:
        speed = jnp.sqrt(jnp.sum(jnp.square(new_vel), axis=-1, keepdims=True))
        over = speed > max_speed
        new_vel = jnp.where(over, new_vel / jnp.where(over, speed, 1.0) * max_speed, new_vel)
    if integrator == "explicit_euler":
        new_pos = pos + vel * DT
    else:
        new_pos = pos + new_vel * DT
    return new_pos, new_vel


# --------------------------------------------------------------------------------------------------
# Validation helpers (one-line messages naming the value and what is allowed)
# --------------------------------------------------------------------------------------------------
def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _check_int(name: str, value, low: int, high: Optional[int] = None, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    ok = _is_int(value) and value >= low and (high is None or value <= high)
    if not ok:
        allowed = f"an int >= {low}" if high is None else f"an int in [{low}, {high}]"
        if allow_none:
            allowed += " or None"
        raise ValueError(f"{name}={value!r} is invalid; allowed: {allowed}")


def _check_choice(name: str, value, choices) -> None:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name}={value!r} is invalid; allowed: {', '.join(repr(c) for c in choices)}")


def _check_bool(name: str, value) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name}={value!r} is invalid; allowed: True or False")


# --------------------------------------------------------------------------------------------------
# Spread
# --------------------------------------------------------------------------------------------------
@struct.dataclass
class SpreadState(BaseState):
    """Spread state (``done``, ``step`` from JaxMARL's base state).

    Attributes:
      p_pos: ``[N, 2]`` agent positions.
      p_vel: ``[N, 2]`` agent velocities.
      landmark_pos: ``[N, 2]`` landmark positions (landmarks never move).
      c: ``[N, 2]`` communication state (always zero: agents are silent, as in MPE).
    """

    p_pos: jax.Array
    p_vel: jax.Array
    landmark_pos: jax.Array
    c: jax.Array


class Spread(MultiAgentEnv):
    """MPE Spread with N agents and N landmarks, vectorised over agents; see the module docstring.

    Args:
      num_agents: N (also the number of landmarks). Default 2, the MAMT paper's Spread (App. G.1).
      reward_structure: ``"standard"``, ``"sep"``, ``"mix"`` (N = 3 only) or ``"ful"`` (= ``"standard"``);
        MAMT Appendix D's Spread-3-Sep/Mix/Ful, formulas in the module docstring.
      local_ratio: ρ in ``r = (1−ρ)·D + ρ·C``; ``None`` for the unweighted ``D + C`` of the original MPE.
      max_steps: episode length (truncation).
      num_observed_others: K nearest other agents in the observation; ``None`` = all N−1 in index order.
      num_observed_landmarks: nearest landmarks in the observation; ``None`` = all N in index order.
      integrator: ``"explicit_euler"`` (PettingZoo v3 / JaxMARL) or ``"semi_implicit_euler"`` (original
        OpenAI MPE, MAAC's fork).
      count_self_collision: also count each agent's collision with itself (original MPE scenario: −1 per step).
      physical_coupling: ``"group"`` — contact forces only inside a reward group (Sep/Mix independence);
        ``"all"`` — between every pair of agents, as in MPE.
      mix_solo_agent: index of agent j, the independent agent of Spread-3-Mix.
    """

    agent_size = 0.15
    landmark_size = 0.05
    accel = 5.0
    dim_c = 2

    def __init__(self, num_agents: int = 2, reward_structure: str = "standard",
                 local_ratio: Optional[float] = 0.5, max_steps: int = 25,
                 num_observed_others: Optional[int] = None, num_observed_landmarks: Optional[int] = None,
                 integrator: str = "explicit_euler", count_self_collision: bool = False,
                 physical_coupling: str = "group", mix_solo_agent: int = 1):
        _check_int("num_agents", num_agents, 1)
        _check_choice("reward_structure", reward_structure, REWARD_STRUCTURES)
        if reward_structure == "mix" and num_agents != 3:
            raise ValueError(f"num_agents={num_agents!r} is invalid for reward_structure='mix'; allowed: 3")
        if local_ratio is not None:
            if isinstance(local_ratio, (bool, np.bool_)) or not isinstance(local_ratio, (int, float, np.floating,
                                                                                          np.integer)) \
                    or not 0.0 <= float(local_ratio) <= 1.0:
                raise ValueError(f"local_ratio={local_ratio!r} is invalid; allowed: a float in [0, 1] or None")
        _check_int("max_steps", max_steps, 1)
        _check_int("num_observed_others", num_observed_others, 0, num_agents - 1, allow_none=True)
        _check_int("num_observed_landmarks", num_observed_landmarks, 0, num_agents, allow_none=True)
        _check_choice("integrator", integrator, INTEGRATORS)
        _check_bool("count_self_collision", count_self_collision)
        _check_choice("physical_coupling", physical_coupling, PHYSICAL_COUPLINGS)
        _check_int("mix_solo_agent", mix_solo_agent, 0, num_agents - 1)
        super().__init__(num_agents)
        self.num_landmarks = num_agents
        self.reward_structure = reward_structure
        self.local_ratio = None if local_ratio is None else float(local_ratio)
        self.max_steps = int(max_steps)
        self.num_observed_others = num_observed_others
        self.num_observed_landmarks = num_observed_landmarks
        self.integrator = integrator
        self.count_self_collision = bool(count_self_collision)
        self.physical_coupling = physical_coupling
        self.mix_solo_agent = int(mix_solo_agent)

        n = num_agents
        self.agents = [f"agent_{i}" for i in range(n)]
        # Reward groups: landmark l belongs to agent l's group (the paper's "specific landmark").
        if reward_structure in ("standard", "ful"):
            group = np.zeros(n, np.int32)
        elif reward_structure == "sep":
            group = np.arange(n, dtype=np.int32)
        else:  # mix: {i, k} together, j alone
            group = (np.arange(n) == mix_solo_agent).astype(np.int32)
        self.group = group
        eye = np.eye(n, dtype=bool)
        self._same_group = group[:, None] == group[None, :]  # [agent, agent] and [agent, landmark]
        self._collide_pairs = self._same_group & ~eye
        self._contact_pairs = self._collide_pairs if physical_coupling == "group" else ~eye
        # Static "everyone but me, in index order" table, the reference observation order.
        self._others_idx = np.array([[b for b in range(n) if b != a] for a in range(n)],
                                    dtype=np.int32).reshape(n, n - 1)

        k_oth = n - 1 if num_observed_others is None else num_observed_others
        k_land = n if num_observed_landmarks is None else num_observed_landmarks
        self.obs_dim = 4 + 2 * k_land + 2 * k_oth + self.dim_c * k_oth
        self.observation_spaces = {a: Box(-jnp.inf, jnp.inf, (self.obs_dim,)) for a in self.agents}
        self.action_spaces = {a: Discrete(5) for a in self.agents}

    # -- API -------------------------------------------------------------------------------------
    @property
    def agent_classes(self) -> dict:
        return {"agents": list(self.agents)}

    @partial(jax.jit, static_argnums=(0,))
    def reset(self, key: jax.Array) -> tuple[dict, SpreadState]:
        """Agents and landmarks uniform in ``[−1, 1]²``, at rest, silent, step 0.

        The key is split exactly as JaxMARL's ``SimpleMPE.reset`` does, so one key gives the same world there.
        """
        key_a, key_l = jax.random.split(key)
        n = self.num_agents
        state = SpreadState(
            done=jnp.array(False), step=jnp.array(0, jnp.int32),
            p_pos=jax.random.uniform(key_a, (n, 2), minval=-1.0, maxval=1.0),
            p_vel=jnp.zeros((n, 2)),
            landmark_pos=jax.random.uniform(key_l, (self.num_landmarks, 2), minval=-1.0, maxval=1.0),
            c=jnp.zeros((n, self.dim_c)))
        return self.get_obs(state), state

    @partial(jax.jit, static_argnums=(0,))
    def step_env(self, key: jax.Array, state: SpreadState, actions: dict):
        """One world step; no auto-reset (``MultiAgentEnv.step`` adds it). The world is noiseless: ``key`` is
        unused. Returns ``(obs, state, rewards, dones, infos)``; ``infos`` holds ``[N]`` bool arrays
        ``"terminated"`` (always false) and ``"truncated"`` (true on the ``max_steps``-th step)."""
        act = jnp.stack([jnp.asarray(actions[a]) for a in self.agents]).reshape(self.num_agents)
        force = self.accel * decode_moves(act.astype(jnp.int32))
        force = force + contact_forces(state.p_pos, self.agent_size, jnp.asarray(self._contact_pairs))
        p_pos, p_vel = integrate(state.p_pos, state.p_vel, force, self.integrator)
        step = state.step + 1
        done = step >= self.max_steps
        state = state.replace(p_pos=p_pos, p_vel=p_vel, c=jnp.zeros_like(state.c), done=done, step=step)
        rew = self.rewards(state)
        rewards = {a: rew[i] for i, a in enumerate(self.agents)}
        dones = {a: done for a in self.agents}
        dones["__all__"] = done
        infos = {"terminated": jnp.zeros((self.num_agents,), bool),
                 "truncated": jnp.full((self.num_agents,), done)}
        return self.get_obs(state), state, rewards, dones, infos

    def get_avail_actions(self, state: SpreadState) -> dict:
        """Every movement action is always available: ``{agent: ones([5])}``."""
        return {a: jnp.ones((5,), jnp.int32) for a in self.agents}

    # -- pieces ----------------------------------------------------------------------------------
    def _nearest(self, dist: jax.Array, k: int) -> jax.Array:
        """Indices of the k smallest entries per row, nearest first; a stable sort breaks ties by index."""
        return jnp.argsort(dist, axis=1, stable=True)[:, :k]

    def obs_array(self, state: SpreadState) -> jax.Array:
        """``[N, obs_dim]`` observations (the layout of the module docstring)."""
        n = self.num_agents
        pos = state.p_pos
        rel_land = state.landmark_pos[None, :, :] - pos[:, None, :]  # [N, L, 2]
        if self.num_observed_landmarks is not None:
            idx = self._nearest(jnp.sum(jnp.square(rel_land), -1), self.num_observed_landmarks)
            rel_land = jnp.take_along_axis(rel_land, idx[..., None], axis=1)
        rel_all = pos[None, :, :] - pos[:, None, :]  # [N, N, 2]: p_b - p_a
        if self.num_observed_others is None:
            others = jnp.asarray(self._others_idx)
        else:
            d2 = jnp.sum(jnp.square(rel_all), -1)
            d2 = jnp.where(jnp.eye(n, dtype=bool), jnp.inf, d2)  # self sorts last, never among the K
            others = self._nearest(d2, self.num_observed_others)
        rel_oth = jnp.take_along_axis(rel_all, others[..., None], axis=1)
        comm = state.c[others]  # [N, K, dim_c]
        return jnp.concatenate([state.p_vel, pos, rel_land.reshape(n, -1), rel_oth.reshape(n, -1),
                                comm.reshape(n, -1)], axis=1)

    @partial(jax.jit, static_argnums=(0,))
    def get_obs(self, state: SpreadState) -> dict:
        obs = self.obs_array(state)
        return {a: obs[i] for i, a in enumerate(self.agents)}

    def get_world_state(self, state: SpreadState) -> jax.Array:
        """``[6N]`` compact world state for a centralised critic: ``[p_pos (2N), p_vel (2N), landmark_pos
        (2N)]``, each block agent-major (``x_0, y_0, x_1, y_1, …``).

        It describes the whole state the dynamics and rewards read (the comm block is always zero and the
        reward groups are fixed at construction, so neither is included); its size grows as O(N), where the
        concatenation of all observations grows as O(N²) (``6N·N``).
        """
        return jnp.concatenate([state.p_pos.reshape(-1), state.p_vel.reshape(-1),
                                state.landmark_pos.reshape(-1)]).astype(jnp.float32)

    def get_agent_state(self, state: SpreadState) -> jax.Array:
        """``[N, 6N]`` the world as each agent sees it (:func:`agent_centred_state`): the body of MAPPO's
        agent-specific state for this env, ``[v_i, p_i, q_l − p_i (all l), p_b − p_i (b ≠ i), v_b (b ≠ i)]``.

        The same width as the default observation (whatever ``num_observed_*`` say, it always covers every
        landmark and agent), against ``6N + 6N`` for ``[own observation, world state]``.
        """
        return agent_centred_state(state.p_pos, state.p_vel, state.landmark_pos).astype(jnp.float32)

    def reward_parts(self, state: SpreadState) -> tuple[jax.Array, jax.Array]:
        """``(D, C)``, each ``[N]``: distance and collision parts of the reward (module docstring)."""
        same = jnp.asarray(self._same_group)  # [agent, agent] == [agent, landmark] (landmark l ~ agent l)
        d_al = jnp.sqrt(jnp.sum(jnp.square(state.p_pos[:, None, :] - state.landmark_pos[None, :, :]), -1))
        # min over the agents of the landmark's own group; every landmark's group holds its owner agent.
        m = jnp.min(jnp.where(same, d_al, jnp.inf), axis=0)  # [L]
        dist_part = -jnp.sum(jnp.where(same, m[None, :], 0.0), axis=1)
        d_aa = jnp.sqrt(jnp.sum(jnp.square(state.p_pos[:, None, :] - state.p_pos[None, :, :]), -1))
        hits = (d_aa < 2.0 * self.agent_size) & jnp.asarray(self._collide_pairs)
        coll_part = -jnp.sum(hits, axis=1).astype(jnp.float32)
        if self.count_self_collision:
            coll_part = coll_part - 1.0
        return dist_part, coll_part

    def rewards(self, state: SpreadState) -> jax.Array:
        """``[N]`` rewards ``r = (1−ρ)·D + ρ·C`` (or ``D + C`` when ``local_ratio`` is None)."""
        dist_part, coll_part = self.reward_parts(state)
        if self.local_ratio is None:
            return dist_part + coll_part
        return (1.0 - self.local_ratio) * dist_part + self.local_ratio * coll_part


def make_spread(**kw) -> Spread:
    """Build :class:`Spread`; keyword arguments as in its constructor (unknown ones raise ``ValueError``)."""
    import inspect
    allowed = [p for p in inspect.signature(Spread.__init__).parameters if p != "self"]
    bad = [k for k in kw if k not in allowed]
    if bad:
        raise ValueError(f"unknown Spread option(s) {', '.join(bad)}; allowed: {', '.join(allowed)}")
    return Spread(**kw)

"""Rover-Tower (MAAC's ``multi_speaker_listener``), in pure JAX.

Reference: Iqbal & Sha (2019), MAAC repository ``envs/mpe_scenarios/multi_speaker_listener.py`` (unchanged
from f82b34d to 6174a01) running on MAAC's MPE fork (``shariqiqbal2810/multiagent-particle-envs``,
``multiagent/core.py`` and ``environment.py``). MAMT (App. G.1) uses it unchanged: 4 rovers, 4 towers.

Entities: ``P`` rovers (= MAAC "listeners": movable, silent, size .075, accel 1.5, max speed 1, no
collisions), ``P`` towers (= "speakers": immovable, speak one of ``dim_c`` symbols), ``L`` landmarks (size .04).
Defaults P = 4, L = 6, dim_c = 5. Each reset draws a uniformly random pairing (tower ``t`` ↔ rover
``σ(t)``, σ a permutation) and, per pair, a goal landmark ``g_t`` uniform over the L landmarks (with
replacement: pairs may share a goal). Rovers, towers and landmarks start uniform in ``[−1, 1]²``, at rest.

Agents, in this order (MAAC's: listeners first): ``rover_0 … rover_{P−1}, tower_0 … tower_{P−1}``.

Actions: rover ``Discrete(5)`` movement (0 no-op, 1 −x, 2 +x, 3 −y, 4 +y — the PettingZoo/JaxMARL order;
MAAC's one-hot convention is 1 +x, 2 −x, 3 +y, 4 −y, a relabeling that does not change the task); tower
``Discrete(dim_c)``: the message ``c_t = onehot(action)``, seen by its rover at the next observation (the one
returned by the same step).

Dynamics (mass 1, δ = .25, dt = .1; no contact forces since nothing collides)::

    F_r = accel² · move(a_r)   (``double_accel=True``, MAAC's fork: ``environment._set_action`` scales u by
                                accel as "sensitivity" and ``core.apply_action_force`` multiplies by
                                mass·accel again, so the effective gain is 1.5² = 2.25)
    F_r = accel  · move(a_r)   (``double_accel=False``: PettingZoo-style single scaling)
    v' = (1 − δ)·v + F·dt,  rescaled to ‖v'‖ = 1 when faster;  p' = p + v'·dt   (semi-implicit, MAAC)
    or p' = p + v·dt first (``integrator="explicit_euler"``, PettingZoo v3 / JaxMARL)

Observations (true sizes differ per agent; ``observation_space(agent)`` gives each one, and trustmarl's
adapter zero-pads to the largest and masks)::

    rover r (13, or 25 with rover_observes_landmarks=True):
        [onehot(σ⁻¹(r), P), c_{σ⁻¹(r)} (dim_c), p_r (2), v_r (2), (q_1, …, q_L absolute positions (2L))]
    tower t (8):
        [onehot(σ(t), P), p_{σ(t)} (2), q_{g_t} (2)]

MAAC's code builds the rover observation from the first four blocks only: the landmark block is commented
out in ``multi_speaker_listener.py`` ("give listener locations of all landmarks"), which matches the papers'
"rovers are unable to see in their surroundings and must rely on communication from the towers". The 25-wide
layout with absolute landmark positions (that commented-out line) is available with
``rover_observes_landmarks=True``.

Reward of pair ``t`` (MAAC ``calc_rewards``), given to both its tower and its rover::

    d_t = ‖p_{σ(t)} − q_{g_t}‖²
    R_t = −d_t + 10 · 1[d_t < (s_rover + s_landmark)·1.5]        (.075 + .04)·1.5 = .1725

The threshold compares a *squared* distance with a length (as in MAAC), i.e. the bonus radius is
√.1725 ≈ .415. There is no shared team reward (MAAC's ``share_rews = False``).

World state (:meth:`RoverTower.get_world_state`, the centralised critic's view for ``global_state="env"`` and
MAPPO's agent-specific state), per pair t then the landmarks::

    [p_{σ(t)} (2), v_{σ(t)} (2), q_{g_t} (2), c_t (dim_c), σ(t)/(P−1) (1)] for t = 0 … P−1,  q_1 … q_L (2L)

Episodes last ``max_steps`` = 25 steps (MAAC README for Rover-Tower) and end by truncation only: ``dones``
are all true on the 25th step, ``infos["truncated"]`` says so and ``infos["terminated"]`` is always false.
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from flax import struct
from jaxmarl.environments.multi_agent_env import MultiAgentEnv
from jaxmarl.environments.multi_agent_env import State as BaseState
from jaxmarl.environments.spaces import Box, Discrete

from trustmarl.envs.spread import INTEGRATORS, _check_bool, _check_choice, _check_int, decode_moves, integrate

__all__ = ["RoverTower", "RoverTowerState", "make_rover_tower"]


@struct.dataclass
class RoverTowerState(BaseState):
    """Rover-Tower state (``done``, ``step`` from JaxMARL's base state).

    Attributes:
      rover_pos, rover_vel: ``[P, 2]``.
      tower_pos: ``[P, 2]`` (towers never move; their position is observed by nobody, kept for rendering).
      landmark_pos: ``[L, 2]``.
      c: ``[P, dim_c]`` each tower's current message (one-hot; zeros before the first step).
      tower_to_rover: ``[P]`` int, σ(t): the rover paired with tower t.
      rover_to_tower: ``[P]`` int, σ⁻¹(r).
      goal: ``[P]`` int, g_t: goal landmark of the pair of tower t.
    """

    rover_pos: jax.Array
    rover_vel: jax.Array
    tower_pos: jax.Array
    landmark_pos: jax.Array
    c: jax.Array
    tower_to_rover: jax.Array
    rover_to_tower: jax.Array
    goal: jax.Array


class RoverTower(MultiAgentEnv):
    """Rover-Tower; see the module docstring for the formulas.

    Args:
      num_pairs: P rover–tower pairs (MAAC: 4).
      num_landmarks: L landmarks (MAAC: 6).
      dim_c: number of message symbols (MAAC: 5); the tower action space is ``Discrete(dim_c)``.
      max_steps: episode length (truncation), MAAC: 25.
      rover_observes_landmarks: append the L absolute landmark positions to the rover observation
        (25 wide with defaults). MAAC's code does not (13 wide).
      integrator: ``"semi_implicit_euler"`` (MAAC's MPE fork) or ``"explicit_euler"`` (PettingZoo v3).
      double_accel: apply ``accel`` twice to rover actions, as MAAC's MPE fork does (effective 2.25).
    """

    rover_size = 0.075
    tower_size = 0.075
    landmark_size = 0.04
    rover_accel = 1.5
    rover_max_speed = 1.0
    success_bonus = 10.0

    def __init__(self, num_pairs: int = 4, num_landmarks: int = 6, dim_c: int = 5, max_steps: int = 25,
                 rover_observes_landmarks: bool = False, integrator: str = "semi_implicit_euler",
                 double_accel: bool = True):
        _check_int("num_pairs", num_pairs, 1)
        _check_int("num_landmarks", num_landmarks, 1)
        _check_int("dim_c", dim_c, 1)
        _check_int("max_steps", max_steps, 1)
        _check_bool("rover_observes_landmarks", rover_observes_landmarks)
        _check_choice("integrator", integrator, INTEGRATORS)
        _check_bool("double_accel", double_accel)
        super().__init__(2 * num_pairs)
        self.num_pairs = int(num_pairs)
        self.num_landmarks = int(num_landmarks)
        self.dim_c = int(dim_c)
        self.max_steps = int(max_steps)
        self.rover_observes_landmarks = bool(rover_observes_landmarks)
        self.integrator = integrator
        self.double_accel = bool(double_accel)
        # Why squared accel: see the module docstring (MAAC fork applies accel in two places).
        self.force_gain = self.rover_accel ** 2 if self.double_accel else self.rover_accel
        # MAAC: dist² < (goal_a.size + goal_b.size) * 1.5, rover and landmark sizes.
        self.success_threshold = (self.rover_size + self.landmark_size) * 1.5

        p = self.num_pairs
        self.rovers = [f"rover_{i}" for i in range(p)]
        self.towers = [f"tower_{i}" for i in range(p)]
        self.agents = self.rovers + self.towers
        self.rover_obs_dim = p + self.dim_c + 4 + (2 * self.num_landmarks if self.rover_observes_landmarks else 0)
        self.tower_obs_dim = p + 4
        self.observation_spaces = {a: Box(-jnp.inf, jnp.inf, (self.rover_obs_dim,)) for a in self.rovers}
        self.observation_spaces.update({a: Box(-jnp.inf, jnp.inf, (self.tower_obs_dim,)) for a in self.towers})
        self.action_spaces = {a: Discrete(5) for a in self.rovers}
        self.action_spaces.update({a: Discrete(self.dim_c) for a in self.towers})

    @property
    def agent_classes(self) -> dict:
        return {"rovers": list(self.rovers), "towers": list(self.towers)}

    @partial(jax.jit, static_argnums=(0,))
    def reset(self, key: jax.Array) -> tuple[dict, RoverTowerState]:
        """Random pairing σ (uniform permutation), goal per pair (uniform, with replacement), positions
        uniform in ``[−1, 1]²``, velocities and messages zero."""
        k_perm, k_goal, k_rov, k_tow, k_land = jax.random.split(key, 5)
        p = self.num_pairs
        # argsort of i.i.d. uniforms is a uniform permutation, and far cheaper to trace than
        # jax.random.permutation's repeated sort rounds.
        tower_to_rover = jnp.argsort(jax.random.uniform(k_perm, (p,))).astype(jnp.int32)
        state = RoverTowerState(
            done=jnp.array(False), step=jnp.array(0, jnp.int32),
            rover_pos=jax.random.uniform(k_rov, (p, 2), minval=-1.0, maxval=1.0),
            rover_vel=jnp.zeros((p, 2)),
            tower_pos=jax.random.uniform(k_tow, (p, 2), minval=-1.0, maxval=1.0),
            landmark_pos=jax.random.uniform(k_land, (self.num_landmarks, 2), minval=-1.0, maxval=1.0),
            c=jnp.zeros((p, self.dim_c)),
            tower_to_rover=tower_to_rover,
            rover_to_tower=jnp.argsort(tower_to_rover).astype(jnp.int32),
            goal=jnp.minimum(jnp.floor(jax.random.uniform(k_goal, (p,)) * self.num_landmarks),
                             self.num_landmarks - 1).astype(jnp.int32))
        return self.get_obs(state), state

    @partial(jax.jit, static_argnums=(0,))
    def step_env(self, key: jax.Array, state: RoverTowerState, actions: dict):
        """One world step (noiseless; ``key`` unused), no auto-reset. Returns ``(obs, state, rewards, dones,
        infos)``; ``infos`` holds ``[2P]`` bool arrays ``"terminated"`` (always false) and ``"truncated"``."""
        a_rov = jnp.stack([jnp.asarray(actions[a]) for a in self.rovers]).reshape(self.num_pairs)
        a_tow = jnp.stack([jnp.asarray(actions[a]) for a in self.towers]).reshape(self.num_pairs)
        force = self.force_gain * decode_moves(a_rov.astype(jnp.int32))
        pos, vel = integrate(state.rover_pos, state.rover_vel, force, self.integrator, self.rover_max_speed)
        c = jax.nn.one_hot(a_tow, self.dim_c, dtype=jnp.float32)
        step = state.step + 1
        done = step >= self.max_steps
        state = state.replace(rover_pos=pos, rover_vel=vel, c=c, step=step, done=done)
        pair = self.pair_rewards(state)
        rew = jnp.concatenate([pair[state.rover_to_tower], pair])
        rewards = {a: rew[i] for i, a in enumerate(self.agents)}
        dones = {a: done for a in self.agents}
        dones["__all__"] = done
        n = self.num_agents
        infos = {"terminated": jnp.zeros((n,), bool), "truncated": jnp.full((n,), done)}
        return self.get_obs(state), state, rewards, dones, infos

    def get_avail_actions(self, state: RoverTowerState) -> dict:
        """Every action is always available: rovers ``ones([5])``, towers ``ones([dim_c])``."""
        out = {a: jnp.ones((5,), jnp.int32) for a in self.rovers}
        out.update({a: jnp.ones((self.dim_c,), jnp.int32) for a in self.towers})
        return out

    def pair_rewards(self, state: RoverTowerState) -> jax.Array:
        """``[P]`` pair rewards ``R_t = −d_t + 10·1[d_t < .1725]``, ``d_t`` the rover–goal squared distance."""
        d2 = jnp.sum(jnp.square(state.rover_pos[state.tower_to_rover] - state.landmark_pos[state.goal]), -1)
        return -d2 + self.success_bonus * (d2 < self.success_threshold)

    def rover_obs(self, state: RoverTowerState) -> jax.Array:
        """``[P, rover_obs_dim]`` rover observations."""
        p = self.num_pairs
        parts = [jax.nn.one_hot(state.rover_to_tower, p, dtype=jnp.float32), state.c[state.rover_to_tower],
                 state.rover_pos, state.rover_vel]
        if self.rover_observes_landmarks:
            parts.append(jnp.broadcast_to(state.landmark_pos.reshape(1, -1), (p, 2 * self.num_landmarks)))
        return jnp.concatenate(parts, axis=1)

    def tower_obs(self, state: RoverTowerState) -> jax.Array:
        """``[P, tower_obs_dim]`` tower observations."""
        p = self.num_pairs
        return jnp.concatenate([jax.nn.one_hot(state.tower_to_rover, p, dtype=jnp.float32),
                                state.rover_pos[state.tower_to_rover], state.landmark_pos[state.goal]], axis=1)

    @partial(jax.jit, static_argnums=(0,))
    def get_obs(self, state: RoverTowerState) -> dict:
        ro, to = self.rover_obs(state), self.tower_obs(state)
        obs = {a: ro[i] for i, a in enumerate(self.rovers)}
        obs.update({a: to[i] for i, a in enumerate(self.towers)})
        return obs

    def get_world_state(self, state: RoverTowerState) -> jax.Array:
        """``[P·(7 + dim_c) + 2L]`` compact world state for a centralised critic, pair-major (pair t = tower t):

            for each pair t: [p_{σ(t)} (2), v_{σ(t)} (2), q_{g_t} (2), c_t (dim_c), σ(t)/max(P−1, 1) (1)]
            then the L landmark positions (2L)

        i.e. the paired rover's position and velocity, the pair's goal position, the tower's current message
        and which rover is paired with it (a scalar, so the size stays O(P)). This is everything the
        dynamics, rewards and observations read; the tower positions are left out (nobody observes them and
        they never move: they are kept in the state for rendering only). 60 numbers with the defaults.
        """
        p = self.num_pairs
        rover = state.tower_to_rover
        pair = jnp.concatenate([state.rover_pos[rover], state.rover_vel[rover], state.landmark_pos[state.goal],
                                state.c, (rover.astype(jnp.float32) / max(p - 1, 1))[:, None]], axis=1)
        return jnp.concatenate([pair.reshape(-1), state.landmark_pos.reshape(-1)]).astype(jnp.float32)


def make_rover_tower(**kw) -> RoverTower:
    """Build :class:`RoverTower`; keyword arguments as in its constructor (unknown ones raise ``ValueError``)."""
    import inspect
    allowed = [p for p in inspect.signature(RoverTower.__init__).parameters if p != "self"]
    bad = [k for k in kw if k not in allowed]
    if bad:
        raise ValueError(f"unknown Rover-Tower option(s) {', '.join(bad)}; allowed: {', '.join(allowed)}")
    return RoverTower(**kw)

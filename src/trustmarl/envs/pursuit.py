"""SISL *Pursuit* (PettingZoo ``pursuit_v5``) re-implemented in pure JAX.

What the environment is
-----------------------
A cooperative grid-world pursuit-evasion game. ``n_pursuers`` learning
pursuers and ``n_evaders`` randomly moving evaders live on an
``x_size`` by ``y_size`` grid with a rectangular obstacle in the middle
(cells ``(x, y)`` with ``0.3 < x / x_size < 0.7`` and
``0.2 < y / y_size < 0.8``; for 16x16 that is ``x in 5..11, y in 4..12``).
Several agents may share a cell. The pursuers must surround evaders to remove
them. Every call of :meth:`Pursuit.step_env` is one *cycle* of the reference
parallel environment:

1. every pursuer takes its action (0: x-1, 1: x+1, 2: y+1, 3: y-1, 4: stay;
   moves into walls or off the map leave the agent where it was);
2. evaders are caught, judged from the pursuers' *new* positions and the
   evaders' *old* positions (see "Catch rule");
3. every remaining evader takes a uniformly random action from the same set
   (or stays, with ``freeze_evaders=True``);
4. observations are taken from the resulting grid.

The episode terminates when every evader is caught and is truncated after
``max_cycles`` cycles (truncation wins if both happen on the same cycle, as in
the reference).

Shapes
------
* agents: ``"pursuer_0" ... f"pursuer_{n_pursuers - 1}"``;
* action: ``Discrete(5)``, an int scalar per agent;
* observation: ``float32`` ``(obs_range, obs_range, 3)``, or
  ``(obs_range * obs_range * 3,)`` with ``flatten_obs=True`` (C-order reshape).
  The window is centred on the pursuer; axis 0 runs along y, axis 1 along x
  (PettingZoo's ``swapaxes(obs, 2, 0)`` of its ``(3, x, y)`` crop).
  Channel 0 is 1 on obstacle cells and on cells outside the map, 0 elsewhere;
  channel 1 is the number of pursuers on the cell (the observer included);
  channel 2 is the number of evaders still in play on the cell. No
  normalisation, exactly as the reference;
* :meth:`Pursuit.get_global_state`: ``(y_size, x_size, 3)`` with the same
  channels over the whole map (no out-of-map walls), like PettingZoo's
  ``state()``;
* :meth:`Pursuit.get_world_state`: the compact world state trustmarl's
  centralised critics read (``global_state="env"`` and the agent-specific
  state): ``[pursuer (x, y), evader (x, y), evader alive]``, positions scaled
  to ``[0, 1]``, ``2 * n_pursuers + 3 * n_evaders`` numbers;
* rewards: ``float32`` scalar per agent; dones: bool per agent plus
  ``"__all__"``; infos: each entry has shape ``(n_pursuers,)`` (the same value
  per agent) so it reshapes like jaxmarl's ``LogWrapper`` outputs.

Catch rule
----------
With ``surround=True`` (default) an evader on ``(x, y)`` is caught when the
number of its four neighbours ``(x-1, y), (x+1, y), (x, y+1), (x, y-1)`` that
hold at least one pursuer equals ``need(x, y)``: 4, minus one if ``x`` is on
the left or right edge, minus one if ``y`` is on the top or bottom edge, minus
one per obstacle neighbour (computed with the reference's own rule, cell by
cell, at construction). Evaders on
the same cell are caught together. ``n_catch`` is *unused* in this mode, as in
the reference. With ``surround=False`` an evader is caught when at least
``n_catch`` pursuers stand on its own cell.

A pursuer *takes part* in a catch when it stands on one of the four neighbour
cells of a caught evader (``surround=True``) or on its cell
(``surround=False``).

Reward formula
--------------
Let ``n = n_pursuers``, ``k`` the pursuer index, ``c(p)`` the number of evaders
on the four neighbours of position ``p``, with each neighbour coordinate
*clipped* into the map (so a pursuer on an edge also counts evaders on its own
cell, twice in a corner -- a reference quirk kept on purpose), counted before
evaders move. Then the per-cycle reward of pursuer ``k`` is::

    local_k = tag_reward * (k * c(old_k) + (n - k) * c(new_k)) / n
              + catch_reward * [k took part in >= 1 catch this cycle]
              + urgency_reward
    reward_k = local_k                  if not shared_reward
    reward_k = mean_j(local_j)          if shared_reward (the default)

The ``tag`` term is what PettingZoo's parallel wrapper returns: it steps the
AEC environment one pursuer at a time and sums every pursuer's reward after
each of those ``n`` sub-steps; after sub-step ``i`` the reference rewards each
pursuer ``tag_reward * c(position) / n`` with pursuers ``0..i`` already moved,
so pursuer ``k`` is counted ``k`` times at its old position and ``n - k``
times at its new one. Catch and urgency rewards are given once, on the last
sub-step. A pursuer taking part in two catches in one cycle still gets
``catch_reward`` once (the reference uses a boolean mask).

Differences from the reference (PettingZoo 1.27.0, ``sisl/pursuit``)
--------------------------------------------------------------------
* Random numbers come from ``jax.random``, so trajectories match the
  reference in distribution, not sample by sample. Given the same positions
  and the same evader moves (:meth:`Pursuit.step_with_evader_actions`) every
  observation, reward and done flag is identical (rewards to float32
  rounding: the reference computes in float64 and sums ``n`` sub-steps).
* The reference is matched through its parallel API (``parallel_env``, what
  multi-agent trainers use). Its sequential AEC sub-steps are reproduced in
  closed form (see "Reward formula"); nothing else of them is visible through
  that API. (The AEC API's per-step ``last()`` rewards are a different,
  per-sub-step accounting and are not reproduced.)
* Spawning: like the reference, pursuers are placed one after the other,
  each by rejection sampling uniformly random grid cells until one is open and
  neither taken by nor 4-adjacent to an earlier pursuer; then evaders the same
  way among themselves (evaders ignore pursuers). The candidate cells come
  from a counter-based integer hash seeded by ``jax.random`` (cheap enough to
  run inside every auto-resetting step). Where no allowed cell is left the
  reference loops forever; here the agent takes a uniformly random open cell.
* Out-of-range actions are clipped into ``0..4`` (the reference asserts).
* ``obs_range`` must be odd (the reference's check is commented out, and an
  even range leaves a never-filled row and column in its observations).
* Not supported: ``constraint_window`` (fixed at 1.0, the reference default),
  custom evader/pursuer controllers, rendering.
* There is a single ``done`` per agent (``terminated or truncated``);
  ``infos["terminated"]`` and ``infos["truncated"]`` tell them apart. Agents
  never leave the dict: :meth:`Pursuit.step` auto-resets instead (same
  results as jaxmarl's ``MultiAgentEnv.step``, but the spawn is skipped on
  steps where no env of a vmapped batch resets).
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jaxmarl.environments.multi_agent_env import MultiAgentEnv, State
from jaxmarl.environments.spaces import Box, Discrete

ENV_NAME = "pursuit"

# Action ids follow the reference's DiscreteAgent.motion_range.
_MOTIONS = np.array([[-1, 0], [1, 0], [0, 1], [0, -1], [0, 0]], dtype=np.int32)
_STAY = 4
# Neighbour offsets in the reference's ``surround_mask`` order.
_NEIGHBOURS = np.array([[-1, 0], [1, 0], [0, 1], [0, -1]], dtype=np.int32)
# Spawn candidates per round. On 16x16 with 30 evaders the last evader
# accepts a candidate with p ~ 1/3, so a round fails ~2e-3 of the time; more
# draws per round cost more than the rare extra round (measured).
_SPAWN_DRAWS = 16
_GOLDEN = 0x9E3779B9
_ODD = 0x85EBCA77


def _mix32(x: jax.Array) -> jax.Array:
    """murmur3's 32-bit finaliser: a cheap bijective avalanche hash."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x85EBCA6B)
    x = x ^ (x >> 13)
    x = x * jnp.uint32(0xC2B2AE35)
    return x ^ (x >> 16)


@struct.dataclass
class PursuitState(State):
    """Environment state; ``step`` counts completed cycles.

    Attributes:
        pursuer_pos: ``(n_pursuers, 2)`` int32 ``(x, y)`` positions.
        evader_pos: ``(n_evaders, 2)`` int32 positions; meaningless for caught
            evaders.
        evader_alive: ``(n_evaders,)`` bool, False once caught.
    """

    pursuer_pos: jax.Array
    evader_pos: jax.Array
    evader_alive: jax.Array


def obstacle_map(x_size: int, y_size: int) -> np.ndarray:
    """Boolean ``(x_size, y_size)`` map, True on the central rectangle.

    Same float comparisons as the reference's ``rectangle_map`` (buffers 0.3
    in x and 0.2 in y), so odd sizes round the same way.
    """
    fx = np.arange(x_size, dtype=np.float64) / x_size
    fy = np.arange(y_size, dtype=np.float64) / y_size
    in_x = (fx > 0.3) & (fx < 1.0 - 0.3)
    in_y = (fy > 0.2) & (fy < 1.0 - 0.2)
    return in_x[:, None] & in_y[None, :]


def surround_need(blocked: np.ndarray) -> np.ndarray:
    """``(x_size, y_size)`` int table of pursuer-held neighbours a catch needs.

    Mirrors the reference's ``need_to_surround`` line by line, quirks
    included (its obstacle check skips neighbours with a zero coordinate,
    which no rectangle map has), so the tables agree for every map size.
    """
    xs, ys = blocked.shape
    need = np.full((xs, ys), 4, dtype=np.int32)
    for x in range(xs):
        for y in range(ys):
            if x == 0 or x == xs - 1:
                need[x, y] -= 1
            if y == 0 or y == ys - 1:
                need[x, y] -= 1
            for dx, dy in _NEIGHBOURS:
                xn, yn = x + dx, y + dy
                if not (0 < xn < xs) or not (0 < yn < ys):
                    continue
                if blocked[xn, yn]:
                    need[x, y] -= 1
    return need


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, np.integer)
    ):
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _check_float(name: str, value: Any) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        raise ValueError(f"{name} must be a finite real number, got {value!r}")
    if not math.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite real number, got {value!r}")
    return float(value)


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


class Pursuit(MultiAgentEnv):
    """PettingZoo SISL ``pursuit_v5`` as a jittable, vmappable jaxmarl env.

    See the module docstring for dynamics, shapes, the reward formula and the
    differences from the reference.

    Args:
        n_pursuers: number of learning pursuers (>= 1).
        n_evaders: number of random evaders (>= 1).
        max_cycles: cycles before truncation (>= 1).
        x_size, y_size: grid size (>= 2 each).
        obs_range: side of the square observation window (odd, >= 1).
        n_catch: pursuers needed on an evader's cell when ``surround=False``
            (>= 1); unused when ``surround=True``, like the reference.
        surround: catch by surrounding (True) or by standing on (False).
        freeze_evaders: evaders never move.
        shared_reward: every pursuer gets the mean of the per-pursuer rewards.
        tag_reward: per evader next to a pursuer, scaled as documented.
        catch_reward: to each pursuer taking part in a catch.
        urgency_reward: added to every pursuer every cycle.
        flatten_obs: return observations as flat vectors (a trustmarl option;
            the reference has none).
    """

    def __init__(
        self,
        n_pursuers: int = 8,
        n_evaders: int = 30,
        max_cycles: int = 500,
        x_size: int = 16,
        y_size: int = 16,
        obs_range: int = 7,
        n_catch: int = 2,
        surround: bool = True,
        freeze_evaders: bool = False,
        shared_reward: bool = True,
        tag_reward: float = 0.01,
        catch_reward: float = 5.0,
        urgency_reward: float = -0.1,
        flatten_obs: bool = False,
    ) -> None:
        self.n_pursuers = _check_int("n_pursuers", n_pursuers, 1)
        self.n_evaders = _check_int("n_evaders", n_evaders, 1)
        self.max_cycles = _check_int("max_cycles", max_cycles, 1)
        # The name trustmarl's JaxMARLAdapter reads the episode limit from.
        self.max_steps = self.max_cycles
        self.x_size = _check_int("x_size", x_size, 2)
        self.y_size = _check_int("y_size", y_size, 2)
        self.obs_range = _check_int("obs_range", obs_range, 1)
        if self.obs_range % 2 == 0:
            raise ValueError(f"obs_range must be an odd int >= 1, got {obs_range!r}")
        self.n_catch = _check_int("n_catch", n_catch, 1)
        self.surround = _check_bool("surround", surround)
        self.freeze_evaders = _check_bool("freeze_evaders", freeze_evaders)
        self.shared_reward = _check_bool("shared_reward", shared_reward)
        self.tag_reward = _check_float("tag_reward", tag_reward)
        self.catch_reward = _check_float("catch_reward", catch_reward)
        self.urgency_reward = _check_float("urgency_reward", urgency_reward)
        self.flatten_obs = _check_bool("flatten_obs", flatten_obs)

        super().__init__(num_agents=self.n_pursuers)
        self.agents = [f"pursuer_{i}" for i in range(self.n_pursuers)]
        self.offset = (self.obs_range - 1) // 2

        xs, ys, off = self.x_size, self.y_size, self.offset
        blocked = obstacle_map(xs, ys)
        self.blocked = blocked
        self.need = surround_need(blocked)
        self.n_open = int((~blocked).sum())

        # Static tables as numpy so they are baked into every trace as
        # constants rather than closed-over device arrays.
        self._open_flat = ~blocked.reshape(-1)
        # Cell + its 4 neighbours, for the spawn spacing rule; off-map
        # neighbours point at a dummy slot appended after the last cell.
        cells = np.stack(np.meshgrid(np.arange(xs), np.arange(ys), indexing="ij"), -1)
        nb = cells[:, :, None, :] + np.concatenate([[[0, 0]], _NEIGHBOURS])[None, None]
        inside = (
            (nb[..., 0] >= 0) & (nb[..., 0] < xs) & (nb[..., 1] >= 0) & (nb[..., 1] < ys)
        )
        self._spacing_nbrs = np.where(
            inside, nb[..., 0] * ys + nb[..., 1], xs * ys
        ).reshape(xs * ys, 5).astype(np.int32)
        # Wall channel of the padded, y-major grid the observations are cut
        # from: out-of-map cells read as walls, like the reference's fill(1).
        wall = np.ones((ys + 2 * off, xs + 2 * off), dtype=np.float32)
        wall[off : off + ys, off : off + xs] = blocked.T.astype(np.float32)
        self._wall_pad = wall

        high = float(max(self.n_pursuers, self.n_evaders))
        obs_shape = (self.obs_range, self.obs_range, 3)
        if self.flatten_obs:
            obs_shape = (int(np.prod(obs_shape)),)
        self.observation_spaces = {
            a: Box(0.0, high, obs_shape, jnp.float32) for a in self.agents
        }
        self.action_spaces = {a: Discrete(5) for a in self.agents}

    # ------------------------------------------------------------------ API

    @property
    def name(self) -> str:
        return ENV_NAME

    @property
    def agent_classes(self) -> dict:
        return {"pursuer": list(self.agents)}

    @partial(jax.jit, static_argnums=(0,))
    def reset(self, key: jax.Array) -> tuple[dict, PursuitState]:
        """Random spawn (see module docstring); returns ``(obs, state)``."""
        return self.reset_where(key, jnp.array(True))

    @partial(jax.jit, static_argnums=(0,))
    def reset_where(self, key: jax.Array, active: jax.Array) -> tuple[dict, PursuitState]:
        """``reset(key)`` where ``active``; placeholder state (all at 0, 0) elsewhere.

        For auto-reset loops (``active = done``): vmapped, the spawn loops
        only iterate while some env of the batch is active, so steps on which
        no episode ends skip the spawn entirely.
        """
        state = self._initial_state(key, active)
        return self.get_obs(state), state

    @partial(jax.jit, static_argnums=(0,))
    def step(
        self,
        key: jax.Array,
        state: PursuitState,
        actions: dict,
        reset_state: PursuitState | None = None,
    ) -> tuple[dict, PursuitState, dict, dict, dict]:
        """``step_env`` with auto-reset; same results as jaxmarl's ``step``.

        jaxmarl's version samples a full reset on every step and throws it
        away unless the episode ended; this one spawns only where the episode
        ended (see :meth:`reset_where`) and builds observations once, from
        the selected state.
        """
        key, key_reset = jax.random.split(key)
        _, stepped, rewards, dones, infos = self.step_env(key, state, actions)
        done = dones["__all__"]
        if reset_state is None:
            reset_state = self._initial_state(key_reset, done)
        new_state = jax.tree.map(
            lambda r, s: jax.lax.select(done, r, s), reset_state, stepped
        )
        return self.get_obs(new_state), new_state, rewards, dones, infos

    def _initial_state(self, key: jax.Array, active: jax.Array) -> PursuitState:
        """Freshly spawned state; positions are only computed where active."""
        key_p, key_e = jax.random.split(key)
        return PursuitState(
            done=jnp.array(False),
            step=jnp.array(0, dtype=jnp.int32),
            pursuer_pos=self._spawn(key_p, self.n_pursuers, active),
            evader_pos=self._spawn(key_e, self.n_evaders, active),
            evader_alive=jnp.ones((self.n_evaders,), dtype=bool),
        )

    def step_env(
        self, key: jax.Array, state: PursuitState, actions: dict
    ) -> tuple[dict, PursuitState, dict, dict, dict]:
        """One cycle without auto-reset; evaders draw random moves from key."""
        if self.freeze_evaders:
            evader_actions = jnp.full((self.n_evaders,), _STAY, dtype=jnp.int32)
        else:
            evader_actions = jax.random.randint(key, (self.n_evaders,), 0, 5)
        return self.step_with_evader_actions(state, actions, evader_actions)

    def step_with_evader_actions(
        self, state: PursuitState, actions: dict, evader_actions: jax.Array
    ) -> tuple[dict, PursuitState, dict, dict, dict]:
        """One cycle with given evader actions ``(n_evaders,)``.

        Deterministic, for replaying the reference's evader moves in tests.
        Actions of caught evaders are ignored; ``freeze_evaders`` is not
        applied here.
        """
        n = self.n_pursuers
        acts = jnp.stack([jnp.asarray(actions[a]) for a in self.agents])
        acts = jnp.clip(acts.astype(jnp.int32).reshape(n), 0, 4)

        old_p = state.pursuer_pos
        new_p = self._move(old_p, acts)
        alive = state.evader_alive
        ev_grid = self._count_grid(state.evader_pos, alive.astype(jnp.float32))

        # Closed form of the parallel wrapper's per-sub-step tag rewards.
        k = jnp.arange(n, dtype=jnp.float32)
        tag = self.tag_reward * (
            k * self._tag_count(ev_grid, old_p) + (n - k) * self._tag_count(ev_grid, new_p)
        ) / n

        caught, took_part = self._catch(new_p, state.evader_pos, alive)
        local = tag + self.catch_reward * took_part + self.urgency_reward
        if self.shared_reward:
            rew = jnp.broadcast_to(jnp.mean(local), (n,))
        else:
            rew = local

        alive_next = alive & ~caught
        moved = self._move(state.evader_pos, jnp.clip(evader_actions.astype(jnp.int32), 0, 4))
        # Caught evaders are gone before the evaders move.
        ev_pos = jnp.where(alive_next[:, None], moved, state.evader_pos)

        step = state.step + 1
        truncated = step >= self.max_cycles
        # The reference only re-evaluates termination when not truncating.
        terminated = ~jnp.any(alive_next) & ~truncated
        done = terminated | truncated
        new_state = PursuitState(
            done=done,
            step=step,
            pursuer_pos=new_p,
            evader_pos=ev_pos,
            evader_alive=alive_next,
        )

        obs = self.get_obs(new_state)
        rewards = {a: rew[i] for i, a in enumerate(self.agents)}
        dones = {a: done for a in self.agents}
        dones["__all__"] = done
        per_agent = lambda v: jnp.broadcast_to(v, (n,))  # noqa: E731
        infos = {
            "terminated": per_agent(terminated),
            "truncated": per_agent(truncated),
            "evaders_caught": per_agent(jnp.sum(caught).astype(jnp.int32)),
            "evaders_remaining": per_agent(jnp.sum(alive_next).astype(jnp.int32)),
        }
        return obs, new_state, rewards, dones, infos

    def get_obs(self, state: PursuitState) -> dict:
        """Per-pursuer ``(obs_range, obs_range, 3)`` crops (see module doc)."""
        grid = self._padded_grid(state)
        r = self.obs_range

        # Padding by ``offset`` makes the window's corner the agent's own
        # (x, y) in padded coordinates; axis 0 of the grid is y.
        def crop(pos):
            return jax.lax.dynamic_slice(grid, (pos[1], pos[0], 0), (r, r, 3))

        obs = jax.vmap(crop)(state.pursuer_pos)
        if self.flatten_obs:
            obs = obs.reshape(self.n_pursuers, -1)
        return {a: obs[i] for i, a in enumerate(self.agents)}

    def get_global_state(self, state: PursuitState) -> jax.Array:
        """``(y_size, x_size, 3)`` whole-map view, as PettingZoo's ``state()``."""
        off = self.offset
        grid = self._padded_grid(state)
        return grid[off : off + self.y_size, off : off + self.x_size]

    def get_world_state(self, state: PursuitState) -> jax.Array:
        """``(2 * n_pursuers + 3 * n_evaders,)`` compact world state for a
        centralised critic: ``[pursuer (x, y) ..., evader (x, y) ..., evader
        alive ...]``, positions scaled to ``[0, 1]`` by ``(x_size - 1,
        y_size - 1)``, a caught evader's position zeroed (it is meaningless).

        This is everything the dynamics and rewards read besides the fixed
        obstacle map, in O(n_pursuers + n_evaders) numbers (106 for the default
        game) instead of :meth:`get_global_state`'s ``y_size * x_size * 3``
        image (768).
        """
        scale = jnp.array([max(self.x_size - 1, 1), max(self.y_size - 1, 1)], jnp.float32)
        alive = state.evader_alive.astype(jnp.float32)
        pursuers = state.pursuer_pos.astype(jnp.float32) / scale
        evaders = state.evader_pos.astype(jnp.float32) / scale * alive[:, None]
        return jnp.concatenate([pursuers.reshape(-1), evaders.reshape(-1), alive])

    @partial(jax.jit, static_argnums=(0,))
    def get_avail_actions(self, state: PursuitState) -> dict:
        """Every action is always legal (bumping a wall means staying)."""
        return {a: jnp.ones((5,), dtype=bool) for a in self.agents}

    # -------------------------------------------------------------- helpers

    def _move(self, pos: jax.Array, acts: jax.Array) -> jax.Array:
        target = pos + jnp.asarray(_MOTIONS)[acts]
        tx, ty = target[:, 0], target[:, 1]
        inside = (tx >= 0) & (tx < self.x_size) & (ty >= 0) & (ty < self.y_size)
        cell = jnp.clip(tx, 0, self.x_size - 1) * self.y_size + jnp.clip(
            ty, 0, self.y_size - 1
        )
        ok = inside & jnp.asarray(self._open_flat)[cell]
        return jnp.where(ok[:, None], target, pos)

    def _count_grid(self, pos: jax.Array, weight: jax.Array) -> jax.Array:
        """``(x_size, y_size)`` float32 number of agents per cell."""
        cell = pos[:, 0] * self.y_size + pos[:, 1]
        flat = jnp.zeros((self.x_size * self.y_size,), jnp.float32).at[cell].add(weight)
        return flat.reshape(self.x_size, self.y_size)

    def _tag_count(self, ev_grid: jax.Array, pos: jax.Array) -> jax.Array:
        nb = pos[:, None, :] + jnp.asarray(_NEIGHBOURS)[None]
        nx = jnp.clip(nb[..., 0], 0, self.x_size - 1)
        ny = jnp.clip(nb[..., 1], 0, self.y_size - 1)
        return ev_grid[nx, ny].sum(axis=1)

    def _catch(
        self, p_pos: jax.Array, e_pos: jax.Array, alive: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        """Caught evaders ``(n_evaders,)`` and catch takers ``(n_pursuers,)``."""
        d = jnp.abs(p_pos[:, None, :] - e_pos[None, :, :]).sum(-1)  # (P, E)
        if self.surround:
            p_grid = self._count_grid(p_pos, jnp.ones((self.n_pursuers,), jnp.float32))
            held = jnp.pad(p_grid > 0, 1)
            ex, ey = e_pos[:, 0] + 1, e_pos[:, 1] + 1
            n_held = (
                held[ex - 1, ey].astype(jnp.int32)
                + held[ex + 1, ey]
                + held[ex, ey + 1]
                + held[ex, ey - 1]
            )
            caught = alive & (n_held == jnp.asarray(self.need)[e_pos[:, 0], e_pos[:, 1]])
            near = d == 1
        else:
            near = d == 0
            on_cell = near.sum(axis=0)
            caught = alive & (on_cell >= self.n_catch)
        took_part = jnp.any(near & caught[None, :], axis=1)
        return caught, took_part.astype(jnp.float32)

    def _padded_grid(self, state: PursuitState) -> jax.Array:
        """``(y + 2*off, x + 2*off, 3)`` float32 wall/pursuer/evader grid."""
        off = self.offset
        pg = self._count_grid(state.pursuer_pos, jnp.ones((self.n_pursuers,), jnp.float32))
        eg = self._count_grid(state.evader_pos, state.evader_alive.astype(jnp.float32))
        counts = jnp.stack([pg.T, eg.T], axis=-1)
        counts = jnp.pad(counts, ((off, off), (off, off), (0, 0)))
        return jnp.concatenate([jnp.asarray(self._wall_pad)[..., None], counts], axis=-1)

    def _spawn(self, key: jax.Array, n: int, active: jax.Array) -> jax.Array:
        """Sequential spaced placement of ``n`` agents, ``(n, 2)`` int32.

        Returns zeros where ``active`` is False: the agent loop is a
        ``while_loop`` so that, vmapped, it costs nothing on steps where no
        env of the batch resets.

        Rejection sampling, like the reference: each agent draws uniformly
        random cells of the whole grid until one is open and not taken by or
        4-adjacent to an earlier agent of its group, so it lands uniformly on
        the allowed cells. Drawing ``_SPAWN_DRAWS`` candidates at once makes a
        second round (a ``while_loop``, paid by the whole vmapped batch) rare.

        Auto-reset runs this on every step of every env, so it has to be
        cheap: candidate bits come from a counter-based integer hash seeded
        by ``jax.random`` (about ten integer ops per 32 bits, against
        ~100 for threefry), and a running count of allowed cells replaces a
        dense scan of the grid. When no allowed cell is left (the reference
        then loops forever) the agent takes a uniformly random open cell.
        """
        n_cells = self.x_size * self.y_size
        width = max(1, (n_cells - 1).bit_length())
        per_word = 32 // width
        n_words = -(-_SPAWN_DRAWS // per_word)
        n_draws = n_words * per_word
        # Candidates index a table of every ``width``-bit value; slots past
        # the grid stay banned, so off-grid draws are rejected for free.
        n_slots = max(1 << width, n_cells + 1)
        shifts = jnp.arange(per_word, dtype=jnp.uint32) * width
        word_ids = jnp.arange(n_words, dtype=jnp.uint32) * jnp.uint32(_GOLDEN)
        draw_ids = jnp.arange(n_draws, dtype=jnp.int32)
        open_ = jnp.asarray(np.pad(self._open_flat, (0, n_slots - n_cells)))
        nbrs = jnp.asarray(np.where(self._spacing_nbrs == n_cells, n_slots - 1, self._spacing_nbrs))
        seed = jax.random.bits(key, (), dtype=jnp.uint32)

        def attempt(agent, rnd, allowed):
            stream = _mix32(seed + agent * jnp.uint32(_GOLDEN) + rnd * jnp.uint32(_ODD))
            words = _mix32(stream + word_ids)
            cand = ((words[:, None] >> shifts[None, :]) & ((1 << width) - 1)).reshape(-1)
            cand = cand.astype(jnp.int32)
            first = jnp.min(jnp.where(allowed[cand], draw_ids, n_draws))
            return first < n_draws, cand[jnp.minimum(first, n_draws - 1)]

        def place(carry):
            agent, banned, n_allowed, cells = carry
            allowed = jnp.where(n_allowed == 0, open_, ~banned)
            agent_u = agent.astype(jnp.uint32)
            found, cell = attempt(agent_u, jnp.uint32(0), allowed)

            def retry(c):
                rnd, _, _ = c
                return (rnd + 1, *attempt(agent_u, rnd + 1, allowed))

            _, _, cell = jax.lax.while_loop(
                lambda c: ~c[1], retry, (jnp.uint32(0), found, cell)
            )
            hit = nbrs[cell]
            n_allowed = n_allowed - jnp.sum(~banned[hit])
            banned = banned.at[hit].set(True)
            return agent + 1, banned, n_allowed, cells.at[agent].set(cell)

        carry0 = (jnp.int32(0), ~open_, jnp.int32(self.n_open), jnp.zeros((n,), jnp.int32))
        _, _, _, cells = jax.lax.while_loop(
            lambda c: active & (c[0] < n), place, carry0
        )
        ys = self.y_size
        return jnp.stack([cells // ys, cells % ys], axis=-1).astype(jnp.int32)


def make_pursuit(**kwargs: Any) -> Pursuit:
    """Registry factory: ``make_pursuit(**kwargs)`` == ``Pursuit(**kwargs)``."""
    return Pursuit(**kwargs)


__all__ = [
    "ENV_NAME",
    "Pursuit",
    "PursuitState",
    "make_pursuit",
    "obstacle_map",
    "surround_need",
]

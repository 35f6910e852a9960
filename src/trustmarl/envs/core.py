"""One contract for every multi-agent environment trustmarl trains on.

Array layout (used everywhere in trustmarl, checked at entry of the trainer's pure functions)::

    [time T, env E, agent A, feature ...]

A single environment (no T, E axes) returns per-agent arrays stacked on a leading agent axis ``A``:

=============  ================  ==========================================================================
field          shape             meaning
=============  ================  ==========================================================================
obs            [A, O] float32    local observation, zero-padded to the largest agent's size O
state          [A, S] float32    per-agent global state for a centralised critic (MAPPO's agent-specific
                                 state), zero except for the agent id where the agent is dead
avail          [A, U] bool       available actions (discrete); padded actions are never available
reward         [A]    float32    reward of the transition that produced this timestep
terminated     []     bool       the episode ended by the task (death, win, all caught): no bootstrap
truncated      []     bool       the episode ended by a time limit: bootstrap from ``final_*``
active         [A]    bool       agent alive at ``obs`` (death masking; padded agents are never active)
final_obs      [A, O]            observation *before* auto-reset (equals ``obs`` when the episode goes on)
final_state    [A, S]            global state before auto-reset
episode        EpisodeStats      running and finished-episode statistics
final_active   [A]    bool       agent alive in the state the step reached, *before* auto-reset (the
                                 agent's own done is its negation); ``None`` unless the adapter's
                                 ``keep_final_active`` is set (the trainer's ``done_scope=agent``)
=============  ================  ==========================================================================

Terminations and truncations are kept apart because value targets must bootstrap on a time limit
(the state is not terminal, only the episode is cut) and must not on a real termination.

:class:`JaxMARLAdapter` turns any JaxMARL ``MultiAgentEnv`` (dict-of-agents API) into this contract,
with auto-reset done by the adapter itself so that the pre-reset observation survives for bootstrapping.
Environment-specific knowledge (SMAX death masks and win flags, MPE world state) enters through
:class:`EnvHooks`.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

GLOBAL_STATE_KINDS = ("agent_specific", "env", "concat_obs")


class EnvSpec(NamedTuple):
    """Static description of an adapted environment (plain Python values, hashable)."""

    name: str
    agents: tuple  # agent names, in the order of the agent axis
    obs_dim: int  # padded observation size O
    state_dim: int  # global-state size S
    num_actions: int  # discrete: padded action count U; continuous: action dimension
    discrete: bool
    episode_limit: int
    has_win: bool
    obs_dims: tuple  # true per-agent observation sizes
    action_dims: tuple  # true per-agent action counts (discrete) or dimensions (continuous)
    action_low: float = -1.0
    action_high: float = 1.0

    @property
    def num_agents(self) -> int:
        return len(self.agents)


class EpisodeStats(NamedTuple):
    """Per-env episode bookkeeping. ``returned_*`` hold the last *finished* episode's values."""

    episode_return: jax.Array  # [] running sum of the team reward (mean over agents)
    episode_length: jax.Array  # [] int32
    returned_return: jax.Array  # [] float32
    returned_length: jax.Array  # [] int32
    returned_won: jax.Array  # [] float32 (0/1)
    done: jax.Array  # [] bool, an episode finished at this step


class Timestep(NamedTuple):
    obs: jax.Array
    state: jax.Array
    avail: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    active: jax.Array
    final_obs: jax.Array
    final_state: jax.Array
    episode: EpisodeStats
    final_active: Optional[jax.Array] = None


class AdapterState(NamedTuple):
    env_state: Any
    episode: EpisodeStats


@dataclasses.dataclass(frozen=True)
class EnvHooks:
    """Environment-specific facts the generic adapter cannot read off the JaxMARL API.

    Every hook takes the *inner* env and its state. ``alive`` gives the [A] alive mask (death masking),
    ``won`` whether the finished episode is a win, ``world_state`` a [W] vector of the whole world (the
    centralised critic's input besides the agent's own view), ``task_terminal`` whether the episode ended
    for a reason other than the time limit.

    ``agent_state`` (optional; also takes the stacked ``[A, O]`` observations) gives the ``[A, F]`` body of
    the agent-specific state, i.e. everything but the one-hot id: the world as agent ``i`` sees it, with no
    feature twice (MAPPO's feature-pruned agent-specific state). Without it the body is ``[o_i, world]``,
    which repeats in ``o_i`` much of what the world state holds; an env whose observation is O(N) wide uses
    the hook to keep its critic input as narrow as its actor input.
    """

    alive: Optional[Callable[[Any, Any], jax.Array]] = None
    won: Optional[Callable[[Any, Any], jax.Array]] = None
    world_state: Optional[Callable[[Any, Any, jax.Array], jax.Array]] = None
    task_terminal: Optional[Callable[[Any, Any], jax.Array]] = None
    has_win: bool = False
    agent_state: Optional[Callable[[Any, Any, jax.Array], jax.Array]] = None


def _space_size(space) -> tuple[int, bool]:
    """(size, discrete) of a jaxmarl or gymnasium-like space."""
    if hasattr(space, "n"):
        return int(space.n), True
    shape = tuple(space.shape)
    return int(np.prod(shape)), False


def _pad_last(x: jax.Array, size: int) -> jax.Array:
    x = jnp.reshape(x, (-1,)).astype(jnp.float32)
    return jnp.pad(x, (0, size - x.shape[0]))


class JaxMARLAdapter:
    """Wrap a JaxMARL ``MultiAgentEnv`` into trustmarl's stacked-array contract.

    Args:
      env: the JaxMARL environment (its ``step_env``/``reset`` are used; auto-reset is done here).
      name: registry name, for messages and the spec.
      hooks: environment-specific facts (:class:`EnvHooks`).
      global_state: what the centralised critic sees per agent:
        ``"agent_specific"`` (default; MAPPO's agent-specific state) ``[own obs, world state, agent one-hot]``;
        ``"env"`` ``[world state, agent one-hot]`` (as JaxMARL's MAPPO baseline);
        ``"concat_obs"`` ``[all agents' obs, own first, agent one-hot]``.
        Dead agents get zeros except the one-hot (MAPPO's death masking).
      death_masking: False keeps a dead agent's state body as it is (JaxMARL's ``mappo_rnn_smax`` gives a dead
        agent's critic the full world state; issue 9's parity runs); True (default) zeroes it.
      episode_limit: time limit; read from ``env.max_steps`` when not given. When given, the adapter also
        ends episodes there itself (a truncation), so an env without a time limit of its own (no
        ``max_steps``, never ``dones["__all__"]`` by time) can be trained; with ``max_steps`` as well, the
        smaller of the two is the limit. An env with neither is refused (ValueError).
    """

    def __init__(self, env, name: str, hooks: EnvHooks = EnvHooks(), global_state: str = "agent_specific",
                 episode_limit: Optional[int] = None, death_masking: bool = True):
        if global_state not in GLOBAL_STATE_KINDS:
            raise ValueError(f"global_state={global_state!r} is not one of {GLOBAL_STATE_KINDS}")
        if not isinstance(death_masking, bool):
            raise ValueError(f"death_masking={death_masking!r} for env {name!r}; allowed: true or false")
        self.death_masking = death_masking
        self.env = env
        self.hooks = hooks
        self.global_state_kind = global_state
        agents = tuple(env.agents)
        sizes = [_space_size(env.observation_space(a))[0] for a in agents]
        acts = [_space_size(env.action_space(a)) for a in agents]
        discrete = {d for _, d in acts}
        if len(discrete) != 1:
            raise ValueError(f"env {name!r} mixes discrete and continuous action spaces; that is not supported")
        self._discrete = discrete.pop()
        own_limit = getattr(env, "max_steps", None)
        if episode_limit is not None:
            if not isinstance(episode_limit, (int, np.integer)) or isinstance(episode_limit, bool) \
                    or episode_limit < 1:
                raise ValueError(f"episode_limit={episode_limit!r} for env {name!r} must be a positive integer")
            # The adapter cuts episodes at an explicit limit (truncation) only where the env may run longer;
            # an env whose own max_steps is the limit steps exactly as without this option.
            self._cut_at_limit = own_limit is None or int(episode_limit) < int(own_limit)
            limit = int(episode_limit) if own_limit is None else min(int(episode_limit), int(own_limit))
        else:
            self._cut_at_limit = False
            limit = own_limit
        if limit is None:
            raise ValueError(f"env {name!r} has no time limit (no max_steps attribute); pass episode_limit=<steps> "
                             f"(e.g. as_jax_env(env, episode_limit=100), or the env option episode_limit) or give "
                             f"the env a max_steps")
        low, high = -1.0, 1.0
        if not self._discrete:
            space = env.action_space(agents[0])
            low, high = float(np.min(space.low)), float(np.max(space.high))
        obs_dim = max(sizes)
        n = len(agents)
        probe_world = self._world_dim(obs_dim, n)
        if global_state == "agent_specific" and hooks.agent_state is not None:
            state_dim = self._agent_state_dim(obs_dim, n) + n
        elif global_state == "agent_specific":
            state_dim = obs_dim + probe_world + n
        elif global_state == "env":
            state_dim = probe_world + n
        else:
            state_dim = obs_dim * n + n
        self.spec = EnvSpec(
            name=name, agents=agents, obs_dim=obs_dim, state_dim=state_dim,
            num_actions=max(a for a, _ in acts), discrete=self._discrete, episode_limit=int(limit),
            has_win=hooks.has_win, obs_dims=tuple(sizes), action_dims=tuple(a for a, _ in acts),
            action_low=low, action_high=high)
        # Padded action slots are never available; true slots are, unless the env masks them.
        self._action_pad_mask = np.array(
            [[u < a for u in range(self.spec.num_actions)] for a, _ in acts], dtype=bool)
        self._has_avail = self._discrete and self._env_masks_actions()
        # A trainer whose critic reads local observations switches this off: the global state is then
        # a constant [A, 1] placeholder (not [A, 0]: orbax cannot checkpoint empty arrays).
        self.compute_state = True
        # Off by default so that the timestep's pytree (scan carries, checkpoints) is unchanged; a trainer
        # whose recurrent states reset where an agent is done (done_scope=agent) switches it on.
        self.keep_final_active = False

    def _env_masks_actions(self) -> bool:
        # MPE and others leave get_avail_actions unimplemented: every (unpadded) action is then available.
        try:
            jax.eval_shape(lambda k: self.env.get_avail_actions(self.env.reset(k)[1]), jax.random.PRNGKey(0))
        except NotImplementedError:
            return False
        return True

    # -- shapes ---------------------------------------------------------------------------------
    def _world_dim(self, obs_dim: int, n: int) -> int:
        if self.hooks.world_state is None:
            return obs_dim * n
        obs = jnp.zeros((n, obs_dim))
        probe = lambda k: self.hooks.world_state(self.env, self.env.reset(k)[1], obs)  # noqa: E731
        return int(jax.eval_shape(probe, jax.random.PRNGKey(0)).shape[0])

    def _agent_state_dim(self, obs_dim: int, n: int) -> int:
        obs = jnp.zeros((n, obs_dim))
        probe = lambda k: self.hooks.agent_state(self.env, self.env.reset(k)[1], obs)  # noqa: E731
        shape = jax.eval_shape(probe, jax.random.PRNGKey(0)).shape
        if len(shape) != 2 or shape[0] != n:
            raise ValueError(f"EnvHooks.agent_state must give [A, F] = [{n}, F]; it gives shape {tuple(shape)}")
        return int(shape[1])

    # -- pieces ---------------------------------------------------------------------------------
    def _stack_obs(self, obs: dict) -> jax.Array:
        return jnp.stack([_pad_last(obs[a], self.spec.obs_dim) for a in self.spec.agents])

    def _alive(self, env_state) -> jax.Array:
        if self.hooks.alive is None:
            return jnp.ones((self.spec.num_agents,), bool)
        return self.hooks.alive(self.env, env_state)

    def _global_state(self, env_state, obs: jax.Array, alive: jax.Array) -> jax.Array:
        n = self.spec.num_agents
        ids = jnp.eye(n, dtype=jnp.float32)
        if self.global_state_kind == "agent_specific" and self.hooks.agent_state is not None:
            body = self.hooks.agent_state(self.env, env_state, obs).astype(jnp.float32)
            if self.death_masking:
                body = jnp.where(alive[:, None], body, 0.0)
            return jnp.concatenate([body, ids], axis=-1)
        if self.hooks.world_state is None:
            world = obs.reshape(-1)
        else:
            world = self.hooks.world_state(self.env, env_state, obs).astype(jnp.float32)
        if self.global_state_kind == "agent_specific":
            body = jnp.concatenate([obs, jnp.broadcast_to(world, (n, world.shape[0]))], axis=-1)
        elif self.global_state_kind == "env":
            body = jnp.broadcast_to(world, (n, world.shape[0]))
        else:
            # Own observation first, then the others in agent order: a per-agent view of the team.
            rolled = jnp.stack([jnp.roll(obs, -i, axis=0).reshape(-1) for i in range(n)])
            body = rolled
        if self.death_masking:
            body = jnp.where(alive[:, None], body, 0.0)
        return jnp.concatenate([body, ids], axis=-1)

    def _avail(self, env_state) -> jax.Array:
        if not self._has_avail:
            return jnp.asarray(self._action_pad_mask) | (not self._discrete)
        av = self.env.get_avail_actions(env_state)
        rows = [_pad_last(av[a], self.spec.num_actions) > 0 for a in self.spec.agents]
        return jnp.stack(rows) & jnp.asarray(self._action_pad_mask)

    def _observe(self, env_state, obs_dict):
        obs = self._stack_obs(obs_dict)
        alive = self._alive(env_state)
        if self.compute_state:
            state = self._global_state(env_state, obs, alive)
        else:
            state = jnp.zeros((self.spec.num_agents, 1), jnp.float32)
        return obs, state, self._avail(env_state), alive

    # -- API ------------------------------------------------------------------------------------
    def reset(self, key: jax.Array) -> tuple[AdapterState, Timestep]:
        obs_dict, env_state = self.env.reset(key)
        obs, state, avail, alive = self._observe(env_state, obs_dict)
        zero_f, zero_i = jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32)
        episode = EpisodeStats(zero_f, zero_i, zero_f, zero_i, zero_f, jnp.zeros((), bool))
        n = self.spec.num_agents
        ts = Timestep(obs=obs, state=state, avail=avail, reward=jnp.zeros((n,), jnp.float32),
                      terminated=jnp.zeros((), bool), truncated=jnp.zeros((), bool), active=alive,
                      final_obs=obs, final_state=state, episode=episode,
                      final_active=alive if self.keep_final_active else None)
        return AdapterState(env_state, episode), ts

    def _transition(self, key_step, astate: AdapterState, actions):
        """One env step without reset: (env_state, final observation pieces, reward, flags, episode stats)."""
        act = {a: (actions[i] if self._discrete else actions[i, : self.spec.action_dims[i]])
               for i, a in enumerate(self.spec.agents)}
        obs_dict, env_state, rew, dones, _ = self.env.step_env(key_step, astate.env_state, act)
        final = self._observe(env_state, obs_dict)
        reward = jnp.stack([rew[a] for a in self.spec.agents]).astype(jnp.float32)
        done = jnp.asarray(dones["__all__"], bool)
        ep = astate.episode
        length = ep.episode_length + 1
        if self._cut_at_limit:  # an explicit episode_limit the env does not enforce itself
            done = done | (length >= self.spec.episode_limit)
        if self.hooks.task_terminal is not None:
            by_task = self.hooks.task_terminal(self.env, env_state)
        else:
            by_task = length < self.spec.episode_limit
        team_return = ep.episode_return + reward.mean()
        won = self.hooks.won(self.env, env_state).astype(jnp.float32) if self.hooks.won else jnp.zeros(())
        episode = EpisodeStats(
            episode_return=jnp.where(done, 0.0, team_return),
            episode_length=jnp.where(done, 0, length).astype(jnp.int32),
            returned_return=jnp.where(done, team_return, ep.returned_return),
            returned_length=jnp.where(done, length, ep.returned_length).astype(jnp.int32),
            returned_won=jnp.where(done, won, ep.returned_won),
            done=done)
        return env_state, final, reward, done & by_task, done & ~by_task, episode

    def _timestep(self, obs_pieces, final_pieces, reward, terminated, truncated, episode) -> Timestep:
        obs, state, avail, alive = obs_pieces
        return Timestep(obs=obs, state=state, avail=avail, reward=reward, terminated=terminated,
                        truncated=truncated, active=alive, final_obs=final_pieces[0], final_state=final_pieces[1],
                        episode=episode, final_active=final_pieces[3] if self.keep_final_active else None)

    def step(self, key: jax.Array, astate: AdapterState, actions: jax.Array) -> tuple[AdapterState, Timestep]:
        """Step one env with ``actions`` [A] (discrete, int) or [A, D] (continuous); auto-reset at episode end."""
        key_step, key_reset = jax.random.split(key)
        env_state, final, reward, term, trunc, episode = self._transition(key_step, astate, actions)
        done = episode.done
        reset_obs_dict, reset_state = self.env.reset(key_reset)
        env_state = jax.tree.map(lambda r, s: jnp.where(done, r, s), reset_state, env_state)
        pieces = jax.tree.map(lambda r, s: jnp.where(done, r, s), self._observe(reset_state, reset_obs_dict), final)
        return AdapterState(env_state, episode), self._timestep(pieces, final, reward, term, trunc, episode)

    def step_batch(self, keys: jax.Array, astate: AdapterState, actions: jax.Array) -> tuple[AdapterState, Timestep]:
        """:meth:`step` for a batch of envs (leading axis E), resetting only when some env's episode ended.

        Same result as ``jax.vmap(step)``, but the reset is computed under one ``lax.cond`` on "any env done"
        instead of for every env at every step (as JaxMARL's auto-reset does): MPE episodes end every 26
        steps, so most steps skip the reset entirely (raw MPE steps 1.7x faster). Under a further ``vmap``
        (seeds) the condition is batched and both branches run, which is the plain cost again.
        """
        split = jax.vmap(jax.random.split)(keys)
        key_step, key_reset = split[:, 0], split[:, 1]
        env_state, final, reward, term, trunc, episode = jax.vmap(self._transition)(key_step, astate, actions)
        done = episode.done

        def with_reset(_):
            reset_obs_dict, reset_state = jax.vmap(self.env.reset)(key_reset)
            sel = lambda r, s: jnp.where(done.reshape((-1,) + (1,) * (r.ndim - 1)), r, s)  # noqa: E731
            pieces = jax.vmap(self._observe)(reset_state, reset_obs_dict)
            return jax.tree.map(sel, reset_state, env_state), jax.tree.map(sel, pieces, final)

        env_state, pieces = jax.lax.cond(done.any(), with_reset, lambda _: (env_state, final), None)
        return AdapterState(env_state, episode), self._timestep(pieces, final, reward, term, trunc, episode)

    def random_actions(self, key: jax.Array, avail: jax.Array) -> jax.Array:
        """Uniform random valid actions, for ceilings and smoke tests."""
        if self._discrete:
            logits = jnp.where(avail, 0.0, -jnp.inf)
            return jax.random.categorical(key, logits, axis=-1)
        return jax.random.uniform(key, (self.spec.num_agents, self.spec.num_actions),
                                  minval=self.spec.action_low, maxval=self.spec.action_high)

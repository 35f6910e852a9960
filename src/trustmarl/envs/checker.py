"""``trustmarl check-env``: check a user's environment against trustmarl's env contract, in the spirit of
Stable-Baselines3's ``check_env`` — one clear message per problem instead of an error deep inside training.

:func:`check_env` takes a registered name, a ``package.module:factory`` path, a JaxMARL ``MultiAgentEnv``, a
:class:`~trustmarl.envs.core.JaxMARLAdapter`, or a PettingZoo ``ParallelEnv`` constructor, plays a few
episodes with random valid actions and returns a list of :class:`Problem` (empty: the env fits). Checks,
each with its id (the ``check`` of a problem):

===============  =============================================================================================
``build``        the env (or its constructor) can be built with the given options
``spaces``       every agent has an observation space with a shape and a ``Discrete`` or bounded ``Box`` action
                 space, one kind for all agents
``reset``        ``reset`` returns observations for every agent (JaxMARL: ``(obs dict, state)``; PettingZoo:
                 ``(obs dict, infos dict)``)
``obs``          each observation has the size its space declares, a floating dtype (warning otherwise) and
                 finite values, at reset and at every step
``state``        ``get_world_state(state)`` (JaxMARL, when present) is a finite vector of one fixed size
``reward``       one finite scalar reward per agent (JaxMARL: shape ``()``; PettingZoo: a number)
``dones``        JaxMARL: ``dones`` holds a scalar boolean ``"__all__"``, true once every agent is done;
                 PettingZoo: ``terminations``/``truncations`` are dicts of booleans, and agents that are done
                 leave ``env.agents``
``masks``        action masks have one 0/1 entry per action of the agent, no available action beyond the
                 agent's own actions, and at least one available action per live agent
``time_limit``   the env has a time limit (``max_steps``/``max_cycles`` or ``episode_limit``) and every
                 episode ends by it
``truncation``   PettingZoo: an episode cut by the time limit is reported as a truncation (terminations at
                 the limit are read as truncations, a warning); no agent is both terminated and truncated
``auto_reset``   after an episode, ``reset`` starts a fresh one: the same seed and actions replay the first
                 episode exactly (JaxMARL: through the adapter's auto-reset, whose first observation is
                 ``reset``'s)
``determinism``  the same key (JaxMARL) or seed (PettingZoo) and actions give the same observations, rewards
                 and flags; JaxMARL: jitted and eager steps agree (no state kept outside the state pytree)
``contract``     trustmarl's adapter accepts the env and its timesteps have the contract's shapes and dtypes
                 (``trustmarl.envs.core``), with padded actions never available and never both flags set
``pickle``       PettingZoo: the constructor can be sent to worker processes (cloudpickle)
===============  =============================================================================================
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any, Callable, Optional

import numpy as np

_WHERE = re.compile(r"^(episode \d+( \(after reset\))?, )?(reset|step \d+): ")  # where a problem showed
CHECKS = ("build", "spaces", "reset", "obs", "state", "reward", "dones", "masks", "time_limit", "truncation",
          "auto_reset", "determinism", "contract", "pickle")


@dataclasses.dataclass(frozen=True)
class Problem:
    check: str  # one of CHECKS
    message: str
    level: str = "error"  # or "warning"

    def __str__(self) -> str:
        return f"{self.level}: [{self.check}] {self.message}"


class _Report:
    def __init__(self, name: str):
        self.name = name
        self.problems: list[Problem] = []
        self._seen: set = set()

    def add(self, check: str, message: str, level: str = "error"):
        """Record a problem once: messages that differ only in where they happened (``"step 3: ..."``) are
        one problem, reported where it first showed."""
        key = (check, _WHERE.sub("", message))
        if key not in self._seen:
            self._seen.add(key)
            self.problems.append(Problem(check, " ".join(str(message).split()), level))

    def has(self, *checks: str) -> bool:
        return any(p.check in checks and p.level == "error" for p in self.problems)

    @property
    def errors(self) -> int:
        return sum(p.level == "error" for p in self.problems)


def _err(e: BaseException) -> str:
    return f"{type(e).__name__}: {' '.join(str(e).split())}"


# ---------------------------------------------------------------------------------------------------------
def check_env(env: Any, options: Optional[dict] = None, *, seed: int = 0, episodes: int = 2) -> list[Problem]:
    """Check ``env`` (name, ``package.module:factory``, JaxMARL env, adapter, or PettingZoo constructor)
    against the env contract; returns the problems found (empty when it fits). ``options`` go to the
    env's factory (and ``episode_limit``/``global_state`` to the adapter). An unknown name or path raises
    ``ValueError`` (that is a bad input, not a problem of the env)."""
    options = dict(options or {})
    label = env if isinstance(env, str) else type(env).__name__
    rep = _Report(str(label))
    try:
        kind, obj, limit = _build(env, options)
    except _BuildProblem as bp:
        rep.add("build", str(bp))
        return rep.problems
    if kind == "pz":
        _check_pz(rep, obj, limit, seed, episodes)
    elif kind == "adapter":
        _check_jax(rep, obj.env, obj.spec.episode_limit, seed, episodes, adapter=obj)
    else:
        _check_jax(rep, obj, limit, seed, episodes, adapter=None, name=str(label))
    return rep.problems


class _BuildProblem(Exception):
    pass


def _build(env, options: dict):
    """(kind, object, episode_limit): kind ``adapter`` (a JaxMARLAdapter), ``jax`` (a raw JaxMARL env) or
    ``pz`` (a zero-argument ParallelEnv constructor)."""
    from trustmarl.envs.core import JaxMARLAdapter
    from trustmarl.envs.registry import (_accepts, _import_factory, _is_jax_env, _is_parallel_env, resolve_env)
    if isinstance(env, str):
        if ":" in env:
            _import_factory(env)  # ValueError: a path that cannot be imported (a bad input)
        else:
            resolve_env(env)  # ValueError: an unknown name (a bad input)
        try:
            entry = resolve_env(env)
            if entry.host:
                return "pz", entry.make(**options), options.get("episode_limit")
            if ":" not in env:
                return "adapter", entry.make(**options), None
            factory = _import_factory(env)
            opts = dict(options)
            limit = None if _accepts(factory, "episode_limit") else opts.pop("episode_limit", None)
            if not _accepts(factory, "global_state"):
                opts.pop("global_state", None)
            obj = factory(**opts)
        except ValueError as e:
            raise _BuildProblem(" ".join(str(e).split())) from None
        except Exception as e:  # noqa: BLE001 - the user's factory failed
            raise _BuildProblem(f"building env {env!r} with options {options} failed: {_err(e)}") from None
        if isinstance(obj, JaxMARLAdapter):
            return "adapter", obj, None
        if _is_jax_env(obj):
            return "jax", obj, limit
        raise _BuildProblem(f"the factory of {env!r} returned {type(obj).__name__}; allowed: a JaxMARL "
                            f"MultiAgentEnv or a JaxMARLAdapter")
    if isinstance(env, JaxMARLAdapter):
        return "adapter", env, None
    if _is_jax_env(env):
        return "jax", env, options.get("episode_limit")
    if _is_parallel_env(env):
        raise _BuildProblem("pass a PettingZoo env as a zero-argument constructor (e.g. functools.partial(MyEnv, "
                            "...)), so that fresh copies can be built")
    if callable(env):
        return "pz", env, options.get("episode_limit")
    raise _BuildProblem(f"{type(env).__name__} is not an env; allowed: a registered name, package.module:factory, "
                        f"a JaxMARL MultiAgentEnv, a JaxMARLAdapter or a ParallelEnv constructor")


# ---------------------------------------------------------------------------------------------------------
# shared value checks
# ---------------------------------------------------------------------------------------------------------
def _check_obs(rep: _Report, where: str, agent: str, o, size: int, bounds=None) -> None:
    try:
        arr = np.asarray(o)
    except Exception as e:  # noqa: BLE001
        rep.add("obs", f"{where}: observation of agent {agent!r} is not an array ({_err(e)})")
        return
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number) and arr.dtype != bool:
        rep.add("obs", f"{where}: observation of agent {agent!r} has dtype {arr.dtype}; allowed: numbers")
        return
    if arr.size != size:
        rep.add("obs", f"{where}: observation of agent {agent!r} has shape {arr.shape} ({arr.size} values) but its "
                f"observation space declares {size}; make them agree")
        return
    if not np.issubdtype(arr.dtype, np.floating):
        rep.add("obs", f"observations of agent {agent!r} have dtype {arr.dtype}; trustmarl casts them to float32 "
                f"(a floating dtype avoids surprises)", "warning")
    elif not np.isfinite(arr).all():
        rep.add("obs", f"{where}: observation of agent {agent!r} holds NaN/inf; observations must be finite")
    if bounds is not None and np.isfinite(arr).all():
        low, high = bounds
        if (arr.reshape(-1) < np.asarray(low).reshape(-1) - 1e-6).any() or \
                (arr.reshape(-1) > np.asarray(high).reshape(-1) + 1e-6).any():
            rep.add("obs", f"{where}: observation of agent {agent!r} lies outside its observation space's bounds",
                    "warning")


def _check_mask(rep: _Report, where: str, agent: str, mask, n: int, pad: int) -> Optional[np.ndarray]:
    """Validate one agent's action mask; returns it as a bool [n] array (None when unusable)."""
    arr = np.asarray(mask)
    flat = arr.reshape(-1)
    if arr.ndim > 1 or flat.size not in (n, pad):
        rep.add("masks", f"{where}: the action mask of agent {agent!r} has shape {arr.shape}; allowed: ({n},), one "
                f"entry per action of its action space")
        return None
    if not (arr.dtype == bool or np.isin(flat, (0, 1)).all()):
        rep.add("masks", f"{where}: the action mask of agent {agent!r} holds values other than 0/1 "
                f"({np.unique(flat)[:5].tolist()})")
        return None
    flat = flat.astype(bool)
    if flat.size > n and flat[n:].any():
        rep.add("masks", f"{where}: the action mask of agent {agent!r} marks actions {np.flatnonzero(flat[n:]) + n} "
                f"available, but its action space has only {n} actions; masked-out (non-existent) actions must "
                f"never be available")
    if not flat[:n].any():
        rep.add("masks", f"{where}: agent {agent!r} is live but has no available action")
        return None
    return flat[:n]


def _random_action(rng: np.random.Generator, discrete: bool, n_or_shape, low=None, high=None, mask=None):
    if discrete:
        choices = np.flatnonzero(mask) if mask is not None else np.arange(n_or_shape)
        return int(rng.choice(choices))
    return rng.uniform(low, high, size=n_or_shape).astype(np.float32)


def _space_info(space):
    """(discrete, n or shape, size, low, high) of a jaxmarl/gymnasium space."""
    if hasattr(space, "n"):
        return True, int(space.n), int(space.n), None, None
    shape = tuple(space.shape)
    low = np.broadcast_to(np.asarray(getattr(space, "low", -np.inf), np.float64), shape)
    high = np.broadcast_to(np.asarray(getattr(space, "high", np.inf), np.float64), shape)
    return False, shape, int(np.prod(shape)), low, high


def _equal(a, b) -> bool:
    import jax
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    if len(la) != len(lb) or jax.tree.structure(a) != jax.tree.structure(b):
        return False
    return all(np.array_equal(np.asarray(x), np.asarray(y), equal_nan=True) for x, y in zip(la, lb))


# ---------------------------------------------------------------------------------------------------------
# JaxMARL envs
# ---------------------------------------------------------------------------------------------------------
def _check_jax(rep: _Report, env, limit, seed: int, episodes: int, adapter=None, name: str = "env"):
    import jax
    import jax.numpy as jnp
    agents = list(getattr(env, "agents", []) or [])
    if not agents:
        rep.add("spaces", "env.agents is empty or missing; a JaxMARL env lists its agents in env.agents")
        return
    info = {}
    for a in agents:
        try:
            obs_space, act_space = env.observation_space(a), env.action_space(a)
            o_shape = tuple(obs_space.shape)
            act = _space_info(act_space)
        except Exception as e:  # noqa: BLE001
            rep.add("spaces", f"observation_space/action_space of agent {a!r} cannot be read: {_err(e)}")
            continue
        if not act[0] and not (np.isfinite(act[3]).all() and np.isfinite(act[4]).all()):
            rep.add("spaces", f"the Box action space of agent {a!r} is unbounded; allowed: Discrete, or a Box with "
                    f"finite low and high")
        info[a] = (int(np.prod(o_shape)), act, _bounds(obs_space))
    if len(info) < len(agents) or rep.has("spaces"):
        return
    kinds = {info[a][1][0] for a in agents}
    if len(kinds) > 1:
        rep.add("spaces", "agents mix Discrete and Box action spaces; allowed: one kind for all agents")
        return
    discrete = kinds.pop()
    pad = max(info[a][1][2] for a in agents)
    if limit is None:
        limit = getattr(env, "max_steps", None)
    if not (isinstance(limit, (int, np.integer)) and not isinstance(limit, bool) and limit > 0):
        rep.add("time_limit", "the env has no time limit: give it a max_steps attribute (a positive int) or pass the "
                "option episode_limit=<steps>")
        limit = None
    key = jax.random.PRNGKey(seed)
    try:
        obs, state = env.reset(key)
    except Exception as e:  # noqa: BLE001
        rep.add("reset", f"reset(key) failed: {_err(e)}")
        return
    if not isinstance(obs, dict) or any(a not in obs for a in agents):
        missing = [a for a in agents if not isinstance(obs, dict) or a not in obs]
        rep.add("reset", f"reset(key) must return (observations dict with one entry per agent, state); missing "
                f"agents: {missing}")
        return
    for a in agents:
        _check_obs(rep, "reset", a, obs[a], info[a][0], info[a][2])
    has_masks = _implements(lambda: env.get_avail_actions(state))
    has_world = callable(getattr(env, "get_world_state", None))
    world_size = [None]

    def observe(where, obs, state) -> Optional[dict]:
        for a in agents:
            if a not in obs:
                rep.add("obs", f"{where}: no observation for agent {a!r}")
            else:
                _check_obs(rep, where, a, obs[a], info[a][0], info[a][2])
        if has_world:
            try:
                w = np.asarray(env.get_world_state(state))
                if w.ndim != 1 and w.size:
                    rep.add("state", f"{where}: get_world_state(state) has shape {w.shape}; allowed: a vector")
                if world_size[0] is None:
                    world_size[0] = w.size
                elif w.size != world_size[0]:
                    rep.add("state", f"{where}: get_world_state(state) has {w.size} values, {world_size[0]} before; "
                            f"its size must not change")
                if np.issubdtype(w.dtype, np.floating) and not np.isfinite(w).all():
                    rep.add("state", f"{where}: get_world_state(state) holds NaN/inf")
            except Exception as e:  # noqa: BLE001
                rep.add("state", f"{where}: get_world_state(state) failed: {_err(e)}")
        if not has_masks:
            return None
        try:
            masks = env.get_avail_actions(state)
        except Exception as e:  # noqa: BLE001
            rep.add("masks", f"{where}: get_avail_actions(state) failed: {_err(e)}")
            return None
        if not isinstance(masks, dict) or any(a not in masks for a in agents):
            rep.add("masks", f"{where}: get_avail_actions(state) must return a dict with a mask per agent")
            return None
        return {a: _check_mask(rep, where, a, masks[a], info[a][1][2], pad) for a in agents}

    masks = observe("reset", obs, state)
    rng = np.random.default_rng(seed)

    def actions_for(masks):
        out = {}
        for a in agents:
            d, n, _, lo, hi = info[a][1]
            m = masks.get(a) if masks else None
            out[a] = jnp.asarray(_random_action(rng, d, n, lo, hi, m), jnp.int32 if d else jnp.float32)
        return out

    # one episode, eager: rewards, dones, obs, masks; keep the keys and actions for the replays
    steps, trajectory = [], [obs]
    s = state
    # the env must end its episodes by its own max_steps; without one, the adapter cuts them at episode_limit
    own = getattr(env, "max_steps", None)
    own = int(own) if isinstance(own, (int, np.integer)) and not isinstance(own, bool) and own > 0 else None
    horizon = (own or limit or 50) + 1
    ended = None
    for t in range(horizon):
        key, k = jax.random.split(key)
        acts = actions_for(masks)
        try:
            out = env.step_env(k, s, acts)
        except Exception as e:  # noqa: BLE001
            rep.add("dones" if "__all__" in str(e) else "reward", f"step_env(key, state, actions) failed at step "
                    f"{t + 1}: {_err(e)}")
            return
        if not (isinstance(out, tuple) and len(out) == 5):
            rep.add("dones", "step_env must return (observations, state, rewards, dones, infos)")
            return
        o, s, r, dn, _ = out
        steps.append((k, acts))
        trajectory.append((o, r, dn))
        where = f"step {t + 1}"
        masks = observe(where, o, s)
        for a in agents:
            if not isinstance(r, dict) or a not in r:
                rep.add("reward", f"{where}: no reward for agent {a!r}; step_env returns a dict of scalar rewards")
                continue
            rv = np.asarray(r[a])
            if rv.shape != ():
                rep.add("reward", f"{where}: the reward of agent {a!r} has shape {rv.shape}; allowed: a scalar ()")
            elif not np.issubdtype(rv.dtype, np.number) and rv.dtype != bool:
                rep.add("reward", f"{where}: the reward of agent {a!r} has dtype {rv.dtype}; allowed: a number")
            elif not np.isfinite(rv).all():
                rep.add("reward", f"{where}: the reward of agent {a!r} is {rv}; rewards must be finite")
        if not isinstance(dn, dict) or "__all__" not in dn:
            rep.add("dones", f"{where}: dones has no '__all__' entry; allowed: a dict with one boolean per agent and "
                    f"'__all__' (true when the episode ends)")
            return
        done_all = np.asarray(dn["__all__"])
        if done_all.shape != () or done_all.dtype != bool:
            rep.add("dones", f"{where}: dones['__all__'] has shape {done_all.shape} and dtype {done_all.dtype}; "
                    f"allowed: a boolean scalar")
            return
        if not bool(done_all) and all(bool(np.asarray(dn.get(a, False)).all()) for a in agents):
            rep.add("dones", f"{where}: every agent is done but dones['__all__'] is false")
        if bool(done_all):
            ended = t + 1
            break
    if own is not None and ended is None:
        rep.add("time_limit", f"the episode did not end within the time limit of {own} steps (dones['__all__'] "
                f"stayed false for {horizon} steps); end episodes by max_steps")
    if rep.has("reset", "obs", "reward", "dones", "spaces"):
        return
    # determinism: the same keys and actions replay the episode exactly, eagerly and jitted
    try:
        replay_ok = True
        for _ in range(2):
            o2, s2 = env.reset(jax.random.PRNGKey(seed))
            again = [o2]
            for k, acts in steps:
                o2, s2, r2, d2, _ = env.step_env(k, s2, acts)
                again.append((o2, r2, d2))
            if not _equal(again, trajectory):
                rep.add("determinism", "the same key and actions gave different observations, rewards or dones; "
                        "reset and step_env must be functions of their arguments (no Python or numpy randomness, "
                        "no state kept outside the state pytree)")
                replay_ok = False
                break
        if replay_ok:
            try:
                jo, js = jax.jit(env.reset)(jax.random.PRNGKey(seed))
                step = jax.jit(env.step_env)
                jitted = [jo]
                for k, acts in steps:
                    jo, js, jr, jd, _ = step(k, js, acts)
                    jitted.append((jo, jr, jd))
            except Exception as e:  # noqa: BLE001
                rep.add("contract", f"reset/step_env cannot run under jax.jit (the JAX path trains inside one jitted "
                        f"program; Python control flow on array values?): {_err(e)}")
            else:
                if not _close(jitted, trajectory):
                    rep.add("determinism", "jitted and eager steps disagree: the env keeps state outside its state "
                            "pytree or uses Python-side randomness")
    except Exception as e:  # noqa: BLE001
        rep.add("determinism", f"replaying the episode failed: {_err(e)}")
    if rep.errors:
        return
    _check_adapter(rep, env, limit, seed, episodes, adapter, name)


def _bounds(space):
    low, high = getattr(space, "low", None), getattr(space, "high", None)
    if low is None or high is None:
        return None
    try:
        return np.asarray(low, np.float64), np.asarray(high, np.float64)
    except (TypeError, ValueError):
        return None


def _close(a, b) -> bool:
    import jax
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(la) == len(lb) and all(
        np.allclose(np.asarray(x, np.float64), np.asarray(y, np.float64), rtol=1e-5, atol=1e-6, equal_nan=True)
        for x, y in zip(la, lb))


def _implements(fn) -> bool:
    try:
        fn()
    except NotImplementedError:
        return False
    except Exception:  # noqa: BLE001 - reported by the mask check itself
        return True
    return True


def _check_adapter(rep: _Report, env, limit, seed: int, episodes: int, adapter, name: str):
    """The env through trustmarl's adapter: contract shapes/dtypes, auto-reset, flags."""
    import jax
    import jax.numpy as jnp
    from trustmarl.envs.registry import as_jax_env
    if adapter is None:
        try:
            import warnings
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                adapter = as_jax_env(env, episode_limit=limit if getattr(env, "max_steps", None) is None else None,
                                     name=name)
        except ValueError as e:
            rep.add("contract", " ".join(str(e).split()))
            return
    spec = adapter.spec
    A, O, U, S = spec.num_agents, spec.obs_dim, spec.num_actions, spec.state_dim
    key = jax.random.PRNGKey(seed)
    st, ts = adapter.reset(key)
    step = jax.jit(adapter.step)
    rng = np.random.default_rng(seed)
    want = {"obs": ((A, O), np.float32), "state": ((A, S), np.float32), "avail": ((A, U), np.bool_),
            "reward": ((A,), np.float32), "terminated": ((), np.bool_), "truncated": ((), np.bool_),
            "active": ((A,), np.bool_), "final_obs": ((A, O), np.float32), "final_state": ((A, S), np.float32)}
    pad = np.array([[u < n for u in range(U)] for n in spec.action_dims])
    length, ends = 0, 0
    for t in range(episodes * spec.episode_limit + 1):
        for field, (shape, dtype) in want.items():
            x = np.asarray(getattr(ts, field))
            if x.shape != shape or x.dtype != dtype:
                rep.add("contract", f"timestep field {field} has shape {x.shape} and dtype {x.dtype}; the contract "
                        f"wants {shape} {np.dtype(dtype).name}")
        avail = np.asarray(ts.avail)
        if (avail & ~pad).any():
            rep.add("masks", "an action beyond an agent's own actions is available after adaptation")
        if bool(ts.terminated) and bool(ts.truncated):
            rep.add("truncation", f"step {t}: terminated and truncated are both set")
        if spec.discrete:
            acts = np.array([rng.choice(np.flatnonzero(avail[i])) if avail[i].any() else 0 for i in range(A)])
        else:
            acts = rng.uniform(spec.action_low, spec.action_high, (A, U)).astype(np.float32)
        key, k = jax.random.split(key)
        st, ts = step(k, st, jnp.asarray(acts))
        length += 1
        if bool(ts.episode.done):
            ends += 1
            if bool(ts.truncated) != (length >= spec.episode_limit) and adapter.hooks.task_terminal is None:
                rep.add("truncation", f"an episode of {length} steps (limit {spec.episode_limit}) was read as "
                        f"{'truncated' if bool(ts.truncated) else 'terminated'}")
            # auto-reset: the new episode's first observation is reset's (with the step's reset key)
            _, k_reset = jax.random.split(k)
            obs_new, _ = adapter.env.reset(k_reset)
            now = np.asarray(ts.obs)
            if not all(np.allclose(now[i, : np.size(obs_new[a])], np.asarray(obs_new[a], np.float32).reshape(-1),
                                   atol=1e-6, equal_nan=True) for i, a in enumerate(spec.agents)):
                rep.add("auto_reset", "after an episode ended, the next observation is not reset's first "
                        "observation; reset(key) must start a fresh episode")
            length = 0
    if ends == 0:
        rep.add("time_limit", f"no episode ended in {episodes * spec.episode_limit + 1} adapted steps")


# ---------------------------------------------------------------------------------------------------------
# PettingZoo envs
# ---------------------------------------------------------------------------------------------------------
def _check_pz(rep: _Report, ctor: Callable, limit, seed: int, episodes: int):
    from trustmarl.envs.host_vector import find_episode_limit
    from trustmarl.envs.registry import _is_parallel_env
    try:
        env = ctor()
    except Exception as e:  # noqa: BLE001
        rep.add("build", f"the constructor failed: {_err(e)}")
        return
    if not _is_parallel_env(env):
        rep.add("build", f"the constructor returned {type(env).__name__}, not a PettingZoo ParallelEnv (possible_agents, "
                f"reset, step, observation_space, action_space)")
        return
    try:
        import cloudpickle
        cloudpickle.dumps(ctor)
    except Exception as e:  # noqa: BLE001
        rep.add("pickle", f"the constructor cannot be pickled for the worker processes: {_err(e)}; use a "
                f"module-level function or functools.partial of one")
    agents = list(getattr(env, "possible_agents", []) or [])
    if not agents:
        rep.add("spaces", "possible_agents is empty")
        return
    info = {}
    for a in agents:
        try:
            ospace, aspace = env.observation_space(a), env.action_space(a)
            if hasattr(ospace, "spaces") and "observation" in getattr(ospace, "spaces", {}):
                ospace = ospace["observation"]
            size = int(np.prod(ospace.shape))
            act = _space_info(aspace)
        except Exception as e:  # noqa: BLE001
            rep.add("spaces", f"observation_space/action_space of agent {a!r} cannot be read as Box/Discrete: {_err(e)}")
            continue
        if not act[0] and not (np.isfinite(act[3]).all() and np.isfinite(act[4]).all()):
            rep.add("spaces", f"the Box action space of agent {a!r} is unbounded; allowed: a Box with finite bounds")
        info[a] = (size, act, _bounds(ospace))
    if len(info) < len(agents) or rep.has("spaces"):
        return
    if len({info[a][1][0] for a in agents}) > 1:
        rep.add("spaces", "agents mix Discrete and Box action spaces; allowed: one kind for all agents")
        return
    pad = max(info[a][1][2] for a in agents)
    limit = limit if limit is not None else find_episode_limit(env)
    if not (isinstance(limit, (int, np.integer)) and limit > 0):
        rep.add("time_limit", "the env exposes no time limit (max_cycles); give it one or pass episode_limit")
        limit = None
    first = _pz_episode(rep, env, agents, info, pad, limit, seed, "episode 1")
    if first is None:
        _close_env(env)
        return
    # auto-reset: reset on the same instance after an episode replays it with the same seed and actions
    again = _pz_episode(rep, env, agents, info, pad, limit, seed, "episode 2 (after reset)", replay=first["actions"])
    if again is not None and not _same_episode(first, again):
        rep.add("auto_reset", "reset(seed) after an episode does not replay it with the same actions: the second "
                "episode differs (a step counter or other state not reset?)")
    _close_env(env)
    try:
        fresh = ctor()
        other = _pz_episode(_Report(rep.name), fresh, agents, info, pad, limit, seed, "replay",
                            replay=first["actions"])
        _close_env(fresh)
        if other is not None and not _same_episode(first, other):
            rep.add("determinism", f"a fresh env reset with seed={seed} and given the same actions produced "
                    f"different observations or rewards; seed every random draw from reset(seed)")
    except Exception as e:  # noqa: BLE001
        rep.add("determinism", f"replaying an episode on a fresh env failed: {_err(e)}")
    if rep.errors:
        return
    from trustmarl.envs.host_vector import HostEnvError, HostVectorEnv
    try:
        with HostVectorEnv(ctor, 1, async_=False, episode_limit=limit, seed=seed) as venv:
            ts = venv.reset()
            U = venv.spec.num_actions
            padm = np.array([[u < n for u in range(U)] for n in venv.spec.action_dims])
            rng = np.random.default_rng(seed)
            for _ in range(episodes * (limit or 1) + 1):
                if (ts.avail[0] & ~padm).any():
                    rep.add("masks", "an action beyond an agent's own actions is available after adaptation")
                if (ts.terminated & ts.truncated).any():
                    rep.add("truncation", "terminated and truncated both set after adaptation")
                ts = venv.step(venv.random_actions(rng, ts.avail))
    except (HostEnvError, ValueError) as e:
        rep.add("contract", " ".join(str(e).split()))


def _close_env(env):
    try:
        env.close()
    except Exception:  # noqa: BLE001
        pass


def _same_episode(a: dict, b: dict) -> bool:
    if len(a["obs"]) != len(b["obs"]):
        return False
    return all(np.array_equal(x, y, equal_nan=True) for x, y in zip(a["obs"], b["obs"])) and \
        np.array_equal(np.asarray(a["rewards"]), np.asarray(b["rewards"]), equal_nan=True)


def _pz_mask(obs_a, info_a):
    mask = None
    if isinstance(obs_a, dict):
        mask = obs_a.get("action_mask")
    if isinstance(info_a, dict) and "action_mask" in info_a:
        mask = info_a["action_mask"]
    return mask


def _pz_episode(rep: _Report, env, agents, info, pad, limit, seed, label: str, replay=None) -> Optional[dict]:
    """Play one episode with random valid (or replayed) actions, checking every step; a record or None."""
    try:
        out = env.reset(seed=seed)
    except Exception as e:  # noqa: BLE001
        rep.add("reset", f"{label}: reset(seed) failed: {_err(e)}")
        return None
    if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[0], dict)):
        rep.add("reset", f"{label}: reset(seed) must return (observations dict, infos dict), not {type(out).__name__}")
        return None
    obs, infos = out
    infos = infos if isinstance(infos, dict) else {}
    live = list(getattr(env, "agents", []))
    if not live:
        rep.add("reset", f"{label}: env.agents is empty after reset")
        return None
    rng = np.random.default_rng(seed)
    rec = {"obs": [], "rewards": [], "actions": []}

    def observe(where, obs, infos, who):
        masks = {}
        row = []
        for a in who:
            if a not in obs:
                rep.add("obs", f"{where}: no observation for live agent {a!r}")
                continue
            o = obs[a]["observation"] if isinstance(obs[a], dict) else obs[a]
            _check_obs(rep, where, a, o, info[a][0], info[a][2])
            row.append(np.asarray(o, dtype=np.float64).reshape(-1) if np.asarray(o).dtype != object else np.zeros(0))
            m = _pz_mask(obs[a], infos.get(a))
            if m is not None and info[a][1][0]:
                masks[a] = _check_mask(rep, where, a, m, info[a][1][2], pad)
        rec["obs"].append(np.concatenate(row) if row else np.zeros(0))
        return masks

    masks = observe(f"{label}, reset", obs, infos, live)
    horizon = (limit or 50) + 1
    for t in range(horizon):
        where = f"{label}, step {t + 1}"
        if replay is not None and t < len(replay):
            acts = replay[t]
        else:
            acts = {a: _random_action(rng, info[a][1][0], info[a][1][1], info[a][1][3], info[a][1][4], masks.get(a))
                    for a in live}
        rec["actions"].append(acts)
        try:
            out = env.step({a: acts[a] for a in live if a in acts})
        except Exception as e:  # noqa: BLE001
            rep.add("dones", f"{where}: step(actions) failed: {_err(e)}")
            return None
        if not (isinstance(out, tuple) and len(out) == 5):
            rep.add("dones", f"{where}: step must return (observations, rewards, terminations, truncations, infos)")
            return None
        obs, rew, term, trunc, infos = out
        infos = infos if isinstance(infos, dict) else {}
        if not all(isinstance(d, dict) for d in (obs, rew, term, trunc)):
            rep.add("dones", f"{where}: observations, rewards, terminations and truncations must be dicts keyed by agent")
            return None
        rewards = []
        for a in live:
            try:
                rv = float(rew.get(a, 0.0))
            except (TypeError, ValueError):
                rep.add("reward", f"{where}: the reward of agent {a!r} is {rew.get(a)!r}; allowed: a number")
                return None
            if not np.isfinite(rv):
                rep.add("reward", f"{where}: the reward of agent {a!r} is {rv}; rewards must be finite")
            rewards.append(rv)
            for name, d in (("terminations", term), ("truncations", trunc)):
                if not isinstance(d.get(a, False), (bool, np.bool_)):
                    rep.add("dones", f"{where}: {name}[{a!r}] is {d.get(a)!r}; allowed: True or False")
            if bool(term.get(a, False)) and bool(trunc.get(a, False)):
                rep.add("truncation", f"{where}: agent {a!r} is both terminated and truncated; report one (truncated "
                        f"when the time limit cut the episode)")
        rec["rewards"].append(rewards)
        done = [a for a in live if bool(term.get(a, False)) or bool(trunc.get(a, False))]
        now = list(getattr(env, "agents", []))
        lingering = [a for a in done if a in now]
        if lingering:
            rep.add("dones", f"{where}: agents {lingering} are done but still in env.agents; remove finished agents "
                    f"from env.agents")
            now = [a for a in now if a not in lingering]
        new = [a for a in now if a not in live]
        if new:
            rep.add("dones", f"{where}: agents {new} joined env.agents during the episode; allowed: agents only leave")
        if limit is not None and t + 1 == limit and now:
            rep.add("time_limit", f"{label}: the episode went on past its time limit of {limit} steps (env.agents "
                    f"still {now})")
            return rec
        if not now:
            if limit is not None and t + 1 == limit and any(term.get(a) for a in live) and \
                    not any(trunc.get(a) for a in live):
                rep.add("truncation", "episodes that reach the time limit report terminations, not truncations; "
                        "trustmarl reads them as truncations (docs/host.md), set reports_truncations=True once the "
                        "flags are exact", "warning")
            return rec
        masks = observe(where, obs, infos, now)
        live = now
    return rec

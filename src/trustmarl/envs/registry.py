"""The env registry and "bring your own environment": names, user factories and ``package.module:factory``.

Everything trustmarl trains on is reached through one of three doors (docs/envs/custom.md):

* a **registered name** (``ENVS``): the built-ins (``trustmarl list``) and whatever
  :func:`register_env` adds;
* a **factory path** ``"package.module:factory"`` (CLI ``env=mypkg.envs:make_my_env``): the module is
  imported and ``factory`` called (this runs the user's own code, by design);
* an **env object** from Python: :func:`as_jax_env` wraps a JaxMARL ``MultiAgentEnv`` into the
  stacked-array contract of :mod:`trustmarl.envs.core`.

Two kinds of entry (:class:`EnvEntry`, field ``host``):

* JAX (``host=False``): ``entry.make(**options)`` returns a :class:`~trustmarl.envs.core.JaxMARLAdapter`,
  stepped inside the jitted trainer;
* host (``host=True``): ``entry.make(**options)`` returns a picklable zero-argument callable that builds a
  fresh PettingZoo ``ParallelEnv`` (``trustmarl.host``: one copy per worker process).

What a user JAX env must provide: ``agents``, ``reset(key) -> (obs dict, state)``,
``step_env(key, state, actions) -> (obs, state, rewards, dones with "__all__", infos)``,
``observation_space(agent)``/``action_space(agent)`` (all Discrete or all Box), and a time limit
(``max_steps``, or ``episode_limit=`` given here). Optional: ``get_avail_actions(state)`` (action masks;
absent or ``NotImplementedError`` means every action is available) and ``get_world_state(state)`` (the
world part of the centralised critic's state for ``global_state="env"``/``"agent_specific"``; without it
the concatenated observations stand in, with a warning).
"""
from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import warnings
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from trustmarl.envs.core import GLOBAL_STATE_KINDS, EnvHooks, JaxMARLAdapter

__all__ = ["EnvEntry", "ENVS", "register_env", "resolve_env", "make_env", "as_jax_env", "is_host_env",
           "list_envs", "check_jax_env"]

FACTORY_PATH = "package.module:factory"
_ALLOWED_OBJECTS = ("a JaxMARL MultiAgentEnv, a JaxMARLAdapter, a PettingZoo ParallelEnv, or a zero-argument "
                    "callable returning a ParallelEnv")
_JAX_METHODS = ("agents", "reset", "step_env", "observation_space", "action_space")
_PZ_METHODS = ("possible_agents", "reset", "step", "observation_space", "action_space")


@dataclasses.dataclass(frozen=True)
class EnvEntry:
    """One env trustmarl can build.

    ``make(**options)``: JAX entries return a :class:`JaxMARLAdapter`; host entries (``host=True``) a picklable
    zero-argument callable building a fresh PettingZoo ``ParallelEnv``. ``doc``: one line for ``trustmarl
    list``. ``options``: the option names shown there (documentation; ``make`` checks its own keywords).
    """

    make: Callable
    doc: str
    options: tuple
    host: bool = False  # a Python env stepped in worker processes: ``make(**options)`` returns an env_fn


# Populated with the built-ins by ``trustmarl.envs`` (its ``__init__``) and by :func:`register_env`.
ENVS: dict[str, EnvEntry] = {}
# ``package.module:factory`` entries already resolved (the module imported, the kind probed once).
_RESOLVED: dict[str, EnvEntry] = {}


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())


def _quiet_import_jaxmarl_base():
    """jaxmarl's MultiAgentEnv class (jaxmarl prints a line about optional submodules on import)."""
    import contextlib
    import io
    with contextlib.redirect_stdout(io.StringIO()):
        from jaxmarl.environments.multi_agent_env import MultiAgentEnv
    return MultiAgentEnv


def _parallel_env_class():
    try:
        from pettingzoo.utils.env import ParallelEnv
    except ImportError:  # pettingzoo is an optional extra; duck typing still recognises its envs
        return None
    return ParallelEnv


# --- what an object is -------------------------------------------------------------------------------------
def _is_jax_env(obj) -> bool:
    """A JaxMARL ``MultiAgentEnv`` (subclass or the same duck-typed API)."""
    if isinstance(obj, type):
        return False
    if isinstance(obj, _quiet_import_jaxmarl_base()):
        return True
    return all(hasattr(obj, m) for m in _JAX_METHODS)


def _is_parallel_env(obj) -> bool:
    """A PettingZoo ``ParallelEnv`` (subclass or anything with its API)."""
    if isinstance(obj, type):
        return False
    cls = _parallel_env_class()
    if cls is not None and isinstance(obj, cls):
        return True
    return all(hasattr(obj, m) for m in _PZ_METHODS)


def _describe(obj) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _close(obj):
    close = getattr(obj, "close", None)
    if callable(close):
        try:
            close()
        except Exception:  # noqa: BLE001 - a probe copy that cannot close is not the user's problem here
            pass


# --- checks on a user JAX env --------------------------------------------------------------------------------
def check_jax_env(adapter: JaxMARLAdapter) -> JaxMARLAdapter:
    """Check an adapted env against what the trainer needs (shapes only, via ``jax.eval_shape``); return it.

    One-line ``ValueError`` naming the env when: ``reset`` misses an agent's observation or gives one of
    another size than ``observation_space`` declares; ``get_avail_actions`` (when implemented) misses an
    agent or gives a mask of another size than the agent's action count; ``step_env`` gives no reward for
    an agent or no ``dones["__all__"]``.
    """
    env, spec = adapter.env, adapter.spec
    name = spec.name
    key = jax.random.PRNGKey(0)
    try:
        obs, state = jax.eval_shape(env.reset, key)
    except Exception as err:  # noqa: BLE001
        raise ValueError(f"env {name!r}: reset(key) failed while checking the env: "
                         f"{type(err).__name__}: {_one_line(err)}") from None
    if not isinstance(obs, dict):
        raise ValueError(f"env {name!r}: reset(key) must return (observations dict keyed by agent, state); "
                         f"got observations of type {type(obs).__name__}")
    for agent, size in zip(spec.agents, spec.obs_dims):
        if agent not in obs:
            raise ValueError(f"env {name!r}: reset(key) gives no observation for agent {agent!r}; "
                             f"allowed: one per agent in env.agents {list(spec.agents)}")
        got = int(np.prod(obs[agent].shape))
        if got != size:
            raise ValueError(f"env {name!r}: reset(key) gives agent {agent!r} an observation of shape "
                             f"{tuple(obs[agent].shape)} ({got} values) but observation_space({agent!r}) "
                             f"declares {size}; make them agree")
    if adapter._has_avail:
        avail = jax.eval_shape(lambda k: env.get_avail_actions(env.reset(k)[1]), key)
        for agent, n in zip(spec.agents, spec.action_dims):
            if not isinstance(avail, dict) or agent not in avail:
                raise ValueError(f"env {name!r}: get_avail_actions(state) gives no mask for agent {agent!r}; "
                                 f"return a dict with a [{n}] mask per agent, or leave get_avail_actions "
                                 f"unimplemented (raise NotImplementedError) to make every action available")
            shape = tuple(avail[agent].shape)
            if int(np.prod(shape)) not in (n, spec.num_actions) or len(shape) > 1:
                raise ValueError(f"env {name!r}: get_avail_actions(state) gives agent {agent!r} a mask of shape "
                                 f"{shape}; expected ({n},), one flag per action of action_space({agent!r}), "
                                 f"or leave get_avail_actions unimplemented to make every action available")
    if spec.discrete:
        actions = {a: jnp.zeros((), jnp.int32) for a in spec.agents}
    else:
        actions = {a: jnp.zeros((d,), jnp.float32) for a, d in zip(spec.agents, spec.action_dims)}
    try:
        out = jax.eval_shape(lambda k: env.step_env(k, env.reset(k)[1], actions), key)
    except Exception as err:  # noqa: BLE001
        raise ValueError(f"env {name!r}: step_env(key, state, actions) failed while checking the env "
                         f"(actions: a dict keyed by agent, {'int32 scalars' if spec.discrete else 'float32 vectors'}): "
                         f"{type(err).__name__}: {_one_line(err)}") from None
    if not (isinstance(out, tuple) and len(out) == 5):
        raise ValueError(f"env {name!r}: step_env must return (obs, state, rewards, dones, infos)")
    _, _, rewards, dones, _ = out
    missing = [a for a in spec.agents if not isinstance(rewards, dict) or a not in rewards]
    if missing:
        raise ValueError(f"env {name!r}: step_env gives no reward for agents {missing}; return a dict with a "
                         f"scalar reward per agent")
    if not isinstance(dones, dict) or "__all__" not in dones:
        raise ValueError(f"env {name!r}: step_env gives no dones['__all__']; return dones with an '__all__' "
                         f"entry (True when the episode ends)")
    return adapter


# --- wrapping a JaxMARL env ----------------------------------------------------------------------------------
def _world_state_hook(env, st, obs):
    return jnp.ravel(env.get_world_state(st))


def as_jax_env(env, global_state: str = "concat_obs", episode_limit: Optional[int] = None, *,
               name: Optional[str] = None, hooks: Optional[EnvHooks] = None) -> JaxMARLAdapter:
    """Wrap a user's JaxMARL ``MultiAgentEnv`` into trustmarl's env contract (a :class:`JaxMARLAdapter`).

    An adapter is returned unchanged. ``global_state``: ``"concat_obs"`` (default: every agent's
    observation, own first), ``"env"`` or ``"agent_specific"`` (these read ``env.get_world_state(state)``
    when the env has it; otherwise the concatenated observations stand in for the world, with a warning).
    ``episode_limit``: the time limit, needed when the env has no ``max_steps`` (the adapter then ends
    episodes there as truncations). ``name``: for messages and the spec (default: the env's class name).
    ``hooks``: :class:`~trustmarl.envs.core.EnvHooks` (death masks, win flags, world state) when the
    defaults do not fit; given hooks are used as they are.

    The env is checked (:func:`check_jax_env`); problems give a one-line ``ValueError``.
    """
    if isinstance(env, JaxMARLAdapter):
        return env
    label = name or str(getattr(env, "name", None) or type(env).__name__)
    if global_state not in GLOBAL_STATE_KINDS:
        raise ValueError(f"global_state={global_state!r} is not one of {GLOBAL_STATE_KINDS}")
    if isinstance(env, type) or not _is_jax_env(env):
        if _is_parallel_env(env):
            raise ValueError(f"env {label!r} is a PettingZoo ParallelEnv; it trains on the host path: "
                             f"register_env(name, factory, host=True) or env=package.module:factory")
        missing = [m for m in _JAX_METHODS if not hasattr(env, m)]
        raise ValueError(f"env={env!r} is not a JaxMARL MultiAgentEnv (missing {', '.join(missing) or 'an instance'}); "
                         f"allowed: a MultiAgentEnv instance or a JaxMARLAdapter")
    if hooks is None:
        has_world = callable(getattr(env, "get_world_state", None))
        hooks = EnvHooks(world_state=_world_state_hook if has_world else None)
        if global_state != "concat_obs" and not has_world:
            warnings.warn(f"env {label!r} has no get_world_state(state); global_state={global_state!r} uses the "
                          f"concatenated observations as the world state", stacklevel=2)
    adapter = JaxMARLAdapter(env, label, hooks=hooks, global_state=global_state, episode_limit=episode_limit)
    return check_jax_env(adapter)


def _accepts(fn, param: str) -> bool:
    """``fn`` names ``param`` as a parameter (a bare ``**kwargs`` does not count)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    p = params.get(param)
    return p is not None and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)


def _bind(fn, name: str, options: dict):
    """One-line ValueError when ``options`` do not fit ``fn``'s signature (before building anything)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    try:
        sig.bind(**options)
    except TypeError as err:
        raise ValueError(f"bad option for env={name!r}: {_one_line(err)}") from None


def _to_adapter(obj, name: str, global_state: Optional[str], episode_limit: Optional[int]) -> JaxMARLAdapter:
    """What a JAX factory returned -> an adapter (wrapping a MultiAgentEnv; checking an adapter)."""
    if isinstance(obj, JaxMARLAdapter):
        if global_state is not None and obj.global_state_kind != global_state:
            raise ValueError(f"env={name!r}: the factory returned a JaxMARLAdapter with global_state="
                             f"{obj.global_state_kind!r} but global_state={global_state!r} was asked; return the "
                             f"MultiAgentEnv instead, or take a global_state parameter and pass it to the adapter")
        if episode_limit is not None and obj.spec.episode_limit != episode_limit:
            raise ValueError(f"env={name!r}: the factory returned a JaxMARLAdapter with episode_limit="
                             f"{obj.spec.episode_limit} but episode_limit={episode_limit!r} was asked; return the "
                             f"MultiAgentEnv instead, or take an episode_limit parameter")
        return check_jax_env(obj)
    if _is_jax_env(obj):
        return as_jax_env(obj, global_state=global_state or "concat_obs", episode_limit=episode_limit, name=name)
    if _is_parallel_env(obj):
        raise ValueError(f"env={name!r}: the factory returned a PettingZoo ParallelEnv ({_describe(obj)}); "
                         f"register it with host=True (its factory then returns a zero-argument constructor)")
    raise ValueError(f"env={name!r}: the factory returned {_describe(obj)}; allowed for a JAX env: a JaxMARL "
                     f"MultiAgentEnv or a JaxMARLAdapter")


def _jax_make(name: str, factory: Callable) -> Callable:
    """``make(**options)`` of a user JAX entry: ``global_state``/``episode_limit`` are the adapter's options
    unless the factory names them itself."""
    takes_state, takes_limit = _accepts(factory, "global_state"), _accepts(factory, "episode_limit")

    def make(**options):
        opts = dict(options)
        global_state = None if takes_state else opts.pop("global_state", None)
        episode_limit = None if takes_limit else opts.pop("episode_limit", None)
        if global_state is not None and global_state not in GLOBAL_STATE_KINDS:
            raise ValueError(f"global_state={global_state!r} is not one of {GLOBAL_STATE_KINDS}")
        _bind(factory, name, opts)
        return _to_adapter(factory(**opts), name, global_state, episode_limit)

    make.__doc__ = f"Build the JAX env {name!r} (a JaxMARLAdapter) from its factory."
    return make


def _host_constructor(name: str, factory: Callable, options: dict) -> Callable:
    """A host factory's result -> a zero-argument ParallelEnv constructor (the host path pickles it)."""
    _bind(factory, name, options)
    out = factory(**options)
    if _is_parallel_env(out):
        # The factory built the env itself: the constructor is the factory with these options.
        _close(out)
        return functools.partial(factory, **options)
    if callable(out) and not _is_jax_env(out):
        return out
    if _is_jax_env(out) or isinstance(out, JaxMARLAdapter):
        raise ValueError(f"env={name!r} is registered as a host env but its factory returned a JAX env "
                         f"({_describe(out)}); register it with host=False")
    raise ValueError(f"env={name!r}: the host factory returned {_describe(out)}; allowed: a zero-argument "
                     f"callable returning a PettingZoo ParallelEnv (e.g. functools.partial(MyEnv, ...)), or a "
                     f"ParallelEnv")


def _host_make(name: str, factory: Callable) -> Callable:
    def make(**options):
        return _host_constructor(name, factory, options)

    make.__doc__ = f"A zero-argument constructor of the PettingZoo env {name!r} (host path)."
    return make


# --- registering -----------------------------------------------------------------------------------------------
def register_env(name: str, factory: Callable, *, host: bool = False, doc: str = "", options=(),
                 overwrite: bool = False) -> EnvEntry:
    """Register ``factory`` under ``name`` (then ``make_env(name, ...)``, ``env=name`` in configs and the CLI).

    JAX env (``host=False``): ``factory(**options)`` returns a JaxMARL ``MultiAgentEnv`` (wrapped by
    :func:`as_jax_env`; the options ``global_state``, default ``"concat_obs"``, and ``episode_limit`` go to the
    adapter unless the factory names them as parameters) or a ready :class:`JaxMARLAdapter`.
    Host env (``host=True``): ``factory(**options)`` returns a zero-argument callable building a fresh PettingZoo
    ``ParallelEnv`` (picklable: a module-level function or ``functools.partial`` of one); a factory that returns
    a ``ParallelEnv`` itself is accepted too (the constructor is then ``functools.partial(factory, **options)``,
    at the price of one env built and closed by each ``make``).
    ``doc``: one line for ``trustmarl list``; ``options``: option names shown there. A taken name needs
    ``overwrite=True``. Returns the :class:`EnvEntry`.
    """
    if not isinstance(name, str) or not name or ":" in name or any(ch.isspace() for ch in name):
        raise ValueError(f"name={name!r} is not a valid env name; allowed: a non-empty str without ':' or "
                         f"whitespace (':' marks package.module:factory paths)")
    if name in ENVS and not overwrite:
        raise ValueError(f"env name={name!r} is already registered; pass overwrite=True to replace it, or "
                         f"choose another name")
    if not callable(factory):
        raise ValueError(f"factory={factory!r} for env {name!r} is not callable; allowed: a function or class "
                         f"called as factory(**options)")
    if not isinstance(host, bool):
        raise ValueError(f"host={host!r} for env {name!r} must be True or False")
    if not isinstance(doc, str):
        raise ValueError(f"doc={doc!r} for env {name!r} must be a str")
    if isinstance(options, str) or not all(isinstance(o, str) for o in options):
        raise ValueError(f"options={options!r} for env {name!r} must be a tuple of option names (str)")
    make = _host_make(name, factory) if host else _jax_make(name, factory)
    doc = _one_line(doc) or f"user env ({getattr(factory, '__module__', '?')}.{getattr(factory, '__qualname__', factory)})"
    entry = EnvEntry(make, doc, tuple(options), host=host)
    ENVS[name] = entry
    return entry


# --- resolving names and factory paths -------------------------------------------------------------------------
def _import_factory(path: str) -> Callable:
    module_name, _, attr = path.partition(":")
    if not module_name or not attr or ":" in attr:
        raise ValueError(f"env={path!r} is not a factory path; allowed: {FACTORY_PATH} (one ':')")
    try:
        obj = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"env={path!r}: module {module_name!r} cannot be imported ({_one_line(err)}); install it "
                         f"or put its folder on PYTHONPATH") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"env={path!r}: module {module_name!r} has no attribute {attr!r}; allowed: "
                             f"{FACTORY_PATH} naming a callable in that module")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"env={path!r}: {attr!r} is a {type(obj).__name__}, not callable; allowed: "
                         f"{FACTORY_PATH} naming a function or class")
    return obj


def _classify_factory(path: str, factory: Callable) -> str:
    """``"jax"``, ``"host"`` (factory returns a ParallelEnv) or ``"host_ctor"`` (returns a constructor).

    Classes are told apart by their bases without building anything; other factories are called once with
    no options and the result is looked at (host probe copies are closed again).
    """
    if isinstance(factory, type):
        if issubclass(factory, JaxMARLAdapter) or issubclass(factory, _quiet_import_jaxmarl_base()):
            return "jax"
        pz = _parallel_env_class()
        if pz is not None and issubclass(factory, pz):
            return "host"
    try:
        obj = factory()
    except Exception as err:  # noqa: BLE001
        raise ValueError(f"env={path!r}: calling {path.partition(':')[2]}() with no options (to tell a JAX env from "
                         f"a PettingZoo one) failed: {type(err).__name__}: {_one_line(err)}; give every option a "
                         f"default, or use register_env(name, factory, host=...)") from None
    if isinstance(obj, JaxMARLAdapter) or _is_jax_env(obj):
        return "jax"
    if _is_parallel_env(obj):
        _close(obj)
        return "host"
    if callable(obj):
        try:
            inner = obj()
        except Exception as err:  # noqa: BLE001
            raise ValueError(f"env={path!r}: the factory returned a callable ({_describe(obj)}) and calling it "
                             f"failed: {type(err).__name__}: {_one_line(err)}; allowed: {_ALLOWED_OBJECTS}") from None
        if _is_parallel_env(inner):
            _close(inner)
            return "host_ctor"
        raise ValueError(f"env={path!r}: the factory returned a callable whose result is {_describe(inner)}; "
                         f"allowed: {_ALLOWED_OBJECTS}")
    raise ValueError(f"env={path!r}: the factory returned {_describe(obj)}; allowed: {_ALLOWED_OBJECTS}")


def _resolve_path(path: str) -> EnvEntry:
    factory = _import_factory(path)
    kind = _classify_factory(path, factory)
    doc = f"user factory {path}"
    if kind == "jax":
        return EnvEntry(_jax_make(path, factory), doc, ())
    if kind == "host":
        def make(**options):
            _bind(factory, path, options)
            return functools.partial(factory, **options)
        return EnvEntry(make, doc + " (PettingZoo, host path)", (), host=True)
    return EnvEntry(_host_make(path, factory), doc + " (PettingZoo, host path)", (), host=True)


def resolve_env(name: str) -> EnvEntry:
    """The :class:`EnvEntry` of a registered name or of a factory path ``"package.module:factory"``.

    A factory path imports the module and runs the user's code: a class is classified by its base
    (``MultiAgentEnv``/``JaxMARLAdapter`` -> JAX, ``ParallelEnv`` -> host) without being built; any other
    callable is called once with no options and its result classified: a ``MultiAgentEnv`` or adapter -> JAX
    entry; a ``ParallelEnv`` (or anything with ``possible_agents``, ``reset``, ``step``, ``observation_space``,
    ``action_space``) -> host entry whose ``make(**options)`` is ``functools.partial(factory, **options)``;
    a zero-argument callable returning a ``ParallelEnv`` -> host entry whose ``make(**options)`` is
    ``factory(**options)``. The result is cached per path (one probe per process).
    """
    if not isinstance(name, str):
        raise ValueError(f"env={name!r} must be a str; allowed: {', '.join(ENVS)}, or {FACTORY_PATH}")
    if name in ENVS:
        return ENVS[name]
    if ":" in name:
        if name not in _RESOLVED:
            _RESOLVED[name] = _resolve_path(name)
        return _RESOLVED[name]
    raise ValueError(f"env={name!r} is unknown; allowed: {', '.join(ENVS)}, or {FACTORY_PATH}")


def is_host_env(name: str) -> bool:
    """Whether env ``name`` (registered or ``package.module:factory``) trains on the host path."""
    return resolve_env(name).host


def list_envs() -> dict[str, EnvEntry]:
    """Every registered env (built-ins and :func:`register_env` additions): name -> :class:`EnvEntry`."""
    return dict(ENVS)


def make_env(name: str, **options):
    """Build env ``name`` (registered or ``package.module:factory``) with ``options``.

    JAX envs give a :class:`JaxMARLAdapter`; host envs a zero-argument ``ParallelEnv`` constructor. Unknown
    names or options give a one-line ``ValueError``.
    """
    entry = resolve_env(name)
    if "global_state" in options and options["global_state"] not in GLOBAL_STATE_KINDS:
        raise ValueError(f"global_state={options['global_state']!r} is not one of {GLOBAL_STATE_KINDS}")
    try:
        return entry.make(**options)
    except TypeError as err:
        raise ValueError(f"bad option for env={name!r}: {_one_line(err)}") from None

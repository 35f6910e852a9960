"""The environment a config names, built with the options the config implies (one place for that rule)."""
from __future__ import annotations

import json


def env_options(config) -> dict:
    """Env options from a config: ``env_options`` JSON, plus ``map`` (SMAX), ``num_agents`` (scalable envs)
    and ``global_state`` when not ``auto``."""
    opts = json.loads(config.env_options) if config.env_options else {}
    if config.env == "smax":
        opts.setdefault("map", config.map)
    if config.env in ("mpe_spread", "spread"):
        opts.setdefault("num_agents", config.num_agents)
    if config.global_state != "auto":
        opts["global_state"] = config.global_state
    return opts


def build_env(config):
    """The JAX env of ``config`` (a :class:`~trustmarl.envs.JaxMARLAdapter`); a bad env option is a
    :class:`~trustmarl.config.ConfigError` with one line."""
    from trustmarl.config import ConfigError
    from trustmarl.envs import make_env
    try:
        return make_env(config.env, **env_options(config))
    except ValueError as err:
        raise ConfigError(str(err)) from None

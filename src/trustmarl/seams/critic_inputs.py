"""Seam 5: what the critic sees. Layout ``[..., A, feature]``.

* ``local`` — the agent's own observation ⊕ (optionally) its one-hot id: a decentralised critic (IPPO);
* ``global`` — the per-agent global state the environment provides (``Timestep.state``: MAPPO's
  agent-specific state, the world state ⊕ id, or all observations, per the env's ``global_state``).
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp


def with_agent_id(obs: jax.Array, use_id: bool) -> jax.Array:
    """``[o_i, onehot(i)]`` over the agent axis (second to last) when ``use_id``; else ``obs`` unchanged."""
    if not use_id:
        return obs
    A = obs.shape[-2]
    ids = jnp.broadcast_to(jnp.eye(A, dtype=obs.dtype), obs.shape[:-1] + (A,))
    return jnp.concatenate([obs, ids], axis=-1)


def local(obs: jax.Array, state: jax.Array, use_id: bool) -> jax.Array:
    return with_agent_id(obs, use_id)


def global_(obs: jax.Array, state: jax.Array, use_id: bool) -> jax.Array:
    # The env's global state already carries the agent's id (and its own view where agent-specific).
    return state


CRITIC_INPUTS: dict[str, Callable] = {"local": local, "global": global_}


def critic_input_dim(kind: str, obs_dim: int, state_dim: int, num_agents: int, use_id: bool) -> int:
    """Width of the critic's input for ``kind``."""
    if kind == "global":
        return state_dim
    return obs_dim + (num_agents if use_id else 0)

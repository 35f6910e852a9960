"""Seam 5: what the critic sees. Layout ``[..., A, feature]``.

* ``local`` — the agent's own observation ⊕ (optionally) its one-hot id: a decentralised critic (IPPO);
* ``global`` — the per-agent global state the environment provides (``Timestep.state``: MAPPO's
  agent-specific state, the world state ⊕ id, or all observations, per the env's ``global_state``);
* ``attention`` — every agent's observation (⊕ its id), the own one first and the others in index order,
  flattened: the entities of the attention critic (:class:`trustmarl.networks.AttentionTorso`), Li et al.'s
  MA-PPO.
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


def attention(obs: jax.Array, state: jax.Array, use_id: bool) -> jax.Array:
    """``[..., A, O]`` → ``[..., A, A·W]``: row ``i`` is ``x_i ⊕ x_{others in index order}``, ``x_j = o_j`` (⊕
    ``onehot(j)`` when ``use_id``), ``W = O (+ A)``."""
    x = with_agent_id(obs, use_id)
    A = x.shape[-2]
    order = jnp.array([[i] + [j for j in range(A) if j != i] for i in range(A)])  # [A(i), A]
    rows = jnp.take(x, order, axis=-2)  # [..., A(i), A, W]
    return rows.reshape(rows.shape[:-2] + (-1,))


CRITIC_INPUTS: dict[str, Callable] = {"local": local, "global": global_, "attention": attention}


def critic_input_dim(kind: str, obs_dim: int, state_dim: int, num_agents: int, use_id: bool) -> int:
    """Width of the critic's input for ``kind``."""
    if kind == "global":
        return state_dim
    if kind == "attention":
        return num_agents * (obs_dim + (num_agents if use_id else 0))
    return obs_dim + (num_agents if use_id else 0)

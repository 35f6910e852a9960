"""Optimisers per network: Adam after a gradient-norm clip, one per agent for per-agent parameter stacks,
with the learning rate a function of the number of updates done (not of optimiser steps)."""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax


def linear_anneal(lr: float, num_updates: int, anneal: bool):
    """``lr_u = lr · (1 − u/U)`` at update ``u`` of ``U`` (PPO's linear decay), or ``lr`` when not annealed."""
    if not anneal:
        return lambda u: jnp.asarray(lr, jnp.float32)
    return lambda u: lr * (1.0 - u / num_updates)


class AgentOptimiser(NamedTuple):
    """``clip_by_global_norm → scale_by_adam`` then ``θ ← θ − lr_u · update``.

    ``per_agent``: parameters are stacked on a leading agent axis; each agent has its own Adam moments and
    its own global-norm clip (``vmap`` over the stack), and ``agents`` ``[A]`` bool selects whose
    parameters and optimiser state change (the others keep theirs exactly). Shared parameters have one
    state and one clip; ``agents`` must then select everyone (a sequential order needs per-agent stacks).
    With shared parameters the arithmetic equals ``optax.chain(clip_by_global_norm, adam(schedule))``
    whose schedule counts optimiser steps and divides by the steps per update.
    """

    tx: optax.GradientTransformation
    per_agent: bool
    lr: Any  # callable: update count -> learning rate

    @staticmethod
    def make(max_grad_norm: float, adam_eps: float, lr_fn, per_agent: bool) -> "AgentOptimiser":
        tx = optax.chain(optax.clip_by_global_norm(max_grad_norm), optax.scale_by_adam(eps=adam_eps))
        return AgentOptimiser(tx, per_agent, lr_fn)

    def init(self, params):
        return jax.vmap(self.tx.init)(params) if self.per_agent else self.tx.init(params)

    def step(self, params, opt_state, grads, update_count, agents):
        step_size = -1 * self.lr(update_count)  # optax's scale_by_learning_rate: m · lr with m = −1
        if not self.per_agent:
            upd, opt_state = self.tx.update(grads, opt_state, params)
            upd = jax.tree.map(lambda g: jnp.array(step_size, dtype=g.dtype) * g, upd)
            return optax.apply_updates(params, upd), opt_state
        upd, new_opt = jax.vmap(self.tx.update)(grads, opt_state, params)
        upd = jax.tree.map(lambda g: jnp.array(step_size, dtype=g.dtype) * g, upd)
        new_params = optax.apply_updates(params, upd)

        def pick(new, old):
            sel = agents.reshape((-1,) + (1,) * (new.ndim - 1)) if new.ndim else jnp.any(agents)
            return jnp.where(sel, new, old)

        return jax.tree.map(pick, new_params, params), jax.tree.map(pick, new_opt, opt_state)

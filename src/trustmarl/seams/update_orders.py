"""Seam 4: the order in which agents (or batches of agents) are updated within one iteration.

An update order is a factory ``order(pieces) -> update`` whose result has the seam's signature::

    update(learner, batch, key) -> (learner, (minibatch_metrics, trust_region_measures))

``pieces`` (:class:`UpdatePieces`) is what every order may use, supplied by the trainer:

* ``actor_step(learner, minibatch, factor, agents)`` — one gradient step of the policy loss, with
  ``factor`` ``[..., A]`` weighting each sample's surrogate (the preceding agents' ratio product of a
  sequential order; ones for the simultaneous order) and ``agents`` ``[A]`` bool choosing whose
  parameters move. With per-agent parameter stacks every agent has its own optimiser state and its own
  gradient-norm clip, so a step that selects one agent leaves every other agent's parameters and
  optimiser state untouched;
* ``critic_step(learner, minibatch)`` — one gradient step of the critic (and the value normaliser);
* ``minibatches(batch, key)`` — the batch shuffled and split on a leading minibatch axis;
* ``measure(learner, batch, metrics)`` — the epoch's trust-region measurements (or None);
* ``epochs`` and ``num_agents``.

The learning rate is not the order's business: it is a function of the learner's update count, so
stepping agents one after another cannot advance it (the schedule counts updates, not optimiser steps).

``simultaneous`` (IPPO, MAPPO, JR-PPO): every agent steps on every minibatch, factor 1, critic stepped
with the actors. Orders that update agents one at a time (HAPPO's random permutation, A2PO's greedy
order, B2MAPO's batches) take the order as data and ``lax.scan`` over it with the same pieces.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp


class UpdatePieces(NamedTuple):
    actor_step: Callable[[Any, Any, jax.Array, jax.Array], tuple[Any, dict]]
    critic_step: Callable[[Any, Any], tuple[Any, dict]]
    minibatches: Callable[[Any, jax.Array], Any]
    measure: Callable[[Any, Any, dict], tuple[Any, dict]]
    epochs: int
    num_agents: int


def simultaneous(p: UpdatePieces):
    """All agents take one gradient step on each minibatch, for ``epochs`` passes (PPO's loop)::

        for epoch:  for minibatch:  θ_i ← θ_i + step(∇ L_i(θ_i)) for every agent i at once;  critic step
    """
    everyone = jnp.ones((p.num_agents,), bool)

    def update(learner, batch, key):
        def epoch(learner, k):
            mbs = p.minibatches(batch, k)

            def step(learner, mb):
                learner, am = p.actor_step(learner, mb, jnp.ones_like(mb.adv), everyone)
                learner, cm = p.critic_step(learner, mb)
                return learner, {**am, **cm}

            learner, metrics = jax.lax.scan(step, learner, mbs)
            tr, metrics = p.measure(learner, batch, metrics)
            return learner, (metrics, tr)

        return jax.lax.scan(epoch, learner, jax.random.split(key, p.epochs))

    return update


UPDATE_ORDERS: dict[str, Callable[[UpdatePieces], Callable]] = {"simultaneous": simultaneous}

"""The trainer protocol: everything the run loop, the host path, evaluation and the CLI may use of a trainer.

A trainer is built by :func:`trustmarl.trainers.make_train` from a config (the algorithm's family picks
the class) and exposes:

=========================  ==============================================================================
``config``, ``spec``       the validated :class:`~trustmarl.config.Config` and the env's
                           :class:`~trustmarl.envs.EnvSpec`
``derived``                the typed derived values (:class:`~trustmarl.config.Derived`)
``num_agents``,            agent count; updates in the whole budget
``num_updates``
``family``                 ``"on_policy"`` (a future off-policy trainer adds its own)
``metric_schema``          ``{name: MetricSpec}``: every metric an update reports, its shape kind and meaning
``init(rng)``              a fresh train state (a pytree: checkpointed whole by the run loop)
``run_chunk(state, n)``    ``n`` updates as one pure, jittable function → ``(state, metrics [n, ...])``
``__call__(rng)``          the whole budget as one pure function (purejaxrl's ``train(rng)``)
``init_hidden(E)``         the policy's recurrent state for ``E`` envs
``draw_noise(key, lead)``  sampling noise for ``act``
``act(params, hidden,``    the one policy step used by the rollout, the host loop and evaluation
``obs, avail, reset,``
``noise, greedy)``
``env_action(a)``          the action as the env takes it (Gaussian samples clipped to the box)
``policy_params(state)``   the actor parameters in a train state
=========================  ==============================================================================

An on-policy trainer also offers ``init_learner`` and ``learn`` (the learning step after a rollout),
which the host path uses with rollouts collected from Python environments.
"""
from __future__ import annotations

from typing import Any, NamedTuple, Protocol, runtime_checkable

import jax


class MetricSpec(NamedTuple):
    """One entry of a trainer's metric schema. ``kind``: ``scalar``, ``agent`` ([A]), ``epoch`` ([epochs, ...])."""

    kind: str
    doc: str


@runtime_checkable
class Trainer(Protocol):
    config: Any
    spec: Any
    derived: Any
    num_agents: int
    num_updates: int
    family: str
    metric_schema: dict

    def init(self, rng: jax.Array) -> Any: ...

    def run_chunk(self, state: Any, num_updates: int) -> tuple[Any, dict]: ...

    def __call__(self, rng: jax.Array) -> tuple[Any, dict]: ...

    def init_hidden(self, num_envs: int) -> jax.Array: ...

    def draw_noise(self, key: jax.Array, lead: tuple) -> jax.Array: ...

    def act(self, actor_params, hidden, obs, avail, reset, noise, greedy: bool = False) -> Any: ...

    def env_action(self, action: jax.Array) -> jax.Array: ...

    def policy_params(self, state: Any) -> Any: ...

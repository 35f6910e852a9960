"""What an off-policy algorithm injects into the shared trainer (:mod:`trustmarl.trainers.off_policy`).

The trainer owns the skeleton of one gradient step — sample a batch, the rule's ``before_step`` (MAMT's
opponent models, decomposition network and trust regions), the critic step on ``Σ_i E[(Q_i(o, a) − y_i)²]``
with the rule's target ``y``, the actor step on the rule's loss, Polyak updates of the targets, the rule's
``after_step`` (MAMD's old-policy copy) — and every network, optimiser, buffer and metric. A rule is a few
pure functions of ``(trainer, learner, batch, key)``; an algorithm module builds one and registers it under
the algorithm's name (``register_rule``), as on-policy algorithms register seam choices.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional


class OffPolicyRule(NamedTuple):
    """One off-policy algorithm's math.

    * ``critic`` — ``"mlp"`` (MADDPG's concatenation critic) or ``"attention"`` (MAAC's);
    * ``target`` — ``(trainer, learner, batch, key) → y [B, A]``, the critic's regression target;
    * ``actor_loss`` — ``(trainer, actor_params, learner, batch, key) → (loss, metrics)``;
    * ``init_extra`` — ``(trainer, key, actor_params) → pytree``, the rule's own learner state (``learner.extra``);
    * ``before_step`` — ``(trainer, learner, batch, key) → (learner, metrics)``, run before the critic step;
    * ``after_step`` — ``(trainer, learner) → learner``, run after the target update;
    * ``metric_schema`` — ``{name: (kind, doc)}`` (a MetricSpec's fields) of the metrics the rule adds (``before_step``'s and the actor
      loss's beyond the trainer's own);
    * ``continuous`` — the action head for continuous-action envs (:mod:`trustmarl.offpolicy.heads`):
      ``"deterministic"`` (MADDPG), ``"squashed_gaussian"`` (the soft algorithms), or None (discrete only).
    """

    critic: str
    target: Callable
    actor_loss: Callable
    init_extra: Callable = lambda trainer, key, actor_params: ()
    before_step: Optional[Callable] = None
    after_step: Optional[Callable] = None
    metric_schema: Any = None
    continuous: Optional[str] = None


RULES: dict[str, OffPolicyRule] = {}


def register_rule(name: str, rule: OffPolicyRule) -> OffPolicyRule:
    if rule.critic not in ("mlp", "attention"):
        raise ValueError(f"critic={rule.critic!r} is not one of mlp, attention")
    if rule.continuous not in (None, "deterministic", "squashed_gaussian"):
        raise ValueError(f"continuous={rule.continuous!r} is not one of None, deterministic, squashed_gaussian")
    RULES[name] = rule
    return rule

"""What an algorithm is in trustmarl: a choice at each of the five seams, plus its defaults.

The seams (where cooperative trust-region methods differ, and nowhere else):

1. ``advantage``    — the advantage estimator (``"gae"``: :func:`trustmarl.losses.gae`).
2. ``ratio``        — the probability ratio: ``"independent"`` per agent (eq. 4 of Sun et al.) or
                      ``"joint"``, the product over agents (JR-PPO, Algorithm 1).
3. ``surrogate``    — the surrogate and its clipping: PPO's clipped surrogate with bounds
                      ``clip_kind`` ∈ {symmetric, multiplicative}, ``ε`` given directly or as ``α/N``.
4. ``update_order`` — the order agents are updated in: ``"simultaneous"`` (all agents, one gradient step).
5. ``critic_input`` — what the critic sees: ``"local"`` observation (IPPO) or ``"global"`` state (MAPPO).

Seams 2, 3 and 5 are :class:`trustmarl.config.Config` fields, so every algorithm can be varied along
them from the command line; an algorithm fixes their defaults.
"""
from __future__ import annotations

import dataclasses
from typing import Any

ADVANTAGE_ESTIMATORS = ("gae",)
UPDATE_ORDERS = ("simultaneous",)


@dataclasses.dataclass(frozen=True)
class Algorithm:
    name: str
    summary: str
    reference: str
    config_defaults: dict[str, Any]
    advantage: str = "gae"
    update_order: str = "simultaneous"

    def __post_init__(self):
        if self.advantage not in ADVANTAGE_ESTIMATORS:
            raise ValueError(f"advantage={self.advantage!r} is not one of {ADVANTAGE_ESTIMATORS}")
        if self.update_order not in UPDATE_ORDERS:
            raise ValueError(f"update_order={self.update_order!r} is not one of {UPDATE_ORDERS}")

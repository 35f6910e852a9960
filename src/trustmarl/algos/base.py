"""What an algorithm is in trustmarl: a declaration of its family, one choice per seam, and its defaults.

The seams (where cooperative trust-region methods differ, and nowhere else; :mod:`trustmarl.seams`):

1. ``advantage``    — the advantage estimator (``ADVANTAGES``: ``"gae"``).
2. ``ratio``        — the probability ratio: ``"independent"`` per agent (eq. 4 of Sun et al.) or
                      ``"joint"``, the product over agents (JR-PPO, Algorithm 1). A config field, so any
                      PPO-family run can switch it; the algorithm sets the default.
3. ``surrogate``    — the policy objective of that ratio kind (``OBJECTIVES``), PPO's clipped surrogate with
                      bounds ``clip_kind`` ∈ {symmetric, multiplicative}, ``ε`` given directly or as ``α/N``.
4. ``update_order`` — the order agents are updated in (``UPDATE_ORDERS``: ``"simultaneous"``).
5. ``critic_input`` — what the critic sees: ``"local"`` observation (IPPO) or ``"global"`` state (MAPPO);
                      a config field, defaulted by the algorithm.

``family`` picks the trainer (``trustmarl.trainers.TRAINERS``) and the config sections the algorithm reads
(``trustmarl.config.FAMILY_SECTIONS``): a key from another family's section is a one-line error.

Adding an algorithm is one file in this folder that builds an :class:`Algorithm` (and registers any math of
its own with the seam registries) plus one line in ``algos/__init__.py`` — see docs/architecture.md.
"""
from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class Algorithm:
    name: str
    summary: str
    reference: str
    config_defaults: dict[str, Any]
    family: str = "on_policy"
    advantage: str = "gae"
    update_order: str = "simultaneous"

    def __post_init__(self):
        from trustmarl.seams.advantages import ADVANTAGES
        from trustmarl.seams.update_orders import UPDATE_ORDERS
        if self.advantage not in ADVANTAGES:
            raise ValueError(f"advantage={self.advantage!r} is not one of {', '.join(ADVANTAGES)}")
        if self.update_order not in UPDATE_ORDERS:
            raise ValueError(f"update_order={self.update_order!r} is not one of {', '.join(UPDATE_ORDERS)}")

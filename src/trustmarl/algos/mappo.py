"""MAPPO: PPO with independent ratios and a centralised critic (Yu et al. 2022; Sun et al. eq. 4).

The critic sees the per-agent global state (agent-specific state with death masking on SMAX). The
implementation tricks of the MAPPO paper are switchable config fields; the defaults here follow the
reference implementation (ALGORITHMS.md): value normalisation, value clipping, Huber loss (δ = 10),
advantage normalisation over active entries, agent id in the input, active masks, input LayerNorm.
"""
from trustmarl.algos.base import Algorithm

MAPPO = Algorithm(
    name="mappo",
    summary="independent ratios, centralised critic on the global state (+ MAPPO tricks)",
    reference="Yu et al. 2022; Sun et al. 2022, eq. 4",
    config_defaults={"ratio": "independent", "critic_input": "global", "value_norm": True,
                     "value_clip": True, "huber_delta": 10.0, "adv_norm": True, "agent_id": True,
                     "use_active_masks": True, "layer_norm_input": True},
)

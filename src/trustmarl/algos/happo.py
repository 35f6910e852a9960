"""HAPPO: heterogeneous-agent PPO (Kuba et al. 2022, Algorithm 1; HARL's ``on_policy_ha_runner``).

Agents are updated one at a time in a fresh uniformly random order each iteration (update order
``random_permutation``). Agent ``i_m`` maximises

    E[ M^{i_{1:m−1}} · min(r_{i_m} Â, clip(r_{i_m}, 1 ± ε) Â) ],    M^{i_{1:m−1}} = Π_{j<m} π̃_{i_j}(a|o)/π_{i_j}(a|o)

(eq. 11): ``M`` is the product of the ratios of the agents already updated in this iteration, unclipped,
a weight outside the clipped surrogate (``preceding_factor=outer``). Each agent runs the full
``update_epochs`` of PPO on its own; the critic is trained once, after every actor. Defaults follow HARL:
no parameter sharing (per-agent stacks, each with its own Adam state and gradient clip), the MAPPO tricks
(value normalisation, value clipping, Huber loss, input LayerNorm), a centralised critic on the global state.

Choice documented: a group's loss is normalised by every active entry of the minibatch (its share of the
simultaneous loss), where HARL divides by the agent's own active entries; the two differ by the factor
N·(agent's share of active entries), which Adam's scale invariance removes except through the gradient-norm
clip and ε. This makes HAPPO with the factor fixed at 1 exactly MAPPO with per-agent parameters.
"""
from trustmarl.algos.base import Algorithm

HAPPO = Algorithm(
    name="happo",
    summary="agents one at a time in random order, surrogate weighted by the preceding agents' ratio product",
    reference="Kuba et al. 2022 (ICLR), Algorithm 1 and eq. 11",
    update_order="random_permutation",
    config_defaults={"ratio": "independent", "critic_input": "global", "share_params": False,
                     "preceding_factor": "outer", "value_norm": True, "value_clip": True, "huber_delta": 10.0,
                     "adv_norm": True, "agent_id": False, "use_active_masks": True, "layer_norm_input": True},
)

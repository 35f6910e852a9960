"""JR-PPO: joint-ratio PPO (Sun et al. 2022, Algorithm 1).

The ratio is the product of the agents' ratios at one env step, ``r = Π_i π̃_i(a_i|o_i)/π_i(a_i|o_i)``,
clipped jointly, ``L = E[min(r Â, clip(r, 1−ε, 1+ε) Â)]`` with the centralised advantage ``Â`` — here the
mean over active agents of the per-agent advantages of the centralised critic (with a shared team
reward and the per-agent global state these coincide up to critic error). The clip range is best set as
a total trust region ``clip_alpha`` (ε = α/N, §6.2).
"""
from trustmarl.algos.base import Algorithm

JRPPO = Algorithm(
    name="jrppo",
    summary="joint ratio (product over agents) clipped jointly, centralised critic",
    reference="Sun et al. 2022, Algorithm 1",
    config_defaults={"ratio": "joint", "critic_input": "global", "value_norm": True, "value_clip": True,
                     "huber_delta": 10.0, "adv_norm": True, "agent_id": True, "use_active_masks": True,
                     "layer_norm_input": True},
)

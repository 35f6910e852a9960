"""IPPO: independent PPO per agent (de Witt et al. 2020; Sun et al. eq. 4).

Each agent maximises ``E[min(r_i Â_i, clip(r_i, 1−ε, 1+ε) Â_i)]`` with its own ratio
``r_i = π̃_i(a_i|o_i)/π_i(a_i|o_i)`` and a critic on its *local* observation.
"""
from trustmarl.algos.base import Algorithm

IPPO = Algorithm(
    name="ippo",
    summary="independent ratios, decentralised critic on local observations",
    reference="Sun et al. 2022, eq. 4; de Witt et al. 2020",
    config_defaults={"ratio": "independent", "critic_input": "local"},
)

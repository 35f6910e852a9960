"""JR-PPO: joint-ratio PPO (Sun et al. 2022, Algorithm 1).

The ratio is the product of the agents' ratios at one env step, ``r = Π_i π̃_i(a_i|o_i)/π_i(a_i|o_i)``,
clipped jointly, ``L = E[min(r Â, clip(r, 1−ε, 1+ε) Â)]`` with the centralised advantage ``Â`` — here the
mean over active agents of the per-agent advantages of the centralised critic
(:func:`trustmarl.seams.advantages.team_advantage`).

**Clip range.** The joint ratio takes ``clip_eps`` itself, with no division by the number of agents:

* Algorithm 1 and eq. 7 clip the joint ratio to ``[1 − ε, 1 + ε]`` and say nothing about N. The joint ratio
  is the ratio of one policy, the joint one, so Theorem 5.3 applied to it bounds the joint TV by ε — the α of
  Theorem 3.1 (TRPO's bound on the joint policy) — directly.
* §6.2's ``α/N`` (eq. 10) is a different construction: it splits Theorem 4.3's α = Σ_i E_s D_TV(π_i, π̃_i)
  into N per-agent shares so that N *independent* ratios, each clipped to ``1 ± α/N``, add up to α.
  Dividing the joint ratio's ε by N would shrink the joint trust region to ε/N (0.05 with 10 agents, 0.0185
  with 27), which no experiment of the paper does.
* A.6 (Figs. 9–10) "appl[ies] the same clipping values to these two types of clipping", ε ∈ {0.1, 0.3,
  0.5}, and finds joint clipping "consistently" better at ε = 0.1 with 10 and 27 agents.

So the (jrppo, smax) preset sets ``clip_eps=0.1``, and ``clip_alpha`` together with ``ratio=joint`` is a
configuration error (:class:`trustmarl.config.ConfigError`) rather than a silent ε = α/N on the joint ratio.

This module owns the joint objective and registers it as the policy objective of ``ratio=joint``, so any
PPO-family run can use it (``trustmarl train algo=mappo ratio=joint``).
"""
import jax
import jax.numpy as jnp

from trustmarl.algos.base import Algorithm
from trustmarl.seams.surrogates import ObjectiveInputs, clipped_flags, masked_share, register_objective
from trustmarl.trust_region import clipped_surrogate, joint_log_ratio


def joint_objective(x: ObjectiveInputs) -> tuple[jax.Array, jax.Array]:
    """Sun et al. eq. 7 / Algorithm 1, one term per joint step (env step) with an agent in ``mask``::

        r = g · exp(Σ_{i in mask} (log π̃_i − log π_i)),   L = −E_t[ M · min(r Â, clip(r, low, high) Â) ]

    The joint ratio runs over the agents being optimised (all active agents in the simultaneous order; a
    batch's agents in a batch-by-batch order, whose preceding batches enter through ``g``). ``M`` and ``g``
    are read from the first agent of each step (one number per joint step; 1 in the simultaneous order).
    The mean is over steps with any agent in ``mask``, normalised by the steps with any active agent. The
    clip flag is the step's, broadcast to its agents.
    """
    joint_lr = joint_log_ratio(x.logp, x.logp_old, x.mask)
    ratio = jnp.exp(joint_lr)
    if x.inner is not None:
        ratio = ratio * x.inner[..., 0]
    step_mask = jnp.any(x.mask, axis=-1)
    step_all = step_mask if x.mask_all is None else jnp.any(x.mask_all, axis=-1)
    surr = x.factor[..., 0] * clipped_surrogate(ratio, x.adv_joint, x.low, x.high)
    clipped = clipped_flags(ratio, x.adv_joint, x.low, x.high)
    return -masked_share(surr, step_mask, step_all), jnp.broadcast_to(clipped[..., None], x.mask.shape)


register_objective("joint", joint_objective)

JRPPO = Algorithm(
    name="jrppo",
    summary="joint ratio (product over agents) clipped jointly, centralised critic",
    reference="Sun et al. 2022, Algorithm 1",
    config_defaults={"ratio": "joint", "critic_input": "global", "value_norm": True, "value_clip": True,
                     "huber_delta": 10.0, "adv_norm": True, "agent_id": True, "use_active_masks": True,
                     "layer_norm_input": True},
)

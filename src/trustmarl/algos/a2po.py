"""A2PO: agent-by-agent policy optimisation (Wang et al. 2023, ICLR; reference code xihuai18/A2PO-ICLR2023).

Agents are updated one at a time in A2PO's *semi-greedy* order (update order ``semi_greedy``): positions
1, 3, 5, ... take the remaining agent with the largest ``mean |Â_i/V_i|``, the others a uniformly random
remaining agent. Agent ``k`` of the order maximises the clipped surrogate of its ratio times the clipped joint
ratio of the agents before it (``preceding_factor=clipped_inner``)::

    L_k = E[ min(r_k·g Â^k, clip(r_k·g, 1 ± ε_k) Â^k) ],   g = clip(Π_{j<k} r_j, 1 ± ε_k/2)

with the per-position clip ``ε_k = ε·((k/n)·w + 1 − w)``, ``w = 0.5`` (``clip_schedule_weight``), and the
off-policy-corrected advantage ``Â^k`` of B2MAPO's eq. 1 / A2PO's GAE-trace (``trace_correction``): TD errors
of the centralised critic summed with weights ``γλ·min(1, Π_{j<k} r_j)`` per step.

Choices documented:
* "λ applied twice": A2PO's code multiplies ``(γλ)^{l−t}`` by ``Π λ·min(ρ, 1)``, so λ enters twice per step
  and even the first agent's advantage is a GAE with λ². trustmarl follows eq. 1 (λ once; the first agent's
  advantage is plain GAE) and offers the code's reading as ``trace_lambda_twice=true``.
* The preceding agents' clip is ``ε_k/2`` (B2MAPO eq. 12's form, applied at every position); the reference's
  SMAC configs use ``ε/2`` with the base ε. ``preceding_clip`` scales it.
* Scores use the un-normalised advantage and value; ``|V|`` is floored at 1e-6.
* The critic is trained after the actors on the rollout's λ-returns (not re-estimated per agent).
"""
from trustmarl.algos.base import Algorithm

A2PO = Algorithm(
    name="a2po",
    summary="agents one at a time in a semi-greedy order, clipped preceding ratio, off-policy-corrected advantage",
    reference="Wang et al. 2023 (ICLR), A2PO; Zhang et al. 2024 (B2MAPO) eq. 1",
    update_order="semi_greedy",
    config_defaults={"ratio": "independent", "critic_input": "global", "share_params": True,
                     "preceding_factor": "clipped_inner", "preceding_clip": 0.5, "clip_schedule_weight": 0.5,
                     "trace_correction": True, "value_norm": True, "value_clip": True, "huber_delta": 10.0,
                     "adv_norm": True, "agent_id": True, "use_active_masks": True, "layer_norm_input": True},
)

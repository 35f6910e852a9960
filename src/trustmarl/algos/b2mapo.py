"""B2MAPO: batch-by-batch multi-agent policy optimisation, DAG-based (Zhang et al. 2024, §3–4).

Upper layer (:mod:`trustmarl.seams.dag`): a DAG generator — attention over the agents' GRU-encoded
trajectories (eq. 5, threshold δ = ``dag_threshold``), an agent ordering drawn from Plackett–Luce scores that
keeps the edges going forward, the DAG's topological levels as batches (at most ``num_batches``) — trained by
PPO with its own critic on ``T``-step returns (eqs. 6–8). Lower layer: the batches are updated one after
another (update order ``batches``, ``batch_partition=dag``); batch ``b_k`` maximises (eqs. 10–12)::

    E[ min(l Â, clip(l, 1 ± ε) Â) ],   l = (π̃^{b_k}/π^{b_k}) · g,   g = clip(Π_{b_j before b_k} π̃^{b_j}/π^{b_j}, 1 ± ε/2)

(``preceding_factor=clipped_inner``, ``preceding_clip=0.5``) with the off-policy-corrected advantage of eq. 1
(``trace_correction``: truncated weights ``min(1, ρ)`` of the batches already updated). The critic is trained
after the actors. π^i reads the actions of the agents in preceding batches (§4.2, ``preceding_actions``): the
rollout draws the joint action batch level by batch level. So does V^i (§4.2: "V^i encodes the behavior sequences
a^{j∈B_k} of preceding batch agents and historical trajectory τ^i"; ``preceding_values``): the TD errors of
eq. 1 for agent i ∈ b_k are δ^i_t = r_t + γV^i(s_{t+1}, a^{B_k}_{t+1}) − V^i(s_t, a^{B_k}_t), and states
without sampled actions (the rollout's last, pre-reset final states) take V^i(s, 0), trained as the state's
value (:func:`trustmarl.seams.dag.preceding_value_loss`). The derived decentralised policy π_ind (MAPPO's
network, own observation only) is fitted to π by eq. 13's KL during π's update and is the policy evaluation
and execution use (``trainer.policy_params``); rollouts use π.

Defaults: parameter sharing and the MAPPO tricks, as the paper runs every algorithm on SMAC (§5); 3 batches
at most; ``clip_schedule_weight=0`` (one ε for every batch: eq. 10's ε^{b_k} is given no schedule).
π_ind's schedule (eq. 13; the paper trains π and π_ind "in parallel" and minimises their KL "periodically",
without a schedule): ``ind_during`` — one eq. 13 step of π_ind fused into every minibatch step of π, on π's
outputs of that step (stop-gradient'ed, the same forward and backward pass; π's own step is unchanged) — and
no passes after the update (``ind_epochs=0``), at ``ind_lr_scale=1``. The previous default, 10 passes after
the update (``ind_during=false ind_epochs=10``), remains an option: it fits π_ind to the updated π, where the
fused steps track π one step behind; it costs a pass of π and ``ind_epochs × num_minibatches`` π_ind steps
per update (20 in bench_orders' configuration), the fused schedule one π_ind step per actor step
(``update_epochs × num_minibatches`` per non-empty batch: 4 there). On MPE spread (3 seeds, 120k steps) and
SMAX 8m_vs_9m (zhang2024-smax at budget 0.005, 3 seeds) the fused schedule's π_ind returned within the seed
spread of the 10 passes' π_ind, with eq. 13's KL lower (docs/results.md, "B2MAPO's training time").

Not implemented: π_ind is trained by eq. 13 only (the paper also updates it by MAPPO); see
:mod:`trustmarl.seams.dag` for why.
"""
from trustmarl.algos.base import Algorithm

B2MAPO = Algorithm(
    name="b2mapo",
    summary="DAG batches from a PPO-trained attention generator, batch-by-batch update, distilled pi_ind acts",
    reference="Zhang et al. 2024 (B2MAPO), §3-4, eqs. 1, 5-13",
    update_order="batches",
    config_defaults={"ratio": "independent", "critic_input": "global", "share_params": True,
                     "batch_partition": "dag", "num_batches": 3, "preceding_actions": True, "preceding_values": True,
                     "ind_during": True, "ind_epochs": 0, "preceding_factor": "clipped_inner",
                     "preceding_clip": 0.5, "clip_schedule_weight": 0.0, "trace_correction": True,
                     "value_norm": True, "value_clip": True, "huber_delta": 10.0, "adv_norm": True,
                     "agent_id": True, "use_active_masks": True, "layer_norm_input": True},
)

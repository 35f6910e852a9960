"""MA-PPO as Li et al. (MAMT paper) use it as a baseline: MAPPO (Yu et al. 2021, the zoeyuchao/mappo code they
link) with a MAAC-style attention critic — so not a new trainer but MAPPO's seams with one other critic input.

Relation to trustmarl's MAPPO (:mod:`.mappo`): the same on-policy trainer, independent ratios, PPO's clipped
surrogate, simultaneous updates, GAE, and MAPPO's tricks; only seam 5 differs: ``critic_input=attention``
(:func:`trustmarl.seams.critic_inputs.attention`), where each agent's critic reads every agent's observation
(own first) through :class:`trustmarl.networks.AttentionTorso` — MAAC's selector/key/value attention over the
other agents (Iqbal & Sha 2019, §3.2) with observations in place of observation-action pairs, since a PPO
critic is a state value — instead of the env's global state through an MLP. ``algo=mappo
critic_input=attention`` with Table 6's keys is the same run.

Table 6 ("Default settings of MAPPO used in experiments") as defaults: 12 envs; 4 critic attention heads;
Huber value loss, δ = 10; GAE λ 0.95; γ 0.99; Adam 1e-3, ε 1e-7, no learning-rate decay; no L2; gradient
clip 10 for actor and critic; feature normalisation (input LayerNorm, here per observation entity in the
critic). Read where Table 6 does not map one to one:

* "batch size 4096": 12 envs × 342 steps = 4104 transitions per update (the smallest whole number of steps of
  12 envs reaching 4096);
* "use reward normalization": trustmarl's on-policy family has no reward normaliser; MAPPO's ValueNorm
  (``value_norm``, the running normalisation of value targets the MAPPO code enables by default) is on;
* the paper's text says "MA-PPO's policy network also uses an attention mechanism similar to MAAC", while
  Table 6 lists critic attention heads only; the policy here stays MAPPO's decentralised MLP on the own
  observation (a policy attending over other agents' observations would need them at execution time).
"""
from trustmarl.algos.base import Algorithm
from trustmarl.algos.mappo import MAPPO

MA_PPO = Algorithm(
    name="ma_ppo",
    summary="MAPPO with a MAAC-style attention critic over every agent's observation (Li et al.'s MA-PPO)",
    reference="Li et al. (MAMT paper) §4 and Table 6; Yu et al. 2021; Iqbal & Sha 2019 §3.2",
    config_defaults={**MAPPO.config_defaults, "critic_input": "attention", "attention_heads": 4,
                     "num_envs": 12, "rollout_length": 342, "huber_delta": 10.0, "gae_lambda": 0.95,
                     "gamma": 0.99, "lr": 1e-3, "adam_eps": 1e-7, "anneal_lr": False, "max_grad_norm": 10.0,
                     "value_norm": True, "layer_norm_input": True},
)

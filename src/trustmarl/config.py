"""Typed, documented, validated training configuration.

A :class:`Config` is built in layers, each overriding the last::

    Config defaults  <  algorithm defaults (trustmarl.algos)  <  preset for (algo, env)  <  user key=value

and is validated once, at construction: an unknown key or a bad value raises :class:`ConfigError` with
one line naming the key, the value and what is allowed. Derived quantities (updates, batch sizes, the
clip range when given as a total trust region α) are computed once, in :meth:`Config.derived`.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import math
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple


class ConfigError(ValueError):
    """A bad configuration key or value; the message is one line."""


def _f(default, doc: str, choices: tuple | None = None, low: float | None = None, high: float | None = None,
       low_open: bool = False, section: str = "common"):
    return field(default=default, metadata={"doc": doc, "choices": choices, "low": low, "high": high,
                                            "low_open": low_open, "section": section})


# Which config sections each algorithm family reads ("common" is everyone's). A key of a section the chosen
# algorithm's family does not read is an error, so a setting can never be silently ignored.
FAMILY_SECTIONS: dict[str, tuple[str, ...]] = {"on_policy": ("common", "on_policy"),
                                             "off_policy": ("common", "off_policy")}


class Derived(NamedTuple):
    """Values computed once from a config and the env's agent count (:meth:`Config.derived`)."""

    steps_per_update: int  # env steps of one update: num_envs * rollout_length
    num_updates: int  # updates in the budget: total_env_steps // steps_per_update (at least 1)
    clip_eps: float  # the clip range in force: clip_alpha / N when clip_alpha > 0, else clip_eps
    value_clip_eps: float  # value clip range: value_clip_eps, or clip_eps when 0
    critic_lr: float  # critic learning rate: critic_lr, or lr when 0
    env_steps: int  # env steps actually run: num_updates * steps_per_update


@dataclass(frozen=True)
class Config:
    # --- what to train ----------------------------------------------------------------------------------
    algo: str = _f("mappo", "algorithm name (trustmarl list shows them)")
    env: str = _f("mpe_spread", "environment name (trustmarl list shows them)")
    map: str = _f("3m", "SMAX map (env=smax only)")
    num_agents: int = _f(3, "number of agents for scalable envs (mpe_spread, spread)", low=1)
    env_options: str = _f("", "extra env options as JSON, e.g. '{\"reward_structure\": \"mix\"}'")
    global_state: str = _f("auto", "critic state per agent: auto (env default), agent_specific, env, concat_obs",
                           choices=("auto", "agent_specific", "env", "concat_obs"))
    # --- budget and rollout -------------------------------------------------------------------------------
    seed: int = _f(0, "PRNG seed of the first run; seed i of num_seeds uses a key split from it", low=0,
                   high=2**32 - 1)
    num_seeds: int = _f(1, "independent runs vmapped together in one jitted program", low=1)
    total_env_steps: int = _f(300_000, "environment steps (all agents of one env stepping once = 1)", low=1)
    num_envs: int = _f(16, "parallel environments per seed", low=1)
    rollout_length: int = _f(128, "steps per environment per update", low=1, section="on_policy")
    # --- optimisation -------------------------------------------------------------------------------------
    update_epochs: int = _f(4, "passes over each rollout", low=1, section="on_policy")
    num_minibatches: int = _f(4, "minibatches per epoch (over env-steps for FF, over envs for GRU)", low=1, section="on_policy")
    lr: float = _f(2.5e-4, "actor learning rate (Adam)", low=0, low_open=True)
    critic_lr: float = _f(0.0, "critic learning rate; 0 means the same as lr", low=0)
    anneal_lr: bool = _f(True, "decay learning rates linearly to 0 over training")
    max_grad_norm: float = _f(0.5, "global gradient-norm clip, actor and critic apart", low=0, low_open=True)
    adam_eps: float = _f(1e-5, "Adam epsilon", low=0, low_open=True)
    gamma: float = _f(0.99, "discount", low=0, high=1)
    gae_lambda: float = _f(0.95, "GAE lambda", low=0, high=1, section="on_policy")
    ent_coef: float = _f(0.01, "entropy bonus coefficient", low=0, section="on_policy")
    vf_coef: float = _f(0.5, "value-loss coefficient", low=0, section="on_policy")
    # --- trust region (seams: ratio, surrogate/clipping) ---------------------------------------------------
    ratio: str = _f("independent", "probability ratio and its policy objective: independent (IPPO/MAPPO, eq. 4 "
                    "of Sun et al.), joint (JR-PPO, Algorithm 1), or one an algorithm module registers "
                    "(trustmarl.seams.surrogates.OBJECTIVES)", section="on_policy")
    clip_eps: float = _f(0.2, "clip range epsilon of the surrogate (ignored when clip_alpha > 0; setting it "
                         "drops a preset's clip_alpha); a symmetric "
                         "range with epsilon >= 1 has a lower bound <= 0, which never binds",
                         low=0, low_open=True, section="on_policy")
    clip_alpha: float = _f(0.0, "if > 0, total trust region alpha shared by N agents' independent ratios: "
                           "epsilon = alpha/N (Sun et al. §6.2); an error with ratio=joint, whose joint ratio "
                           "takes clip_eps itself (Algorithm 1)", low=0, section="on_policy")
    clip_kind: str = _f("symmetric", "ratio bound: symmetric [1-e, 1+e] or multiplicative [1/(1+e), 1+e] "
                        "(Sun et al. Thm 5.3)", choices=("symmetric", "multiplicative"), section="on_policy")
    no_clip: bool = _f(False, "turn clipping off (the 'no clipping' arm of Sun et al. Fig. 3)", section="on_policy")
    update_order: str = _f("simultaneous", "update order (seam 4): simultaneous (MAPPO), random_permutation "
                           "(HAPPO), semi_greedy (A2PO), batches (B2MAPO); the algorithm sets its own",
                           choices=("simultaneous", "random_permutation", "semi_greedy", "batches"),
                           section="on_policy")
    preceding_factor: str = _f("outer", "sequential orders: how the preceding agents' ratio product enters: outer "
                               "(HAPPO's weight M on the surrogate), clipped_inner (A2PO/B2MAPO's g inside the "
                               "clipped ratio), none (factor 1)", choices=("outer", "clipped_inner", "none"),
                               section="sequential")
    preceding_clip: float = _f(0.5, "sequential orders: g clipped to 1 ± preceding_clip·ε (B2MAPO eq. 12: 1/2)",
                               low=0, low_open=True, section="sequential")
    clip_schedule_weight: float = _f(0.0, "sequential orders: ε_k = ε·((k/K)·w + 1 − w) for the k-th group "
                                     "(A2PO: w = 0.5); 0 keeps ε", low=0, high=1, section="sequential")
    trace_correction: bool = _f(False, "sequential orders: re-estimate advantages with truncated importance "
                                "weights of the agents already updated (B2MAPO eq. 1, A2PO)", section="sequential")
    trace_lambda_twice: bool = _f(False, "with trace_correction: λ twice per step as A2PO's code does (default: "
                                  "once, as eq. 1)", section="sequential")
    num_batches: int = _f(2, "batches order: groups of the random partition", low=1, section="sequential")
    batch_partition: str = _f("random", "batches order: random (num_batches groups), singletons, or dag (B2MAPO's "
                              "learned DAG generator: its topological levels, at most num_batches)",
                              choices=("random", "singletons", "dag"), section="sequential")
    dag_threshold: float = _f(0.1, "batch_partition=dag: delta of B2MAPO eq. 5, attention weights below it are "
                              "no dependency", low=0, high=1, section="sequential")
    dag_kl_coef: float = _f(0.01, "batch_partition=dag: c_1, the upper layer's KL penalty (B2MAPO §4.1)", low=0,
                            section="sequential")
    dag_envs: int = _f(4, "batch_partition=dag: envs of the rollout whose trajectories the upper layer encodes "
                       "(its state; its cost and memory grow with it)", low=1, section="sequential")
    ind_epochs: int = _f(1, "batch_partition=dag: passes over the rollout's minibatches of B2MAPO eq. 13 (pi_ind's "
                         "KL to the updated pi) after each update; 0: none (needs ind_during)", low=0,
                         section="sequential")
    ind_during: bool = _f(False, "batch_partition=dag: one step of B2MAPO eq. 13 for pi_ind fused into every actor "
                          "minibatch step (KL to pi as it is at that step, same forward/backward pass)",
                          section="sequential")
    ind_lr_scale: float = _f(1.0, "batch_partition=dag: pi_ind's learning rate for B2MAPO eq. 13 as a multiple of lr "
                             "(same schedule; fewer ind_epochs with a larger one cost less per update)", low=0,
                             low_open=True, section="sequential")
    preceding_actions: bool = _f(False, "batch_partition=dag: pi also reads the actions of the agents in preceding "
                                 "batches (B2MAPO §4.2): the rollout samples batch level by batch level, pi_ind "
                                 "keeps the own observation", section="sequential")
    preceding_values: bool = _f(False, "preceding_actions: V also reads the preceding batches' actions (B2MAPO "
                                "§4.2); states without sampled actions (the rollout's last, pre-reset finals) are "
                                "valued with a zero block, trained as the state's value", section="sequential")
    batch_order: str = _f("score", "batches order: groups by descending mean |A/V| (score), A2PO's semi_greedy, "
                          "or random", choices=("score", "semi_greedy", "random"), section="sequential")
    measure_trust_region: bool = _f(True, "per-epoch ratio range, TV and KL from full action distributions", section="on_policy")
    measure_at: str = _f("minibatch", "minibatch (default): from the loss's own forward passes, each state under "
                         "the policy just before its minibatch step (free; lags the epoch's end by at most one "
                         "step); epoch_end: one extra actor pass over every rollout state after each epoch "
                         "(exact; cost 20% of an IPPO-FF MPE run)",
                         choices=("epoch_end", "minibatch"), section="on_policy")
    # --- critic (seam: what the critic sees) and MAPPO tricks ----------------------------------------------
    critic_input: str = _f("global", "critic input: local (IPPO), global (MAPPO) or attention (every agent's "
                           "observation, own first, through a MAAC-style attention critic: Li et al.'s MA-PPO)",
                           choices=("local", "global", "attention"), section="on_policy")
    value_norm: bool = _f(False, "normalise value targets with a running mean/std (MAPPO ValueNorm)", section="on_policy")
    value_norm_beta: float = _f(0.99999, "ValueNorm EMA weight", low=0, high=1, section="on_policy")
    value_clip: bool = _f(True, "clip the value update to +-clip_eps around the old value", section="on_policy")
    value_clip_eps: float = _f(0.0, "value clip range; 0 means the same as the policy clip_eps", low=0, section="on_policy")
    huber_delta: float = _f(0.0, "Huber loss threshold for the value loss; 0 gives the squared error", low=0, section="on_policy")
    adv_norm: bool = _f(True, "normalise advantages to mean 0, std 1 over the active entries of the whole rollout "
                        "(once per update, before the minibatches)", section="on_policy")
    adv_norm_scope: str = _f("rollout", "with adv_norm: rollout (once per update over the whole rollout's active "
                             "entries) or minibatch (in each minibatch's actor loss over its own entries, as "
                             "JaxMARL's mappo_rnn_smax does); minibatch needs update_order=simultaneous",
                             choices=("rollout", "minibatch"), section="on_policy")
    minibatch_over: str = _f("envs", "what a minibatch shuffles: envs (an env's agents stay in one minibatch) or "
                             "agents (each agent's env sequences, or env-steps for FF, shuffled on their own, so one "
                             "env's agents spread over minibatches; each minibatch holds the same count per agent; "
                             "JaxMARL's shuffle over actors); agents needs ratio=independent, "
                             "update_order=simultaneous and no in-loss joint measurement",
                             choices=("envs", "agents"), section="on_policy")
    use_active_masks: bool = _f(True, "exclude dead agents' entries from losses and statistics", section="on_policy")
    done_scope: str = _f("env", "network=gru: where a recurrent state (actor and critic) restarts from zero: env "
                         "(where the env's episode starts), agent (where the agent itself is done, as JaxMARL's "
                         "mappo_rnn_smax does: on SMAX every step after its death, and at an episode's end only "
                         "the agents dead then, so a survivor's state runs on into the next episode) or "
                         "env_or_agent (episode starts and dead agents); agent and env_or_agent need a JAX env "
                         "with per-agent deaths (SMAX, or EnvHooks.alive). GAE cuts at the env's episode ends "
                         "under every scope, as the peer's does", choices=("env", "agent", "env_or_agent"),
                         section="on_policy")
    bootstrap_truncation: bool = _f(True, "bootstrap value targets at time-limit ends (not at terminations)", section="on_policy")
    # --- off-policy family (MADDPG, MAAC, MAMD, MAMT; Li et al. Table 3) ---------------------------------------
    buffer_size: int = _f(1_000_000, "replay capacity in transitions (capped at the budget's env steps)", low=1,
                          section="off_policy")
    batch_size: int = _f(1024, "transitions per gradient step, sampled uniformly from the buffer", low=1,
                         section="off_policy")
    learning_starts: int = _f(1024, "transitions stored before gradient steps begin (at least batch_size)", low=0,
                              section="off_policy")
    collect_steps: int = _f(8, "steps of all num_envs envs per iteration (MAAC's steps_per_update = "
                            "num_envs*collect_steps transitions)", low=1, section="off_policy")
    gradient_steps: int = _f(4, "gradient steps per iteration (Table 3's epochs per step)", low=1, section="off_policy")
    tau: float = _f(0.001, "Polyak rate of the target networks: target <- (1-tau)*target + tau*online", low=0,
                    high=1, low_open=True, section="off_policy")
    explore_noise: float = _f(0.1, "MADDPG with continuous actions: std of the Gaussian exploration noise added to "
                              "tanh(z) in the [-1, 1] action box (then clipped)", low=0, section="off_policy")
    reward_scale: float = _f(100.0, "soft algorithms: inverse entropy temperature (MAAC's reward scale)", low=0,
                             low_open=True, section="off_policy")
    reward_norm: bool = _f(True, "normalise each agent's sampled rewards by the running mean/std of stored rewards",
                           section="off_policy")
    policy_reg: float = _f(1e-3, "L2 penalty on the policy net's raw outputs (logits)", low=0, section="off_policy")
    attend_reg: float = _f(1e-3, "attention critic: penalty on the squared attention logits", low=0,
                           section="off_policy")
    critic_l2: float = _f(1e-3, "critic weight decay (added to the gradient before Adam)", low=0,
                          section="off_policy")
    critic_max_grad_norm: float = _f(0.0, "critic global-norm clip; 0 means 10 * number of agents", low=0,
                                     section="off_policy")
    attention_heads: int = _f(4, "attention critic heads: the off-policy attention critic (must divide "
                              "hidden[-1]) and the on-policy critic_input=attention (must divide hidden[0])", low=1)
    trust_region: float = _f(1.0, "MAMD/MAMT: total trust region delta (local delta_i = delta/n for MAMD)", low=0,
                             low_open=True, section="off_policy")
    old_policy_delay: int = _f(100, "MAMD/MAMT: gradient steps between copies of the old policy (m)", low=1,
                               section="off_policy")
    delta_min: float = _f(0.01, "MAMT: smallest local trust region delta_i", low=0, low_open=True,
                          section="off_policy")
    coord_sigma: float = _f(0.2, "MAMT: threshold sigma of the coordination coefficients (eq. 5)", low=0, high=1,
                            section="off_policy")
    coordination: str = _f("critic", "MAMT coordination coefficients: critic (eq. 5), fixed (1/(n-1), "
                           "MAMT-Fixed), random (MAMT-Random)", choices=("critic", "fixed", "random"),
                           section="off_policy")
    nonstationarity: str = _f("model", "MAMT's joint-divergence signal: model (eq. 6, opponent models) or ws "
                              "(weighted sum of local divergences, MAMT-WS)", choices=("model", "ws"),
                              section="off_policy")
    ns_clip: float = _f(10.0, "MAMT: D_ns projected onto [0, ns_clip] (eq. 6's projection)", low=0, low_open=True,
                        section="off_policy")
    delta_delay: int = _f(2, "MAMT: decomposition-network steps per trust-region step (two timescales, eq. 8)",
                          low=1, section="off_policy")
    trust_split: str = _f("equal", "MAMD local trust regions: equal (delta_i = delta/n, eq. 4) or "
                          "reward_groups (MAMD-OP, Li et al. App. D: agents whose reward depends on another agent "
                          "share delta equally, the others are unconstrained; needs an env with reward groups: "
                          "spread)", choices=("equal", "reward_groups"), section="off_policy")
    lola_eta: float = _f(1.0, "LOLA-DQN: the opponent's naive step size eta in LOLA's correction", low=0,
                         section="off_policy")
    lola_temperature: float = _f(0.1, "LOLA-DQN: Boltzmann temperature T of the policies pi_i = softmax(Q_i/T)",
                                 low=0, low_open=True, section="off_policy")
    policy_update: str = _f("mirror", "MAMD/MAMT policy step: mirror (eq. 10, KL/delta_i to the old copy) or ppo "
                            "(clipped ratio to the old copy with epsilon_i = delta_i, MAMT-PPO)",
                            choices=("mirror", "ppo"), section="off_policy")
    # --- networks -----------------------------------------------------------------------------------------
    network: str = _f("ff", "ff (feed-forward) or gru", choices=("ff", "gru"))
    hidden: tuple = _f((64, 64), "hidden layer widths, e.g. hidden=128,128")
    activation: str = _f("tanh", "activation", choices=("tanh", "relu", "gelu"))
    layer_norm_input: bool = _f(False, "LayerNorm on network inputs (MAPPO feature normalisation)")
    share_params: bool = _f(True, "one parameter set for all agents (else one per agent, vmapped)")
    agent_id: bool = _f(False, "append the agent's one-hot id to its observation")
    post_gru_gain: float = _f(math.sqrt(2), "network=gru: gain of the orthogonal initialiser of the dense layer after "
                              "the GRU, actor and critic (sqrt(2), the PPO convention; JaxMARL's mappo_rnn_smax "
                              "uses 2)", low=0, low_open=True, section="on_policy")
    precision: str = _f("float32", "matrix products of the networks: float32, or bf16 (bfloat16 operands, float32 "
                        "accumulation and results; parameters and optimiser state stay float32; networks.py)",
                        choices=("float32", "bf16"), section="on_policy")
    # --- running ------------------------------------------------------------------------------------------
    out_dir: str = _f("runs", "folder under which the run folder is made")
    run_name: str = _f("", "run folder name; empty gives <algo>_<env>_<time>")
    checkpoint_every: int = _f(0, "updates between checkpoints; 0 gives about 10 per run", low=0)
    log_every: int = _f(0, "updates per jitted chunk (progress, CSV, TensorBoard); 0 gives about 50 per run",
                        low=0)
    progress: bool = _f(True, "show a progress bar")
    devices: int = _f(1, "devices the seeds are sharded over (jax.sharding, one mesh axis 'seeds'): 1 runs on the "
                      "default device; n > 1 the first n of jax.devices(), n must divide num_seeds; 0 all of "
                      "them, or the most that divide num_seeds (docs/scaling.md); JAX envs only", low=0)
    wandb: bool = _f(False, "also log the TensorBoard scalars to Weights & Biases (pip install 'trustmarl[wandb]'; "
                     "WANDB_MODE=offline etc. are read by wandb itself)")
    wandb_project: str = _f("", "W&B project; empty means $WANDB_PROJECT, else 'trustmarl'")
    stall_timeout: float = _f(1800.0, "seconds a jitted chunk (or its compilation) may run without finishing "
                              "before the run stops with the Python stacks and exit code 3; 0 disables "
                              "(docs/known-issues.md)", low=0)

    # ------------------------------------------------------------------------------------------------------
    def __post_init__(self):
        for f in fields(self):
            _check_field(f, getattr(self, f.name))
        from trustmarl.algos import ALGORITHMS
        if self.algo not in ALGORITHMS:
            raise ConfigError(f"algo={self.algo!r} is unknown; allowed: {', '.join(ALGORITHMS)}")
        from trustmarl.seams.surrogates import OBJECTIVES
        if self.ratio not in OBJECTIVES:
            raise ConfigError(f"ratio={self.ratio!r} is not one of {', '.join(OBJECTIVES)}")
        from trustmarl.envs import is_host_env, resolve_env
        try:
            resolve_env(self.env)  # a registered name, or package.module:factory (imports the user's code)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        if self.env == "smax":
            from trustmarl.envs import list_smax_maps
            maps = list_smax_maps()
            if self.map not in maps:
                raise ConfigError(f"map={self.map!r} is not a SMAX map; allowed: {', '.join(maps)}")
        if not self.hidden or any((not isinstance(h, int)) or isinstance(h, bool) or h < 1 for h in self.hidden):
            raise ConfigError(f"hidden={self.hidden!r} must be one or more positive widths, e.g. hidden=64,64")
        if self.env_options:
            try:
                opts = json.loads(self.env_options)
            except json.JSONDecodeError as err:
                raise ConfigError(f"env_options={self.env_options!r} is not JSON: {err}") from None
            if not isinstance(opts, dict):
                raise ConfigError(f"env_options={self.env_options!r} must be a JSON object")
        if self.clip_alpha > 0 and self.ratio == "joint":
            raise ConfigError(f"clip_alpha={self.clip_alpha!r} shares a trust region among independent ratios "
                              f"(ε = α/N, Sun et al. §6.2); ratio=joint clips the joint ratio with clip_eps "
                              f"itself (Algorithm 1): set clip_eps and leave clip_alpha=0")
        if self.devices > 1 and self.num_seeds % self.devices:
            raise ConfigError(f"devices={self.devices} does not divide num_seeds={self.num_seeds}; allowed: a device "
                              f"count dividing num_seeds (each device runs num_seeds/devices seeds), or devices=0 "
                              f"(the most available devices that divide it)")
        if self.preceding_actions and not (self.update_order == "batches" and self.batch_partition == "dag"):
            raise ConfigError(f"preceding_actions=True needs batch_partition=dag with update_order=batches (the "
                              f"batches must be known before the rollout), got update_order={self.update_order}, "
                              f"batch_partition={self.batch_partition}; allowed: algo=b2mapo, or preceding_actions=false")
        if self.batch_partition == "dag" and self.update_order == "batches" and self.ind_epochs == 0 \
                and not self.ind_during:
            raise ConfigError("ind_epochs=0 with ind_during=false never trains pi_ind (B2MAPO eq. 13); allowed: "
                              "ind_epochs >= 1, or ind_during=true")
        if self.preceding_values and not self.preceding_actions:
            raise ConfigError("preceding_values=True needs preceding_actions=True (V reads the block pi's rollout "
                              "stores); allowed: preceding_values=false, or preceding_actions=true")
        if self.minibatch_over == "agents":
            # one env's agents land in different minibatches, so a loss or measure that combines the agents of
            # one state (joint ratio, preceding agents' factors, joint TV in the loss pass) would mix envs
            if self.ratio != "independent":
                raise ConfigError(f"minibatch_over=agents splits an env's agents across minibatches, which "
                                  f"ratio={self.ratio!r} needs together; allowed: ratio=independent, or "
                                  f"minibatch_over=envs")
            if self.update_order != "simultaneous":
                raise ConfigError(f"minibatch_over=agents splits an env's agents across minibatches, which "
                                  f"update_order={self.update_order!r} needs together; allowed: "
                                  f"update_order=simultaneous, or minibatch_over=envs")
            if self.measure_trust_region and self.measure_at == "minibatch":
                raise ConfigError("minibatch_over=agents with measure_at='minibatch' would measure joint TV over "
                                  "agents of different envs; allowed: measure_at=epoch_end, "
                                  "measure_trust_region=false, or minibatch_over=envs")
        if self.adv_norm_scope == "minibatch" and not self.adv_norm:
            raise ConfigError("adv_norm_scope='minibatch' is not read with adv_norm=false; allowed: adv_norm=true, "
                              "or adv_norm_scope=rollout")
        if self.adv_norm_scope == "minibatch" and self.update_order != "simultaneous":
            raise ConfigError(f"adv_norm_scope='minibatch' is not wired into update_order={self.update_order!r} "
                              f"(its advantages are re-estimated per group); allowed: adv_norm_scope=rollout")
        if self.post_gru_gain != math.sqrt(2) and self.network != "gru":
            raise ConfigError(f"post_gru_gain={self.post_gru_gain!r} is read only with network=gru, got "
                              f"network={self.network!r}; allowed: network=gru, or leave post_gru_gain unset")
        if self.done_scope != "env" and self.network != "gru":
            raise ConfigError(f"done_scope={self.done_scope!r} resets recurrent states, which network="
                              f"{self.network!r} has none of; allowed: network=gru, or done_scope=env")
        if self.done_scope != "env" and self.update_order == "batches" and self.batch_partition == "dag":
            raise ConfigError(f"done_scope={self.done_scope!r} is not wired into batch_partition=dag (B2MAPO's upper "
                              f"layer encodes trajectories with one reset flag per env); allowed: done_scope=env")
        if self.done_scope != "env" and is_host_env(self.env):
            raise ConfigError(f"done_scope={self.done_scope!r} is not wired into the host path (env={self.env!r}); "
                              f"allowed there: done_scope=env")
        d = self.derived_batch()
        if d["batch_units"] % self.num_minibatches:
            unit = "envs" if self.network == "gru" else "env-steps (num_envs*rollout_length)"
            raise ConfigError(f"num_minibatches={self.num_minibatches} must divide the {d['batch_units']} {unit}")

    def derived_batch(self) -> dict:
        units = self.num_envs if self.network == "gru" else self.num_envs * self.rollout_length
        return {"batch_units": units}

    def derived(self, num_agents: int) -> Derived:
        """Quantities computed once from the fields and the env's agent count."""
        from trustmarl.algos import ALGORITHMS
        off = self.algo in ALGORITHMS and ALGORITHMS[self.algo].family == "off_policy"
        # an off-policy update is one iteration: collect_steps steps of every env, then gradient_steps steps
        steps_per_update = self.num_envs * (self.collect_steps if off else self.rollout_length)
        num_updates = max(1, self.total_env_steps // steps_per_update)
        eps = self.clip_alpha / num_agents if self.clip_alpha > 0 else self.clip_eps
        return Derived(steps_per_update=steps_per_update, num_updates=num_updates, clip_eps=eps,
                       value_clip_eps=self.value_clip_eps or eps, critic_lr=self.critic_lr or self.lr,
                       env_steps=num_updates * steps_per_update)

    # --- construction -------------------------------------------------------------------------------------
    @classmethod
    def build(cls, overrides: dict | None = None, **kw) -> "Config":
        """Merge defaults < algorithm defaults < preset(algo, env) < overrides, then validate."""
        user = dict(overrides or {})
        user.update(kw)
        names = {f.name for f in fields(cls)}
        for key in user:
            if key not in names:
                near = difflib.get_close_matches(key, names, n=1)
                hint = f" (did you mean {near[0]}?)" if near else ""
                raise ConfigError(f"unknown config key {key!r}{hint}; `trustmarl train --help` lists the keys")
        user = {k: _parse(cls._field(k), v) for k, v in user.items()}
        algo = user.get("algo", cls._field("algo").default)
        env = user.get("env", cls._field("env").default)
        from trustmarl.algos import ALGORITHMS
        from trustmarl.presets import preset_for
        merged: dict[str, Any] = {}
        if algo in ALGORITHMS:
            merged["update_order"] = ALGORITHMS[algo].update_order
            merged.update(ALGORITHMS[algo].config_defaults)
        merged.update(preset_for(algo, env, user.get("map")))
        if "clip_eps" in user and "clip_alpha" not in user:
            merged["clip_alpha"] = 0.0  # an explicit ε outranks a preset's α/N (else ε would be ignored)
        if user.get("preceding_actions") is False and "preceding_values" not in user:
            merged["preceding_values"] = False  # V reads the block π's rollout stores: without it there is none
        merged.update(user)
        merged = {k: _parse(cls._field(k), v) for k, v in merged.items()}
        if algo in ALGORITHMS:
            family = ALGORITHMS[algo].family
            sections = cls.sections_for(algo, merged.get("update_order", cls._field("update_order").default))
            for key in [*user, *merged]:  # the user's own words first, so the error names them
                field_ = cls._field(key)
                # a key left at its default is not a setting (a saved config lists every key, read or not)
                if field_.metadata["section"] not in sections and merged[key] != field_.default:
                    section = field_.metadata["section"]
                    why = " with update_order=simultaneous" if section == "sequential" else f" (family {family})"
                    raise ConfigError(f"{key}={merged[key]!r} is not read by algo={algo}{why}; "
                                      f"`trustmarl train --keys algo={algo}` lists its keys")
        return cls(**merged)

    @classmethod
    def from_args(cls, args: list[str]) -> "Config":
        """From CLI words ``key=value``."""
        overrides = {}
        for word in args:
            if "=" not in word:
                raise ConfigError(f"argument {word!r} is not key=value")
            key, value = word.split("=", 1)
            overrides[key.strip()] = value
        return cls.build(overrides)

    @classmethod
    def _field(cls, name: str):
        for f in fields(cls):
            if f.name == name:
                return f
        raise ConfigError(f"unknown config key {name!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, **kw) -> "Config":
        return Config.build({**self.to_dict(), **kw})

    @classmethod
    def sections_for(cls, algo: str, update_order: str | None = None) -> tuple:
        """Config sections ``algo`` reads: its family's, plus ``sequential`` when its update order (the given
        one, else the algorithm's default) is not simultaneous."""
        from trustmarl.algos import ALGORITHMS
        a = ALGORITHMS[algo]
        order = update_order or a.update_order
        extra = ("sequential",) if a.family == "on_policy" and order != "simultaneous" else ()
        return FAMILY_SECTIONS[a.family] + extra

    @classmethod
    def keys_for(cls, algo: str | None = None) -> list:
        """The fields ``algo`` reads (its family's sections); every field when ``algo`` is None."""
        if algo is None:
            return list(fields(cls))
        from trustmarl.algos import ALGORITHMS
        if algo not in ALGORITHMS:
            raise ConfigError(f"algo={algo!r} is unknown; allowed: {', '.join(ALGORITHMS)}")
        sections = cls.sections_for(algo)
        return [f for f in fields(cls) if f.metadata["section"] in sections]

    @classmethod
    def describe(cls, algo: str | None = None) -> str:
        """One line per field the algorithm reads (every field when None): name, type, default, doc.
        Defaults shown are the algorithm's own when it sets one."""
        defaults = {}
        if algo is not None:
            from trustmarl.algos import ALGORITHMS
            defaults = ALGORITHMS[algo].config_defaults if algo in ALGORITHMS else {}
        lines = []
        for f in cls.keys_for(algo):
            t = f.type if isinstance(f.type, str) else f.type.__name__
            default = defaults.get(f.name, f.default)
            lines.append(f"  {f.name:<22} {t:<6} default={default!r:<14} {f.metadata['doc']}")
        return "\n".join(lines)


def _base_type(f):
    t = f.type
    if isinstance(t, str):
        t = {"int": int, "float": float, "str": str, "bool": bool, "tuple": tuple}.get(t, str)
    return t


def _parse(f, value):
    """Turn a CLI string (or a Python value) into the field's type; one-line error otherwise."""
    t = _base_type(f)
    if not isinstance(value, str) or t is str:
        if t is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if t is tuple and isinstance(value, list):
            return tuple(value)
        if t is int and isinstance(value, float) and value.is_integer():
            return int(value)
        return value
    text = value.strip()
    try:
        if t is bool:
            low = text.lower()
            if low in ("true", "1", "yes", "on"):
                return True
            if low in ("false", "0", "no", "off"):
                return False
            raise ValueError
        if t is int:
            num = float(text)
            if not num.is_integer():
                raise ValueError
            return int(num)
        if t is float:
            return float(text)
        if t is tuple:
            return tuple(int(x) for x in text.strip("()[] ").split(",") if x.strip())
    except ValueError:
        kind = {bool: "true/false", int: "an integer", float: "a number", tuple: "comma-separated integers"}[t]
        raise ConfigError(f"{f.name}={value!r} is not {kind}") from None
    return value


def _check_field(f, value):
    t = _base_type(f)
    ok = isinstance(value, t) and not (t in (int, float) and isinstance(value, bool))
    if t is float and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if not ok:
        raise ConfigError(f"{f.name}={value!r} must be of type {t.__name__}")
    if t is float and not math.isfinite(value):
        raise ConfigError(f"{f.name}={value!r} must be a finite number")
    meta = f.metadata
    if meta.get("choices") and value not in meta["choices"]:
        raise ConfigError(f"{f.name}={value!r} is not one of {', '.join(map(str, meta['choices']))}")
    low, high = meta.get("low"), meta.get("high")
    if low is not None and (value < low or (meta.get("low_open") and value == low)):
        bound = f"> {low}" if meta.get("low_open") else f">= {low}"
        raise ConfigError(f"{f.name}={value!r} must be {bound}")
    if high is not None and value > high:
        raise ConfigError(f"{f.name}={value!r} must be <= {high}")

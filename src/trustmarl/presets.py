"""Tuned settings per (algorithm, environment), kept apart from the defaults.

``preset_for(algo, env, map)`` returns the overrides applied between the algorithm's defaults and the
user's ``key=value`` words. MPE presets follow JaxMARL's ``ippo_ff_mpe.yaml`` budget shape; SMAX presets
follow ``ippo_rnn_smax.yaml`` / ``mappo_homogenous_rnn_smax.yaml`` (the peer trainers).
"""
from __future__ import annotations

_MPE = {"num_envs": 16, "rollout_length": 128, "update_epochs": 4, "num_minibatches": 4, "lr": 2.5e-4,
        "max_grad_norm": 0.5, "activation": "tanh", "network": "ff", "hidden": (64, 64)}
_SMAX = {"num_envs": 128, "rollout_length": 128, "update_epochs": 4, "num_minibatches": 4,
         "network": "gru", "hidden": (128,), "activation": "relu", "max_grad_norm": 0.25,
         "total_env_steps": 10_000_000}

PRESETS: dict[tuple[str, str], dict] = {
    ("ippo", "mpe_spread"): dict(_MPE),
    ("mappo", "mpe_spread"): {**_MPE, "lr": 7e-4, "num_envs": 32, "rollout_length": 25, "update_epochs": 10,
                              "num_minibatches": 1, "total_env_steps": 800_000, "num_agents": 3},
    ("jrppo", "mpe_spread"): {**_MPE, "lr": 7e-4, "num_envs": 32, "rollout_length": 25, "update_epochs": 10,
                              "num_minibatches": 1, "total_env_steps": 400_000},
    ("ippo", "smax"): {**_SMAX, "lr": 0.004, "clip_eps": 0.05, "ent_coef": 0.01},
    ("mappo", "smax"): {**_SMAX, "lr": 0.002, "clip_eps": 0.2, "ent_coef": 0.0},
    # JR-PPO clips the joint ratio with ε itself (Algorithm 1); 0.1 is the value at which Sun et al. A.6 find
    # joint clipping "consistently" ahead of independent clipping with 10 and 27 agents (algos/jrppo.py).
    ("jrppo", "smax"): {**_SMAX, "lr": 0.002, "clip_eps": 0.1, "ent_coef": 0.0},
}


def preset_for(algo: str, env: str, map_name: str | None = None) -> dict:
    return dict(PRESETS.get((algo, env), {}))

"""Trainers, one per algorithm family, behind one protocol (:mod:`.protocol`).

``make_train(config, env=None)`` builds the trainer of the config's algorithm family
(``ALGORITHMS[config.algo].family``): ``train = make_train(config); state, metrics = jax.jit(train)(rng)``,
``jax.vmap`` it over seeds.
"""
from __future__ import annotations

from trustmarl.trainers.on_policy import (Batch, LearnerState, OnPolicyTrainer, PolicyStep, RunnerState,
                                          TrainState, Transition)
from trustmarl.trainers.off_policy import OffPolicyTrainer
from trustmarl.trainers.protocol import MetricSpec, Trainer

TRAINERS = {"on_policy": OnPolicyTrainer, "off_policy": OffPolicyTrainer}


def make_train(config, env=None) -> Trainer:
    """The trainer for ``config`` (its algorithm's family). ``env``: an already-built env with a ``spec``
    (e.g. ``trustmarl.envs.as_jax_env(my_jaxmarl_env)``); default: the env named by ``config.env``."""
    from trustmarl.algos import ALGORITHMS
    family = ALGORITHMS[config.algo].family
    return TRAINERS[family](config, env)


__all__ = ["make_train", "Trainer", "MetricSpec", "TRAINERS", "OnPolicyTrainer", "OffPolicyTrainer", "Batch",
           "LearnerState",
           "PolicyStep", "RunnerState", "TrainState", "Transition"]

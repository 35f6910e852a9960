"""``trustmarl check-env``: one deliberately broken env per check gives the expected one-line problem; the
working envs give none (docs/reliability.md, trustmarl.envs.checker)."""
from __future__ import annotations

import pytest

import broken_envs as B
import broken_pz_envs as P
from trustmarl import cli
from trustmarl.envs.checker import CHECKS, check_env

# (env, check, words the message must hold, level)
JAX_CASES = [
    (B.WrongObsCueEnv, "obs", "has shape (5,) (5 values) but its observation space declares 6", "error"),
    (B.IntObsEnv, "obs", "dtype int32; trustmarl casts them to float32", "warning"),
    (B.NaNObsEnv, "obs", "step 2: observation of agent 'agent_0' holds NaN/inf", "error"),
    (B.VectorRewardEnv, "reward", "the reward of agent 'agent_0' has shape (2,); allowed: a scalar ()", "error"),
    (B.NaNRewardEnv, "reward", "the reward of agent 'agent_0' is nan; rewards must be finite", "error"),
    (B.NoAllDoneEnv, "dones", "dones has no '__all__' entry", "error"),
    (B.NeverEndsEnv, "time_limit", "did not end within the time limit of 5 steps", "error"),
    (B.OverLimitEnv, "time_limit", "did not end within the time limit of 5 steps", "error"),
    (B.NumpyRandomEnv, "determinism", "the same key and actions gave different observations", "error"),
    (B.PythonCounterEnv, "determinism", "jitted and eager steps disagree", "error"),
    (B.BadAvailCueEnv, "masks", "the action mask of agent 'agent_0' has shape (2,); allowed: (3,)", "error"),
    (B.PaddedMaskEnv, "masks", "marks actions [2] available, but its action space has only 2 actions", "error"),
    (B.NoActionEnv, "masks", "agent 'agent_0' is live but has no available action", "error"),
    (B.GrowingWorldEnv, "state", "get_world_state(state) has 4 values, 3 before", "error"),
    (B.BrokenResetEnv, "reset", "reset(key) failed: RuntimeError: forgot to build the arena", "error"),
    (B.UnboundedBoxEnv, "spaces", "the Box action space of agent 'agent_0' is unbounded", "error"),
]
PZ_CASES = [
    (P.WrongObsPZ, "obs", "observation of agent 'p0' has shape (7,) (7 values) but its observation space declares 5",
     "error"),
    (P.TextRewardPZ, "reward", "the reward of agent 'p0' is 'lots'; allowed: a number", "error"),
    (P.NaNRewardPZ, "reward", "rewards must be finite", "error"),
    (P.RaisePZ, "dones", "step(actions) failed: RuntimeError: the physics engine exploded", "error"),
    (P.TerminateAtLimitPZ, "truncation", "report terminations, not truncations", "warning"),
    (P.BothFlagsPZ, "truncation", "is both terminated and truncated", "error"),
    (P.NoResetCounterPZ, "auto_reset", "the second episode differs", "error"),
    (P.UnseededPZ, "determinism", "a fresh env reset with seed=0 and given the same actions produced different", "error"),
    (P.BadMaskPZ, "masks", "the action mask of agent 'p0' has shape (2,); allowed: (3,)", "error"),
    (P.NoActionPZ, "masks", "agent 'p0' is live but has no available action", "error"),
    (P.LingeringAgentsPZ, "dones", "are done but still in env.agents", "error"),
    (P.OverLimitPZ, "time_limit", "went on past its time limit of 5 steps", "error"),
]


def _find(problems, check):
    return [p for p in problems if p.check == check]


@pytest.mark.parametrize("env_cls,check,words,level", JAX_CASES, ids=[c[0].__name__ for c in JAX_CASES])
def test_broken_jax_env_is_reported(env_cls, check, words, level):
    problems = check_env(env_cls())
    hits = [p for p in _find(problems, check) if words in p.message]
    assert hits, [str(p) for p in problems]
    assert hits[0].level == level
    assert all("\n" not in str(p) for p in problems)
    # one message per problem: no two problems repeat the same text for another step
    assert len({p.message for p in problems}) == len(problems)


@pytest.mark.parametrize("ctor,check,words,level", PZ_CASES, ids=[c[0].__name__ for c in PZ_CASES])
def test_broken_pettingzoo_env_is_reported(ctor, check, words, level):
    problems = check_env(ctor)
    hits = [p for p in _find(problems, check) if words in p.message]
    assert hits, [str(p) for p in problems]
    assert hits[0].level == level


def test_every_check_has_a_broken_env():
    covered = {c[1] for c in JAX_CASES + PZ_CASES} | {"build", "contract", "pickle"}
    assert covered == set(CHECKS)


def test_working_envs_pass_and_the_cli_reports(capsys):
    assert [p for p in check_env(B.CueEnv()) if p.level == "error"] == []
    assert check_env(P.CuePZ) == []
    assert check_env("fast_envs:make_fast") == []
    assert cli.main(["check-env", "custom_envs:make_cue_env"]) == 0
    assert "fits the env contract" in capsys.readouterr().out
    assert cli.main(["check-env", "broken_pz_envs:make_cue", "--options", '{"max_cycles": 4}']) == 0
    assert cli.main(["check-env", "broken_envs:NaNRewardEnv"]) == 1
    out = capsys.readouterr().out
    assert "error: [reward] step 1: the reward of agent 'agent_0' is nan" in out
    assert "broken_envs:NaNRewardEnv: 2 problem(s), 0 warning(s): it does not fit the env contract yet" in out


def test_build_contract_and_pickle_problems(capsys):
    assert [p.check for p in check_env("custom_envs:make_needs_option")] == ["build"]
    assert [p.check for p in check_env("custom_envs:make_number")] == ["build"]
    probs = check_env(B.PythonIfEnv())
    assert any(p.check == "contract" and "cannot run under jax.jit" in p.message for p in probs), probs
    import threading
    lock = threading.Lock()
    probs = check_env(lambda: (lock, P.CuePZ())[1])  # a constructor holding a lock cannot go to a worker
    assert [p.check for p in probs if p.level == "error"] == ["pickle"], probs
    # an unknown env is a bad input (exit code 2), not a problem report
    assert cli.main(["check-env", "no_such_env"]) == 2
    assert "env='no_such_env' is unknown" in capsys.readouterr().err
    assert cli.main(["check-env", "no_such_module:make"]) == 2
    assert "cannot be imported" in capsys.readouterr().err

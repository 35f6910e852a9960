"""Seam 1 (advantages): GAE with truncation/termination and the team advantage, against hand numbers."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from trustmarl.seams.advantages import ADVANTAGES, gae, team_advantage


def _maybe_jit(fn, jit, **static):
    f = lambda *a: fn(*a, **static)  # noqa: E731
    return jax.jit(f) if jit else f


@pytest.mark.parametrize("jit", [False, True])
def test_gae_truncation_and_termination(jit):
    """γ = 0.9, λ = 0.8 (γλ = 0.72), T = 3, two envs on the trailing axis.

    Env 0: step 1 is a time-limit truncation (end=1, term=0, V'_1 = 3.0 is the pre-reset final state's
    value and IS bootstrapped), step 2 is a termination (end=1, term=1, V'_2 = 4.0 is multiplied out)::

        δ_0 = 1 + 0.9·1.0 − 0.5 = 1.4
        δ_1 = 0 + 0.9·3.0 − 1.0 = 1.7
        δ_2 = 2 + 0.9·0·4.0 − 1.5 = 0.5
        Â_2 = 0.5
        Â_1 = 1.7 + 0.72·(1−1)·Â_2 = 1.7                 (recursion stops at the truncation)
        Â_0 = 1.4 + 0.72·1.7 = 1.4 + 1.224 = 2.624
        returns = Â + V = [3.124, 2.7, 2.0]

    Env 1: step 0 terminates (V'_0 = 9.0 multiplied out), step 2 is truncated (V'_2 = 3.0 bootstrapped)::

        δ_0 = 1 + 0 − 0.5 = 0.5
        δ_1 = 0 + 0.9·1.5 − 1.0 = 0.35
        δ_2 = 2 + 0.9·3.0 − 1.5 = 3.2
        Â_2 = 3.2
        Â_1 = 0.35 + 0.72·3.2 = 0.35 + 2.304 = 2.654       (recursion runs through step 1)
        Â_0 = 0.5                                          (end_0 = 1)
        returns = [1.0, 3.654, 4.7]
    """
    rewards = jnp.array([[1.0, 1.0], [0.0, 0.0], [2.0, 2.0]])
    values = jnp.array([[0.5, 0.5], [1.0, 1.0], [1.5, 1.5]])
    next_values = jnp.array([[1.0, 9.0], [3.0, 1.5], [4.0, 3.0]])
    terminated = jnp.array([[False, True], [False, False], [True, False]])
    episode_end = jnp.array([[False, True], [True, False], [True, True]])
    fn = _maybe_jit(gae, jit, gamma=0.9, lam=0.8)
    adv, ret = fn(rewards, values, next_values, terminated, episode_end)
    np.testing.assert_allclose(adv, [[2.624, 0.5], [1.7, 2.654], [0.5, 3.2]], rtol=1e-6)
    np.testing.assert_allclose(ret, [[3.124, 1.0], [2.7, 3.654], [2.0, 4.7]], rtol=1e-6)


@pytest.mark.parametrize("jit", [False, True])
def test_gae_broadcast_done_flags(jit):
    """Done flags ``[T, 1]`` broadcast over an agent axis ``[T, A]``; no episode end, γ = 0.9, λ = 0.8.

    Agent 0: r = [1, 1], V = [0, 0], V' = [0, 0] → δ = [1, 1]; Â_1 = 1, Â_0 = 1 + 0.72 = 1.72.
    Agent 1: r = [0, 0], V = [1, 1], V' = [1, 1] → δ = [0.9 − 1]·2 = [−0.1, −0.1];
             Â_1 = −0.1, Â_0 = −0.1 − 0.072 = −0.172.
    """
    rewards = jnp.array([[1.0, 0.0], [1.0, 0.0]])
    values = jnp.array([[0.0, 1.0], [0.0, 1.0]])
    next_values = values
    no = jnp.zeros((2, 1), bool)
    adv, ret = _maybe_jit(gae, jit, gamma=0.9, lam=0.8)(rewards, values, next_values, no, no)
    np.testing.assert_allclose(adv, [[1.72, -0.172], [1.0, -0.1]], rtol=1e-6)
    np.testing.assert_allclose(ret, [[1.72, 0.828], [1.0, 0.9]], rtol=1e-6)


@pytest.mark.parametrize("jit", [False, True])
def test_team_advantage_mean_over_active(jit):
    """Row 0: active agents 0, 1 → (1 + 2)/2 = 1.5 (the 6 of inactive agent 2 is ignored).
    Row 1: only agent 0 active → 4/1 = 4.  Row 2: nobody active → 0/max(0, 1) = 0."""
    adv = jnp.array([[1.0, 2.0, 6.0], [4.0, -2.0, 0.0], [3.0, 3.0, 3.0]])
    mask = jnp.array([[True, True, False], [True, False, False], [False, False, False]])
    fn = jax.jit(team_advantage) if jit else team_advantage
    np.testing.assert_allclose(fn(adv, mask), [1.5, 4.0, 0.0], rtol=1e-6)


def test_registry():
    assert ADVANTAGES["gae"] is gae

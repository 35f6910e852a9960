"""Seam 5 (critic inputs): agent ids, local vs global critic input and its width."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from trustmarl.seams.critic_inputs import CRITIC_INPUTS, critic_input_dim, with_agent_id

# [E=2, A=3, O=2]: obs[e, i] = [10e + i, −(10e + i)]
OBS = jnp.array([[[0.0, -0.0], [1.0, -1.0], [2.0, -2.0]],
                 [[10.0, -10.0], [11.0, -11.0], [12.0, -12.0]]])
STATE = jnp.arange(2 * 3 * 4, dtype=jnp.float32).reshape(2, 3, 4)


def _jit(fn, jit, use_id):
    f = lambda *a: fn(*a, use_id=use_id)  # noqa: E731
    return jax.jit(f) if jit else f


@pytest.mark.parametrize("jit", [False, True])
def test_with_agent_id_appends_one_hot(jit):
    """[E, A, O] → [E, A, O + A]: agent i's row gets onehot(i) appended, in every env."""
    out = _jit(with_agent_id, jit, True)(OBS)
    assert out.shape == (2, 3, 5)
    expected = np.array([[[0, 0, 1, 0, 0], [1, -1, 0, 1, 0], [2, -2, 0, 0, 1]],
                         [[10, -10, 1, 0, 0], [11, -11, 0, 1, 0], [12, -12, 0, 0, 1]]], np.float32)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("jit", [False, True])
def test_with_agent_id_off_is_identity(jit):
    out = _jit(with_agent_id, jit, False)(OBS)
    assert out.shape == (2, 3, 2)
    np.testing.assert_array_equal(out, np.asarray(OBS))


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("use_id", [False, True])
def test_local_vs_global(jit, use_id):
    """local = own obs (⊕ id); global = the env's per-agent state untouched (it already carries the id)."""
    loc = _jit(CRITIC_INPUTS["local"], jit, use_id)(OBS, STATE)
    glo = _jit(CRITIC_INPUTS["global"], jit, use_id)(OBS, STATE)
    assert loc.shape == ((2, 3, 5) if use_id else (2, 3, 2))
    np.testing.assert_array_equal(loc[..., :2], np.asarray(OBS))
    if use_id:
        np.testing.assert_array_equal(loc[1, 2, 2:], [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(glo, np.asarray(STATE))


def test_critic_input_dim():
    """obs 5, state 11, 3 agents: local+id = 5 + 3 = 8; local = 5; global = 11 whatever use_id."""
    assert critic_input_dim("local", 5, 11, 3, True) == 8
    assert critic_input_dim("local", 5, 11, 3, False) == 5
    assert critic_input_dim("global", 5, 11, 3, True) == 11
    assert critic_input_dim("global", 5, 11, 3, False) == 11
    # and it matches what the input functions produce
    assert CRITIC_INPUTS["local"](OBS, STATE, True).shape[-1] == critic_input_dim("local", 2, 4, 3, True)
    assert CRITIC_INPUTS["global"](OBS, STATE, True).shape[-1] == critic_input_dim("global", 2, 4, 3, True)

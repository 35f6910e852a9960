"""The worked example of docs/architecture.md: adding an algorithm is one file and one test.

The "file" is the block between the markers below (docs/architecture.md shows it verbatim; this test checks
that the doc and the code agree): dual-clip PPO (Ye et al. 2020, eq. 5) as a policy objective registered
under a new ratio kind, and an algorithm declaring it. The "test" is the rest: hand numbers for the
objective and a smoke run through the standard trainer.
"""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

# --- example: algos/dcppo.py ------------------------------------------------------------------------------
from trustmarl.algos import ALGORITHMS, Algorithm
from trustmarl.seams.surrogates import ObjectiveInputs, clipped_flags, masked_share, register_objective
from trustmarl.trust_region import clipped_surrogate


def dual_clip_objective(x: ObjectiveInputs, c: float = 3.0):
    """Dual-clip PPO (Ye et al. 2020, eq. 5): for Â < 0 the clipped surrogate is bounded below by c·Â,
    ``L = −E[M · max(min(rÂ, clip(r)Â), cÂ)]`` where Â < 0, PPO's surrogate elsewhere."""
    ratio = jnp.exp(x.logp - x.logp_old)
    if x.inner is not None:  # a sequential order's clipped factor of the preceding agents (A2PO, B2MAPO)
        ratio = ratio * x.inner
    ppo = clipped_surrogate(ratio, x.adv, x.low, x.high)
    surr = jnp.where(x.adv < 0, jnp.maximum(ppo, c * x.adv), ppo)
    clipped = clipped_flags(ratio, x.adv, x.low, x.high) | ((x.adv < 0) & (ratio * x.adv < c * x.adv))
    return -masked_share(x.factor * surr, x.mask, x.mask_all), clipped


register_objective("dual_clip", dual_clip_objective)
DCPPO = Algorithm(name="dcppo", summary="MAPPO with dual-clip PPO's surrogate", reference="Ye et al. 2020, eq. 5",
                  config_defaults={"ratio": "dual_clip", "critic_input": "global"})
# --- end of example ---------------------------------------------------------------------------------------


@pytest.fixture
def dcppo(monkeypatch):
    monkeypatch.setitem(ALGORITHMS, "dcppo", DCPPO)  # the example's one line in algos/__init__.py


@pytest.mark.parametrize("jit", [False, True])
def test_dual_clip_on_hand_numbers(jit):
    """ratios 5, 1.5, 0.5 with Â = −1, +1, −1 (ε = 0.2, c = 3): PPO gives min(−5, −1.2) = −5 → dual clip
    max(−5, −3) = −3 (dual clip binds); min(1.5, 1.2) = 1.2 and min(−0.5, −0.8) = −0.8 (PPO's clip binds).
    Loss = −(−3 + 1.2 − 0.8)/3 = 2.6/3; every entry's gradient is clipped away."""
    r = jnp.array([[5.0, 1.5, 0.5]])
    x = ObjectiveInputs(jnp.log(r), jnp.zeros((1, 3)), jnp.array([[-1.0, 1.0, -1.0]]), jnp.zeros((1,)),
                        jnp.ones((1, 3), bool), jnp.ones((1, 3)), jnp.asarray(0.8), jnp.asarray(1.2))
    f = jax.jit(dual_clip_objective) if jit else dual_clip_objective
    loss, clipped = f(x)
    assert float(loss) == pytest.approx(2.6 / 3, rel=1e-6)
    np.testing.assert_array_equal(np.asarray(clipped), [[True, True, True]])


def test_dcppo_trains_with_the_standard_trainer(dcppo):
    from trustmarl.trainers import make_train

    from conftest import tiny
    trainer = make_train(tiny(algo="dcppo", env="mpe_spread", num_agents=2))
    _, m = jax.jit(trainer)(jax.random.PRNGKey(0))
    assert np.isfinite(np.asarray(m["policy_loss"])).all()


def test_docs_show_the_example_verbatim():
    here = os.path.dirname(__file__)
    src = open(__file__).read()
    block = src[src.index("from trustmarl.algos import ALGORITHMS"):src.index("# --- end of example")].strip()
    doc = open(os.path.join(here, "..", "docs", "architecture.md")).read()
    assert block in doc

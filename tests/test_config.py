"""Config validation: one-line errors naming the key, the value and what is allowed."""
import pytest

from trustmarl.config import Config, ConfigError


def _err(**kw):
    with pytest.raises(ConfigError) as info:
        Config.build(kw)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def test_unknown_key_is_named_with_suggestion():
    msg = _err(learning_rat=1e-3)
    assert "learning_rat" in msg


def test_close_key_suggests():
    assert "did you mean clip_eps" in _err(clip_epss=0.1)


@pytest.mark.parametrize("kw,needle", [
    ({"lr": -1.0}, "lr=-1.0 must be > 0"),
    ({"gamma": 1.5}, "gamma=1.5 must be <= 1"),
    ({"ratio": "both"}, "ratio='both' is not one of independent, joint"),
    ({"algo": "dqn"}, "algo='dqn' is unknown"),
    ({"env": "atari"}, "env='atari' is unknown"),
    ({"num_envs": 0}, "num_envs=0 must be >= 1"),
    ({"network": "lstm"}, "network='lstm' is not one of ff, gru"),
    ({"hidden": ()}, "hidden=() must be"),
])
def test_bad_values(kw, needle):
    assert needle in _err(**kw)


def test_cli_strings_are_parsed_and_bad_ones_named():
    c = Config.from_args(["lr=1e-3", "hidden=32,32", "anneal_lr=false", "num_envs=8", "algo=ippo"])
    assert c.lr == 1e-3 and c.hidden == (32, 32) and c.anneal_lr is False and c.num_envs == 8
    with pytest.raises(ConfigError, match="num_envs='eight' is not an integer"):
        Config.from_args(["num_envs=eight"])
    with pytest.raises(ConfigError, match="is not key=value"):
        Config.from_args(["lr"])


def test_minibatches_must_divide_batch():
    msg = _err(num_envs=3, rollout_length=5, num_minibatches=4)
    assert "num_minibatches=4 must divide the 15" in msg
    msg = _err(network="gru", num_envs=6, num_minibatches=4)
    assert "must divide the 6 envs" in msg


def test_layering_algorithm_preset_user():
    mappo = Config.build({"algo": "mappo", "env": "smax"})
    assert mappo.value_norm and mappo.critic_input == "global" and mappo.network == "gru"  # algo + preset
    ippo = Config.build({"algo": "ippo", "env": "mpe_spread"})
    assert ippo.critic_input == "local" and not ippo.value_norm
    user = Config.build({"algo": "mappo", "env": "smax", "network": "ff"})
    assert user.network == "ff"


def test_clip_alpha_gives_eps_over_n():
    c = Config.build({"algo": "mappo", "clip_alpha": 0.6})
    assert c.derived(3).clip_eps == pytest.approx(0.2)
    assert c.derived(6).clip_eps == pytest.approx(0.1)


def test_clip_alpha_with_the_joint_ratio_is_an_error():
    # Algorithm 1 clips the joint ratio with ε itself; α/N (§6.2) is the share of one independent ratio
    assert _err(algo="jrppo", clip_alpha=0.5).startswith("clip_alpha=0.5 shares a trust region among independent")
    assert "set clip_eps" in _err(algo="mappo", ratio="joint", clip_alpha=1.0)
    assert Config.build({"algo": "mappo", "ratio": "independent", "clip_alpha": 1.0}).clip_alpha == 1.0


def test_jrppo_smax_preset_clips_the_joint_ratio_at_eps_0_1_for_every_agent_count():
    c = Config.build({"algo": "jrppo", "env": "smax"})
    assert c.clip_alpha == 0.0 and c.derived(5).clip_eps == c.derived(27).clip_eps == pytest.approx(0.1)


def test_explicit_clip_eps_outranks_preset_alpha(monkeypatch):
    # a preset may size the clip by α/N; a user's ε must win (a toy preset: no shipped preset sets α today)
    from trustmarl import presets
    monkeypatch.setitem(presets.PRESETS, ("ippo", "smax"), {"clip_alpha": 0.5})
    assert Config.build({"algo": "ippo", "env": "smax"}).derived(5).clip_eps == pytest.approx(0.1)
    c = Config.build({"algo": "ippo", "env": "smax", "clip_eps": 0.3})
    assert c.clip_alpha == 0.0 and c.derived(5).clip_eps == pytest.approx(0.3)
    both = Config.build({"algo": "ippo", "env": "smax", "clip_eps": 0.3, "clip_alpha": 1.0})
    assert both.derived(5).clip_eps == pytest.approx(0.2)


def test_env_options_json_checked():
    assert "is not JSON" in _err(env_options="{bad")


def test_key_of_another_family_is_an_error_naming_the_algorithm(monkeypatch):
    """Config sections by family: an algorithm of a family that does not read the on-policy section
    rejects its keys (a toy family registered for the test; today every algorithm is on-policy)."""
    from trustmarl import config as C
    from trustmarl.algos import ALGORITHMS, Algorithm
    toy = Algorithm(name="toy", summary="test", reference="-", config_defaults={}, family="toy_family")
    monkeypatch.setitem(ALGORITHMS, "toy", toy)
    monkeypatch.setitem(C.FAMILY_SECTIONS, "toy_family", ("common",))
    assert Config.build({"algo": "toy", "lr": 1e-3}).lr == 1e-3
    msg = _err(algo="toy", clip_eps=0.1)
    assert msg == ("clip_eps=0.1 is not read by algo=toy (family toy_family); "
                   "`trustmarl train --keys algo=toy` lists its keys")
    names = [f.name for f in Config.keys_for("toy")]
    assert "lr" in names and "clip_eps" not in names and "rollout_length" not in names
    assert "clip_eps" in [f.name for f in Config.keys_for("mappo")]


def test_derived_values_are_a_typed_record():
    d = Config.build({"num_envs": 4, "rollout_length": 8, "total_env_steps": 100, "clip_alpha": 0.6,
                      "num_minibatches": 1}).derived(3)
    assert d.steps_per_update == 32 and d.num_updates == 3 and d.env_steps == 96
    assert d.clip_eps == pytest.approx(0.2) and d.value_clip_eps == pytest.approx(0.2)

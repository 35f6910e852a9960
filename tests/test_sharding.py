"""Seeds sharded over devices (the ``devices`` key, :class:`trustmarl.runtime.drivers.JaxDriver`).

The CPU has one XLA device unless ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` is set before jax is
imported, so the two-device run happens in one small subprocess; device selection and the config's
divisibility check are tested here directly.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from trustmarl.config import Config, ConfigError
from trustmarl.runtime.drivers import select_devices

# One subprocess: the same tiny config trained with devices=1 and devices=2 (2 forced host devices); it
# prints one JSON line with the comparison. Two updates in one chunk, a checkpoint written and read back
# from the sharded state.
SCRIPT = textwrap.dedent("""
    import json, os, sys, tempfile
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    import jax, numpy as np
    from trustmarl.config import Config
    from trustmarl.runtime.checkpoints import latest_checkpoint, restore_checkpoint
    from trustmarl.runtime.loop import make_driver, train
    kw = dict(algo="mappo", env="mpe_spread", num_seeds=2, num_envs=2, rollout_length=8, total_env_steps=32,
              update_epochs=1, num_minibatches=1, hidden=(16,), log_every=2, progress=False)
    one = train(Config.build(kw, devices=1), write=False, collect_metrics=True)["metrics"]
    out = tempfile.mkdtemp()
    cfg2 = Config.build(kw, devices=2, out_dir=out, run_name="sharded")
    driver = make_driver(cfg2)
    two = train(cfg2, plot=False, collect_metrics=True, driver=driver)
    template = driver.init()  # compiled once per driver
    run_dir = two["run_dir"]
    restored = restore_checkpoint(run_dir, template, latest_checkpoint(run_dir))
    leaf = jax.tree.leaves(template)[0]
    diffs = {k: float(np.nanmax(np.abs(one[k] - two["metrics"][k]), initial=0.0)) for k in one}
    close = {k: bool(np.allclose(one[k], two["metrics"][k], rtol=1e-5, atol=1e-5, equal_nan=True)) for k in one}
    print("RESULT " + json.dumps({
        "num_devices": len(jax.devices()), "driver_devices": len(driver.devices),
        "state_devices": len(leaf.sharding.device_set), "keys": sorted(one), "close": close, "diffs": diffs,
        "returns_equal": bool(np.array_equal(one["return_mean"], two["metrics"]["return_mean"], equal_nan=True)),
        "shapes_equal": all(one[k].shape == two["metrics"][k].shape for k in one),
        "restored_devices": len(jax.tree.leaves(restored)[0].sharding.device_set),
        "summary_devices": json.load(open(os.path.join(run_dir, "config.json")))["devices_used"]}))
""")


@pytest.fixture(scope="module")
def two_devices() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert line, proc.stdout[-2000:] + proc.stderr[-2000:]
    return json.loads(line[-1][len("RESULT "):])


def test_two_devices_shard_the_seeds(two_devices):
    r = two_devices
    assert r["num_devices"] == 2 and r["driver_devices"] == 2
    assert r["state_devices"] == 2  # the train state really lives on both devices
    assert r["restored_devices"] == 2  # a checkpoint of the sharded state restores sharded
    assert len(r["summary_devices"]) == 2


def test_two_devices_match_one_device(two_devices):
    """Every metric of every seed and update agrees with the one-device run to float32 rounding (XLA
    compiles a program for 1 seed per device instead of 2, which may round differently; the rollouts of the
    first updates, hence the returns, are bit-identical)."""
    r = two_devices
    assert r["shapes_equal"]
    assert {"return_mean", "policy_loss", "value_loss", "entropy"} <= set(r["keys"])
    bad = {k: r["diffs"][k] for k, ok in r["close"].items() if not ok}
    assert not bad, bad
    assert r["returns_equal"]


class _Dev:
    platform = "cpu"


def test_select_devices_explicit_and_auto():
    eight = [_Dev() for _ in range(8)]
    assert select_devices(1, 4, eight) == eight[:1]
    assert select_devices(4, 8, eight) == eight[:4]
    assert select_devices(0, 8, eight) == eight  # all of them
    assert select_devices(0, 5, eight) == eight[:5]  # the most that divide 5
    assert select_devices(0, 12, eight) == eight[:6]
    assert select_devices(0, 3, eight[:2]) == eight[:1]  # 3 seeds on 2 devices: one device, nothing padded


def test_select_devices_errors_are_one_line():
    two = [_Dev(), _Dev()]
    with pytest.raises(ConfigError, match=r"devices=4 but jax.devices\(\) has 2 \(cpu\); allowed: 0") as err:
        select_devices(4, 4, two)
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="devices=2 does not divide num_seeds=3"):
        select_devices(2, 3, two)


def test_config_rejects_a_device_count_not_dividing_the_seeds():
    with pytest.raises(ConfigError, match=r"devices=2 does not divide num_seeds=3; allowed:"):
        Config.build(num_seeds=3, devices=2)
    with pytest.raises(ConfigError, match=r"devices=-1 must be >= 0"):
        Config.build(devices=-1)
    assert Config.build(num_seeds=3, devices=0).devices == 0
    assert Config.build(num_seeds=4, devices="2").devices == 2

"""benchmarks/bench_parity.py's pure helpers on hand-computed numbers (no training)."""
import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_parity as bp  # noqa: E402


def test_steps_to_threshold_first_run_of_three():
    end = bp.update_end_steps(6, 100)  # 100, 200, ..., 600
    assert end.tolist() == [100, 200, 300, 400, 500, 600]
    # means of three ending at index 2, 3, 4: 0.467, 0.767, 0.833 -> update index 4 (ends at 500)
    assert bp.steps_to_threshold(end, [0.0, 0.5, 0.9, 0.9, 0.7, 1.0]) == 500
    # a single update at 1.0 does not count before two more updates exist
    assert math.isnan(bp.steps_to_threshold(end[:2], [1.0, 1.0]))
    assert math.isnan(bp.steps_to_threshold(end, [0.79] * 6))
    assert bp.steps_to_threshold(end, [0.8] * 6) == 300  # reaching 0.8 counts
    # an update without ended episodes (NaN) spoils its windows
    assert bp.steps_to_threshold(end, [1, 1, np.nan, 1, 1, 1]) == 600


def test_window_mean_before_checkpoint():
    end = bp.update_end_steps(5, 100)
    vals = [1.0, 2.0, 3.0, 4.0, 5.0]
    assert bp.window_mean(end, vals, 350, 2) == 2.5  # updates ending at 200, 300
    assert bp.window_mean(end, vals, 500, 10) == 3.0  # fewer updates than the window: all of them
    assert bp.window_mean(end, [1.0, np.nan, 3.0, 4.0, 5.0], 300, 3) == 2.0  # NaN skipped
    assert math.isnan(bp.window_mean(end, vals, 99, 2))


def test_mean_std_and_summary():
    m, s = bp.mean_std([1.0, 3.0, np.nan])
    assert (m, s) == (2.0, 1.0)  # population std over the finite values
    run = {"seed": 0, "end_steps": bp.update_end_steps(4, 10), "win": [0.9, 0.9, 0.9, 1.0],
           "ret": [1.0, 1.0, 1.0, 2.0], "env_steps": 40, "run_s": 4.0, "cpu_s": 8.0, "compile_s": 1.0}
    row = bp.summarise_seed(run, [20, 40], window=2)
    assert row["steps_to_0.8"] == 30 and row["env_steps_per_s"] == 10 and row["env_steps_per_cpu_s"] == 5
    assert row["wall_to_0.8_s"] == 3.0 and row["win@20"] == 0.9 and row["return@40"] == 1.5
    other = dict(run, win=[0.0] * 4, seed=1)
    summary = bp.summarise([row, bp.summarise_seed(other, [20, 40], window=2)])
    assert summary["reached"] == 1 and summary["steps_to_0.8"] == (30.0, 0.0)
    assert summary["win@40"] == pytest.approx((0.475, 0.475))


def test_parsing_and_configurations():
    assert bp.parse_steps("2e6,5e5,5e5") == [500_000, 2_000_000]
    for bad in ("5e5,x", "0", "1.5"):
        with pytest.raises(ValueError, match="--steps item"):
            bp.parse_steps(bad)
    assert bp.parse_config_name("defaults+precision=bf16") == ("defaults", {"precision": "bf16"})
    with pytest.raises(ValueError, match="not key=value"):
        bp.parse_config_name("defaults+bf16")
    over = bp.ours_overrides("peer_settings-post_gru_gain", "3s5z")
    assert over["post_gru_gain"] == pytest.approx(math.sqrt(2)) and over["map"] == "3s5z"
    assert over["use_active_masks"] is False  # the other switches keep the peer's values
    with pytest.raises(ValueError, match="not a parity switch"):
        bp.ours_overrides("peer_settings-lr", "2s3z")
    with pytest.raises(ValueError, match="unknown"):
        bp.ours_overrides("nope", "2s3z")


def test_diagnostics_at_pools_seeds_per_update():
    series = [{"diag": {"entropy": [2.0, 1.0, 0.5]}}, {"diag": {"entropy": [2.2, 1.4]}},
              {"win": [0.0]}]  # a run saved before diagnostics were recorded: left out
    got = bp.diagnostics_at(series, "entropy", [1, 2, 3, 4])
    assert got[0] == pytest.approx((2.1, 0.1)) and got[1] == pytest.approx((1.2, 0.2))
    assert got[2] == (0.5, 0.0)  # only the first seed ran a third update
    assert all(math.isnan(x) for x in got[3])
    assert all(math.isnan(x) for x in bp.diagnostics_at(series, "approx_kl", [1])[0])


def test_peer_value_loss_is_put_before_the_coefficient():
    # mappo_rnn_smax.py logs critic_loss[0] = VF_COEF * value_loss; trustmarl logs value_loss
    got = bp.peer_diagnostics({"value_loss": [0.1, 0.02], "entropy": [1.2, 1.1]}, vf_coef=0.5)
    assert got["value_loss"].tolist() == pytest.approx([0.2, 0.04])
    assert got["entropy"].tolist() == [1.2, 1.1]

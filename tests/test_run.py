"""Run folders, checkpoints and resume, and the command line."""
import csv
import json
from pathlib import Path

import jax
import numpy as np
import pytest

from trustmarl import cli, runtime as run
from trustmarl.runtime import checkpoints as ckpt
from trustmarl.runtime import logging as runlog
from trustmarl.runtime.loop import make_driver

from conftest import tiny

CFG = dict(algo="ippo", env="mpe_spread", num_agents=2, total_env_steps=4 * 8 * 4, num_seeds=2)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    summary = run.train(tiny(**CFG), run_dir=out / "a")
    return out / "a", summary


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_run_folder_contents(finished_run):
    d, summary = finished_run
    for name in ("config.json", "metrics.csv", "trust_region.csv", "learning_curve.png", "summary.json"):
        assert (d / name).exists(), name
    assert any((d / "tb").iterdir())
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["algo"] == "ippo" and cfg["num_agents"] == 2 and cfg["derived"]["num_updates"] == 4
    rows = _rows(d / "metrics.csv")
    assert len(rows) == 4 * 2  # updates x seeds
    assert {"seed", "update", "env_steps", "return_mean", "ratio_min_0", "tv_1", "sum_tv"} <= set(rows[0])
    tr = _rows(d / "trust_region.csv")
    assert len(tr) == 4 * 2 * 2  # updates x seeds x epochs
    assert ckpt.latest_checkpoint(d) == 4
    assert summary["env_steps"] == 4 * 32


def test_interrupted_run_resumes_to_the_same_result(tmp_path, monkeypatch, finished_run):
    ref_dir, _ = finished_run
    config = tiny(**CFG)
    calls = {"n": 0}
    original = runlog.RunLogger.log_chunk

    def crash_on_third(self, metrics, first):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # the process dies after update 3 ran, before it was logged or saved
        return original(self, metrics, first)

    monkeypatch.setattr(runlog.RunLogger, "log_chunk", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        run.train(config, run_dir=tmp_path / "b")
    monkeypatch.setattr(runlog.RunLogger, "log_chunk", original)
    assert ckpt.latest_checkpoint(tmp_path / "b") == 2
    run.train(run.load_config(tmp_path / "b"), run_dir=tmp_path / "b", resume=True)
    template = make_driver(config).init()
    a = ckpt.restore_checkpoint(ref_dir, template)
    b = ckpt.restore_checkpoint(tmp_path / "b", template)
    for x, y in zip(jax.tree.leaves(a.learner), jax.tree.leaves(b.learner)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    rows = _rows(tmp_path / "b" / "metrics.csv")
    assert [int(r["update"]) for r in rows] == [1, 1, 2, 2, 3, 3, 4, 4]
    ref = _rows(ref_dir / "metrics.csv")
    assert [r["value_loss"] for r in rows] == [r["value_loss"] for r in ref]


def test_cli_eval_render_list(finished_run, capsys):
    d, _ = finished_run
    assert cli.main(["eval", str(d), "--episodes", "4"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["episodes"] == 4 and np.isfinite(out["return_mean"])
    gif = d / "ep.gif"
    assert cli.main(["render", str(d), "--out", str(gif)]) == 0
    assert gif.exists() and gif.stat().st_size > 1000
    assert cli.main(["list"]) == 0
    text = capsys.readouterr().out
    assert "27m_vs_30m" in text and "27 agents" in text and "jrppo" in text


def test_cli_plot_draws_trust_region_figures(finished_run, tmp_path, capsys):
    d, _ = finished_run
    for figure in ("ratio-range", "tv-cdf", "returns-tv"):
        out = tmp_path / f"{figure}.png"
        assert cli.main(["plot", figure, str(d), "--out", str(out)]) == 0
        assert out.exists() and out.stat().st_size > 5000
    assert cli.main(["plot", "fig99", str(d)]) == 2
    assert "figure 'fig99' is unknown" in capsys.readouterr().err
    out = tmp_path / "opts.png"
    assert cli.main(["plot", "tv-cdf", str(d), "--out", str(out), "--set", "source=trust_region",
                     "group_by=clip"]) == 0
    assert out.exists()
    assert cli.main(["plot", "tv-cdf", str(d), "--set", "rows=win_rate"]) == 2
    assert "plot option 'rows' is unknown for this figure; allowed: source, group_by" in capsys.readouterr().err
    assert cli.main(["plot", "joint-vs-independent", str(d), "--out", str(out), "--set", "rows=return_mean"]) == 0


def test_cli_errors_are_one_line(capsys, tmp_path):
    assert cli.main(["train", "lr=abc"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "trustmarl: error: lr='abc' is not a number"
    assert cli.main(["eval", str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err
    assert cli.main(["train", "--keys"]) == 0
    assert "clip_alpha" in capsys.readouterr().out
    assert cli.main(["train", "--keys", "algo=jrppo"]) == 0
    out = capsys.readouterr().out
    assert "keys read by algo=jrppo" in out and "ratio" in out and "default='joint'" in out
    assert cli.main(["train", "--keys", "algo=nope"]) == 2
    assert "algo='nope' is unknown" in capsys.readouterr().err


def test_checkpoint_write_is_atomic(tmp_path):
    """A crash while saving leaves the previous checkpoint readable (orbax renames a finished tmp dir)."""
    state = make_driver(tiny(**CFG)).init()
    ckpt.save_checkpoint(tmp_path, state, 1)
    names = [p.name for p in (tmp_path / "checkpoints").iterdir()]
    assert "1" in names and not any("tmp" in n for n in names)
    restored = ckpt.restore_checkpoint(tmp_path, state)
    for x, y in zip(jax.tree.leaves(state.learner), jax.tree.leaves(restored.learner)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))

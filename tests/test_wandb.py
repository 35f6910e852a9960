"""Optional Weights & Biases logging (``wandb=true``): a fake ``wandb`` module put in ``sys.modules`` records
what the run loop sends; the package itself is never needed (and is not installed by default)."""
from __future__ import annotations

import sys
import tomllib
import types
from pathlib import Path

import numpy as np
import pytest

from trustmarl.config import Config, ConfigError
from trustmarl.runtime.logging import WANDB_ID_FILE, RunLogger, read_scalars

ROOT = Path(__file__).resolve().parent.parent


class FakeWandb:
    """Stands in for the ``wandb`` package: ``init`` returns a run whose ``log``/``finish`` calls are kept."""

    def __init__(self):
        self.inits: list[dict] = []
        self.logs: list[tuple[dict, int]] = []
        self.finishes: list[dict] = []

    def module(self) -> types.ModuleType:
        mod = types.ModuleType("wandb")
        fake = self

        class Run:
            def log(self, data, step=None):
                fake.logs.append((dict(data), step))

            def finish(self, exit_code=None):
                fake.finishes.append({"exit_code": exit_code})

        def init(**kwargs):
            fake.inits.append(kwargs)
            return Run()

        mod.init = init
        return mod


def _install(monkeypatch, fake: FakeWandb):
    monkeypatch.setitem(sys.modules, "wandb", fake.module())
    for var in ("WANDB_PROJECT", "WANDB_DIR", "WANDB_RUN_GROUP"):
        monkeypatch.delenv(var, raising=False)


TINY = dict(algo="ippo", env="mpe_spread", num_seeds=2, num_envs=2, rollout_length=13, total_env_steps=78,
            update_epochs=1, num_minibatches=1, hidden=(16,), log_every=3, progress=False)


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory):
    """One tiny 3-update training run (2 seeds) with wandb=true and the fake module (MPE episodes last 25
    steps: the first ones end in update 2)."""
    from trustmarl.runtime.loop import train
    fake = FakeWandb()
    out = tmp_path_factory.mktemp("wandb_runs")
    with pytest.MonkeyPatch.context() as mp:
        _install(mp, fake)
        summary = train(Config.build(TINY, wandb=True, out_dir=str(out), run_name="r"), plot=False)
    return fake, Path(summary["run_dir"])


def test_a_run_logs_its_tensorboard_scalars_to_wandb(logged_run):
    fake, run_dir = logged_run
    assert len(fake.inits) == 1 and len(fake.finishes) == 1
    init = fake.inits[0]
    assert init["name"] == "r" and init["project"] == "trustmarl" and init["resume"] == "allow"
    assert init["id"] == (run_dir / WANDB_ID_FILE).read_text().strip() and len(init["id"]) == 16
    assert init["dir"] == str(run_dir)  # wandb's files stay in the run folder
    assert init["config"]["algo"] == "ippo" and init["config"]["num_seeds"] == 2
    assert init["config"]["derived"]["steps_per_update"] == 26 and init["config"]["devices_used"]
    assert fake.finishes == [{"exit_code": 0}]
    # One log call per update, at the TensorBoard step (env steps), holding exactly TensorBoard's scalars.
    assert [step for _, step in fake.logs] == [26, 52, 78]
    assert [data["update"] for data, _ in fake.logs] == [1, 2, 3]
    tb = {(tag, step): value for tag, step, value in read_scalars(run_dir / "tb")}
    sent = {(k, step): v for data, step in fake.logs for k, v in data.items() if k != "update"}
    assert set(sent) == set(tb)
    assert {"return_mean", "policy_loss", "value_loss", "trust_region/sum_tv"} <= {k for k, _ in sent}
    for key, value in sent.items():
        assert np.float32(value) == np.float32(tb[key]), key  # TensorBoard stores float32


def test_wandb_values_are_the_seed_means_of_metrics_csv(logged_run):
    import csv
    fake, run_dir = logged_run
    with open(run_dir / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for data, step in fake.logs:
        seeds = [r for r in rows if int(r["update"]) == data["update"]]
        assert len(seeds) == 2
        mean = np.mean([float(r["policy_loss"]) for r in seeds])
        assert data["policy_loss"] == pytest.approx(mean, rel=1e-5, abs=1e-7)  # CSV holds 6 digits


def _chunk(updates: int = 2, seeds: int = 2) -> dict:
    """Chunk metrics as the trainer returns them: [S, n] scalars."""
    base = np.arange(seeds * updates, dtype=np.float32).reshape(seeds, updates)
    return {"return_mean": base + 1.0, "policy_loss": base * 0.5}


def test_resume_continues_the_same_wandb_run_and_a_failure_finishes_with_exit_code_1(tmp_path, monkeypatch):
    fake = FakeWandb()
    _install(monkeypatch, fake)
    logger = RunLogger(tmp_path, 1, 10, wandb_config={"algo": "ippo"})
    logger.log_chunk(_chunk(), 0)
    logger.close()
    first_id = fake.inits[0]["id"]
    assert fake.logs == [({"return_mean": 2.0, "policy_loss": 0.5, "update": 1}, 10),
                         ({"return_mean": 3.0, "policy_loss": 1.0, "update": 2}, 20)]
    assert fake.finishes == [{"exit_code": 0}]
    logger = RunLogger(tmp_path, 1, 10, resume_from=2, wandb_config={"algo": "ippo"})
    logger.log_chunk(_chunk(1), 2)
    logger.close(failed=True)
    assert fake.inits[1]["id"] == first_id and fake.inits[1]["resume"] == "allow"
    assert fake.logs[-1] == ({"return_mean": 1.5, "policy_loss": 0.25, "update": 3}, 30)
    assert fake.finishes[-1] == {"exit_code": 1}
    # A new run (no resume) in another folder gets a new id.
    (tmp_path / "other").mkdir()
    RunLogger(tmp_path / "other", 1, 10, wandb_config={}).close()
    assert fake.inits[2]["id"] != first_id


def test_wandb_settings_come_from_its_own_environment_variables(tmp_path, monkeypatch):
    fake = FakeWandb()
    _install(monkeypatch, fake)
    monkeypatch.setenv("WANDB_PROJECT", "from-env")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wdir"))
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    RunLogger(tmp_path / "a", 1, 10, wandb_config={}).close()
    assert "project" not in fake.inits[-1] and "dir" not in fake.inits[-1]  # wandb reads the variables itself
    RunLogger(tmp_path / "b", 1, 10, wandb_config={}, wandb_project="mine").close()
    assert fake.inits[-1]["project"] == "mine"  # the config key outranks the variable
    # A sweep trial (a run folder beside sweep.json) is grouped by its sweep, unless WANDB_RUN_GROUP says.
    sweep = tmp_path / "sweeps" / "grid1"
    (sweep / "t00000").mkdir(parents=True)
    (sweep / "sweep.json").write_text("{}")
    RunLogger(sweep / "t00000", 1, 10, wandb_config={}).close()
    assert fake.inits[-1]["group"] == "grid1"
    monkeypatch.setenv("WANDB_RUN_GROUP", "g")
    RunLogger(sweep / "t00000", 1, 10, wandb_config={}).close()
    assert "group" not in fake.inits[-1]


def test_missing_wandb_is_a_one_line_error_before_anything_runs(tmp_path, monkeypatch, capsys):
    from trustmarl.cli import main
    from trustmarl.runtime.loop import train
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb raises ImportError
    cfg = Config.build(TINY, wandb=True, out_dir=str(tmp_path), run_name="r")
    with pytest.raises(ConfigError, match=r"^wandb=true needs the wandb package, which is not installed; allowed: "
                                          r"pip install 'trustmarl\[wandb\]'") as err:
        train(cfg)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "r").exists()  # no run folder, no compile
    code = main(["train", "wandb=true", "progress=false", f"out_dir={tmp_path}", "total_env_steps=16"])
    assert code == 2
    assert "pip install 'trustmarl[wandb]'" in capsys.readouterr().err


def test_wandb_failing_to_start_is_one_line(tmp_path, monkeypatch):
    mod = types.ModuleType("wandb")

    def init(**kwargs):
        raise RuntimeError("api key not configured\n(no-tty)")

    mod.init = init
    monkeypatch.setitem(sys.modules, "wandb", mod)
    with pytest.raises(ConfigError, match=r"wandb.init failed: RuntimeError: api key not configured \(no-tty\); "
                                          r".*WANDB_MODE=offline") as err:
        RunLogger(tmp_path, 1, 10, wandb_config={})
    assert "\n" not in str(err.value)


def test_wandb_is_off_by_default_and_only_an_optional_extra(monkeypatch, tmp_path):
    assert Config.build().wandb is False
    monkeypatch.setitem(sys.modules, "wandb", None)
    logger = RunLogger(tmp_path, 1, 10)  # no wandb_config: never imports wandb
    logger.log_chunk(_chunk(), 0)
    logger.close()
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any(dep.startswith("wandb") for dep in meta["dependencies"])
    assert meta["optional-dependencies"]["wandb"] == ["wandb==0.31.0"]


def test_a_run_that_stops_on_an_error_finishes_its_wandb_run_with_exit_code_1(tmp_path, monkeypatch):
    """The loop passes the failure on: a chunk that raises (here a stand-in for the chunk loop) ends the W&B
    run with exit code 1, and the error still reaches the caller."""
    from trustmarl.runtime import loop
    fake = FakeWandb()
    _install(monkeypatch, fake)

    def broken_chunks(*args, **kwargs):
        raise RuntimeError("chunk failed")

    monkeypatch.setattr(loop, "_chunks", broken_chunks)
    cfg = Config.build(TINY, wandb=True, out_dir=str(tmp_path), run_name="r")
    driver = loop.make_driver(cfg)
    monkeypatch.setattr(driver, "init", lambda: None)  # nothing is compiled: the chunk loop fails first
    with pytest.raises(RuntimeError, match="chunk failed"):
        loop.train(cfg, driver=driver, plot=False)
    assert len(fake.inits) == 1 and fake.logs == [] and fake.finishes == [{"exit_code": 1}]

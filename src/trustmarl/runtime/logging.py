"""Run-folder logs: ``metrics.csv`` (one row per seed and update), ``trust_region.csv`` (one row per seed,
update and epoch) and TensorBoard scalars (seed means), from a chunk of metrics ``[S, n, ...]``.

With ``wandb=true`` the same scalars as TensorBoard also go to Weights & Biases (:class:`WandbSink`; the
package is optional: ``pip install 'trustmarl[wandb]'``).

Rows logged after the last checkpoint are dropped on resume (:func:`_truncate_csv`; a row cut short by a
kill is dropped too), and so are TensorBoard events (:func:`compact_tb`: the event files are rewritten into
one holding each (tag, step) once, up to the checkpoint), so a resumed run has no duplicated or missing
updates in any of its logs.
"""
from __future__ import annotations

import csv
import io
import math
import os
import struct
import uuid
from pathlib import Path
from typing import Any, Optional

import numpy as np

from trustmarl.runtime import faults

TR_PREFIX = "tr/"


WANDB_INSTALL = "pip install 'trustmarl[wandb]' (or pip install wandb)"
WANDB_ID_FILE = "wandb_id.txt"


def require_wandb():
    """The ``wandb`` module, or a one-line :class:`~trustmarl.config.ConfigError` saying how to install it
    (checked before anything is compiled or written)."""
    from trustmarl.config import ConfigError
    try:
        import wandb
    except ImportError:
        raise ConfigError(f"wandb=true needs the wandb package, which is not installed; allowed: "
                          f"{WANDB_INSTALL}, or wandb=false") from None
    return wandb


class WandbSink:
    """The run's TensorBoard scalars (seed means per update, step = env steps) sent to Weights & Biases.

    ``wandb.init`` gets the run folder's name, the resolved config, ``resume="allow"`` and an id kept in the run
    folder (``wandb_id.txt``), so ``trustmarl resume`` continues the same W&B run; everything else is wandb's own
    settings and environment variables (``WANDB_MODE=offline`` logs to disk for a later ``wandb sync``,
    ``WANDB_MODE=disabled``, ``WANDB_ENTITY``, ``WANDB_API_KEY``, ``WANDB_RUN_GROUP``, ...). Its files go in the
    run folder unless ``WANDB_DIR`` says where; the project is ``project``, else ``$WANDB_PROJECT``, else
    ``trustmarl``. A trial of ``trustmarl sweep`` (a run folder beside ``sweep.json``) is grouped by its sweep's
    folder name unless ``WANDB_RUN_GROUP`` is set."""

    def __init__(self, run_dir: Path, config: dict, project: str = "", resume: bool = False):
        from trustmarl.config import ConfigError
        wandb = require_wandb()
        run_dir = Path(run_dir)
        id_path = run_dir / WANDB_ID_FILE
        run_id = id_path.read_text().strip() if resume and id_path.is_file() else ""
        if not run_id:
            run_id = uuid.uuid4().hex[:16]
            tmp = id_path.with_name(id_path.name + ".tmp")
            tmp.write_text(run_id + "\n")
            os.replace(tmp, id_path)
        kwargs: dict[str, Any] = {"name": run_dir.name, "id": run_id, "resume": "allow", "config": config}
        if project or not os.environ.get("WANDB_PROJECT"):  # an explicit argument would outrank the variable
            kwargs["project"] = project or "trustmarl"
        if not os.environ.get("WANDB_DIR"):
            kwargs["dir"] = str(run_dir)
        if not os.environ.get("WANDB_RUN_GROUP") and (run_dir.parent / "sweep.json").is_file():
            kwargs["group"] = run_dir.parent.name
        try:
            self.run = wandb.init(**kwargs)
        except Exception as err:  # noqa: BLE001 - no login, no network, a bad setting: one line, nothing trained
            raise ConfigError(f"wandb.init failed: {type(err).__name__}: {' '.join(str(err).split())[:300]}; "
                              f"`wandb login` (or WANDB_API_KEY), WANDB_MODE=offline to log without a server, or "
                              f"wandb=false") from None
        if self.run is None:  # wandb returns no run object in some modes; logging through the module still works
            self.run = wandb

    def log(self, scalars: dict, step: int):
        """One update's scalars; W&B keeps only increasing steps (after a resume it keeps what the killed run
        logged for the updates replayed since the checkpoint; on the CPU they are the same values)."""
        self.run.log(scalars, step=int(step))

    def finish(self, exit_code: int = 0):
        self.run.finish(exit_code=exit_code)


class RunLogger:
    """Writes metrics.csv, trust_region.csv and TensorBoard scalars from chunk metrics [S, n, ...]; with
    ``wandb_config`` (the resolved config as a dict) also the TensorBoard scalars to W&B (:class:`WandbSink`)."""

    def __init__(self, run_dir: Path, num_agents: int, steps_per_update: int, resume_from: int | None = None,
                 wandb_config: Optional[dict] = None, wandb_project: str = ""):
        self.dir = run_dir
        self.num_agents = num_agents
        self.steps_per_update = steps_per_update
        self.metrics_path = run_dir / "metrics.csv"
        self.tr_path = run_dir / "trust_region.csv"
        self.last_return = float("nan")
        self.last_win = float("nan")
        if resume_from is not None:
            kept = _truncate_csv(self.metrics_path, resume_from)
            _truncate_csv(self.tr_path, resume_from)
            compact_tb(run_dir / "tb", resume_from * steps_per_update)
            self.last_return, self.last_win = _last_means(kept)
        self._fields: dict[Path, list[str]] = {}
        for path in (self.metrics_path, self.tr_path):
            if path.exists():
                with open(path, newline="") as fh:
                    header = next(csv.reader(fh), None)
                if header:
                    self._fields[path] = header
        self.wandb = WandbSink(run_dir, wandb_config, wandb_project, resume=resume_from is not None) \
            if wandb_config is not None else None
        self.tb = EventWriter(run_dir / "tb", suffix=f".{os.getpid()}.u{resume_from or 0}")

    def _write(self, path: Path, rows: list[dict]):
        if not rows:
            return
        fields = self._fields.get(path)
        new = fields is None
        if new:
            fields = list(rows[0].keys())
            self._fields[path] = fields
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
        if new:
            w.writeheader()
        for r in rows:
            w.writerow({k: _fmt(r.get(k, float("nan"))) for k in fields})
        text = buf.getvalue()
        try:
            with open(path, "a", newline="") as fh:
                if faults.armed("csv_row") and path == self.metrics_path:  # test-only: die half-way through a row
                    faults.hit("csv_row", lambda: (fh.write(text[: len(text) // 2]), fh.flush()))
                fh.write(text)
        except OSError as err:
            raise _write_error(path, err) from err

    def log_chunk(self, metrics: dict, first_update: int):
        """``metrics``: dict of arrays [S, n, ...] for updates ``first_update .. first_update+n-1``."""
        m = {k: np.asarray(v) for k, v in metrics.items()}
        S, n = next(iter(m.values())).shape[:2]
        rows, tr_rows = [], []
        for u in range(n):
            update = first_update + u + 1
            for s in range(S):
                row = {"seed": s, "update": update, "env_steps": update * self.steps_per_update}
                for k, v in m.items():
                    if k.startswith(TR_PREFIX):
                        continue
                    _flatten_into(row, k, v[s, u])
                if any(k.startswith(TR_PREFIX) for k in m):
                    epochs = m[TR_PREFIX + "sum_tv"].shape[2]
                    for e in range(epochs):
                        tr = {"seed": s, "update": update, "epoch": e + 1, "env_steps": row["env_steps"]}
                        for k, v in m.items():
                            if k.startswith(TR_PREFIX):
                                _flatten_into(tr, _tr_name(k[len(TR_PREFIX):]), v[s, u, e])
                        tr["ratio_min"] = _nan_reduce(np.nanmin, m[TR_PREFIX + "ratio_min"][s, u, e])
                        tr["ratio_max"] = _nan_reduce(np.nanmax, m[TR_PREFIX + "ratio_max"][s, u, e])
                        tr_rows.append(tr)
                    last = tr_rows[-1]
                    for key in ("sum_tv", "joint_tv_bound", "joint_tv_coupling", "joint_tv_mc", "joint_kl"):
                        row[key] = last[key]
                    for i in range(self.num_agents):
                        row[f"tv_{i}"] = last[f"tv_{i}"]
                rows.append(row)
            means = {k: float(np.nanmean(v[:, u])) for k, v in m.items()
                     if v.ndim == 2 and not k.startswith(TR_PREFIX) and np.isfinite(v[:, u]).any()}
            step = update * self.steps_per_update
            for k, val in means.items():
                self.tb.add_scalar(k, val, step)
            if faults.armed("tb"):  # test-only: die with part of the chunk's events on disk
                faults.hit("tb", self.tb.flush)
            scalars = dict(means)
            if TR_PREFIX + "sum_tv" in m:
                scalars["trust_region/sum_tv"] = float(np.nanmean(m[TR_PREFIX + "sum_tv"][:, u, -1]))
                self.tb.add_scalar("trust_region/sum_tv", scalars["trust_region/sum_tv"], step)
            if self.wandb is not None:
                self.wandb.log({**scalars, "update": update}, step)
            if math.isfinite(means.get("return_mean", float("nan"))):
                self.last_return = means["return_mean"]
            if math.isfinite(means.get("win_rate", float("nan"))):
                self.last_win = means["win_rate"]
        self._write(self.metrics_path, rows)
        self._write(self.tr_path, tr_rows)
        self.tb.flush()

    def close(self, failed: bool = False):
        """Close the TensorBoard file and finish the W&B run (exit code 1 when the run stops on an error)."""
        self.tb.close()
        if self.wandb is not None:
            sink, self.wandb = self.wandb, None
            sink.finish(exit_code=1 if failed else 0)


def _write_error(path: Path, err: OSError):
    from trustmarl.runtime.errors import WriteError
    run_dir = Path(path).parent if Path(path).parent.name != "tb" else Path(path).parent.parent
    return WriteError(f"could not write {path}: {type(err).__name__}: {' '.join(str(err).split())}; the last "
                      f"checkpoint is intact (a row cut short is dropped on resume); free space (or fix the "
                      f"folder), then `trustmarl resume {run_dir}`")


def _nan_reduce(fn, x) -> float:
    """``fn`` (nanmin/nanmax) of ``x``, NaN without a warning when every entry is NaN (a non-finite update)."""
    x = np.asarray(x)
    return float(fn(x)) if np.isfinite(x).any() or np.isinf(x).any() else float("nan")


def _tr_name(k: str) -> str:
    return {"tv_mean": "tv", "kl_mean": "kl"}.get(k, k)


def _flatten_into(row: dict, key: str, value):
    value = np.asarray(value)
    if value.ndim == 0:
        row[key] = float(value)
    else:
        for i, x in enumerate(value.reshape(-1)):
            row[f"{key}_{i}"] = float(x)


def _fmt(x):
    if isinstance(x, float):
        return "" if math.isnan(x) else f"{x:.6g}"
    return x


def _truncate_csv(path: Path, last_update: int) -> list[dict]:
    """Keep only complete rows with update <= last_update (rows logged after the checkpoint are replayed);
    returns the kept rows. A row a kill cut short (no line end, or too few fields) is dropped; a file whose
    header itself is incomplete is removed. The new file replaces the old one atomically."""
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        text = fh.read()
    lines = text.splitlines(keepends=True)
    complete = [ln for ln in lines if ln.endswith(("\n", "\r"))]
    header = next(csv.reader([complete[0]]), None) if complete else None
    if not header or "update" not in header:
        path.unlink()
        return []
    col = header.index("update")
    kept_lines, kept = [complete[0]], []
    for ln in complete[1:]:
        row = next(csv.reader([ln]), None)
        if not row or len(row) != len(header):
            continue
        try:
            update = int(float(row[col]))
        except ValueError:
            continue
        if update <= last_update:
            kept_lines.append(ln)
            kept.append(dict(zip(header, row)))
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as fh:
        fh.write("".join(kept_lines))
    faults.hit("truncate")
    os.replace(tmp, path)
    return kept


def _last_means(rows: list[dict]) -> tuple[float, float]:
    """Seed-mean return and win rate of the last update among kept metrics rows (NaN when absent)."""
    if not rows:
        return float("nan"), float("nan")
    last = max(int(float(r["update"])) for r in rows)
    out = []
    for key in ("return_mean", "win_rate"):
        vals = [float(r[key]) for r in rows if int(float(r["update"])) == last and r.get(key, "") != ""]
        out.append(float(np.mean(vals)) if vals else float("nan"))
    return out[0], out[1]


# --- TensorBoard event files ------------------------------------------------------------------------------
COMPACT_NAME = "events.out.tfevents.0000000000.trustmarl-compacted"


def read_records(path: Path) -> list[bytes]:
    """The complete records of a TFRecord file (TensorBoard event file); a record a kill cut short, or one
    whose checksum does not match, ends the list."""
    from tensorboardX.record_writer import masked_crc32c
    data = Path(path).read_bytes()
    out, pos = [], 0
    while pos + 12 <= len(data):
        header = data[pos: pos + 8]
        (length,) = struct.unpack("Q", header)
        (crc,) = struct.unpack("I", data[pos + 8: pos + 12])
        end = pos + 12 + length + 4
        if crc != masked_crc32c(header) or end > len(data):
            break
        body = data[pos + 12: pos + 12 + length]
        (body_crc,) = struct.unpack("I", data[end - 4: end])
        if body_crc != masked_crc32c(body):
            break
        out.append(body)
        pos = end
    return out


def _record(body: bytes) -> bytes:
    from tensorboardX.record_writer import masked_crc32c
    header = struct.pack("Q", len(body))
    return header + struct.pack("I", masked_crc32c(header)) + body + struct.pack("I", masked_crc32c(body))


def read_scalars(tb_dir: Path) -> list[tuple[str, int, float]]:
    """Every scalar event ``(tag, step, value)`` in a run's ``tb/`` folder, in file order (name order)."""
    from tensorboardX.proto import event_pb2
    out = []
    for f in sorted(Path(tb_dir).glob("events.out.tfevents.*")):
        for body in read_records(f):
            ev = event_pb2.Event.FromString(body)
            for v in ev.summary.value:
                out.append((v.tag, int(ev.step), float(v.simple_value)))
    return out


class EventWriter:
    """TensorBoard scalars written synchronously (tensorboardX's ``SummaryWriter`` queues events for a
    background thread, so events of an update could still be in memory when its checkpoint is on disk).
    Same records as ``SummaryWriter.add_scalar`` (``Summary.Value.simple_value``), one file per writer."""

    def __init__(self, logdir: Path, suffix: str = ""):
        import socket
        import time
        from tensorboardX.proto import event_pb2, summary_pb2
        self._event, self._summary = event_pb2.Event, summary_pb2.Summary
        logdir = Path(logdir)
        logdir.mkdir(parents=True, exist_ok=True)
        self.path = logdir / f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}{suffix}"
        self._fh = open(self.path, "ab")
        self._fh.write(_record(self._event(wall_time=time.time(), file_version="brain.Event:2").SerializeToString()))
        self._fh.flush()

    def add_scalar(self, tag: str, value: float, step: int):
        import time
        summary = self._summary(value=[self._summary.Value(tag=tag, simple_value=float(value))])
        try:
            self._fh.write(_record(self._event(wall_time=time.time(), step=int(step), summary=summary)
                                   .SerializeToString()))
        except OSError as err:
            raise _write_error(self.path, err) from err

    def flush(self):
        try:
            self._fh.flush()
        except OSError as err:
            raise _write_error(self.path, err) from err

    def close(self):
        if not self._fh.closed:
            try:
                self._fh.close()
            except OSError:  # a full disk: the run is already stopping with a WriteError
                pass


def compact_tb(tb_dir: Path, max_step: int):
    """Rewrite a run's event files as one file holding each scalar (tag, step) once, for steps <= max_step
    (events of updates after the checkpoint a run resumes from are dropped; they are written again).
    Safe to repeat after a kill at any point: the old files go only after the new one is in place, and
    a repeat drops the duplicates the old files and the new one share."""
    from tensorboardX.proto import event_pb2
    tb_dir = Path(tb_dir)
    files = sorted(tb_dir.glob("events.out.tfevents.*")) if tb_dir.is_dir() else []
    if not files:
        return
    seen: set = set()
    kept = []
    version = None
    for f in files:
        for body in read_records(f):
            ev = event_pb2.Event.FromString(body)
            if ev.HasField("file_version"):
                version = version or body
                continue
            if not ev.HasField("summary"):
                continue
            keys = tuple((v.tag, int(ev.step)) for v in ev.summary.value)
            if ev.step > max_step or not keys or any(k in seen for k in keys):
                continue
            seen.update(keys)
            kept.append(body)
    tmp = tb_dir / (COMPACT_NAME + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(b"".join(_record(b) for b in ([version] if version else []) + kept))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, tb_dir / COMPACT_NAME)
    faults.hit("tb_compact")
    for f in files:
        if f.name != COMPACT_NAME:
            f.unlink()

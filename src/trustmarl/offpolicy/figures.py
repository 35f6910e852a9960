"""MAMT's diagnostics against env steps, from a run folder's ``metrics.csv`` (Li et al. Figures 3-5: the
per-agent KL to the old policy, the non-stationarity ``D_i,ns``, the local trust regions ``δ_i``, and the
coordination coefficients' mean and variance). Panels whose columns a run does not have (e.g. ``delta_<i>`` of
a MAMD run) are left out; the curves are means over the run's seeds.

``python -m trustmarl.offpolicy.figures RUN_DIR [OUT.png]`` draws ``RUN_DIR/mamt_diagnostics.png``.
"""
from __future__ import annotations

import csv
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

PANELS = (("kl_old", "KL[π_i ‖ π_i^old]"), ("d_ns", "D_i,ns (eq. 6)"), ("delta", "δ_i (eq. 8)"),
          ("coord", "coordination coefficients (eq. 5)"))


def read_metrics(run_dir: Path) -> dict[str, np.ndarray]:
    """Columns of ``metrics.csv`` averaged over seeds per env step → ``{column: [steps]}`` plus ``env_steps``."""
    path = Path(run_dir) / "metrics.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; allowed: a run folder written by `trustmarl train`")
    by_step: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            step = int(float(row["env_steps"]))
            for k, v in row.items():
                if k not in ("seed", "update", "env_steps") and v not in ("", None):
                    by_step[step][k].append(float(v))
    steps = sorted(by_step)
    cols = sorted({k for s in steps for k in by_step[s]})
    out = {"env_steps": np.asarray(steps, float)}
    for k in cols:
        out[k] = np.asarray([np.mean(by_step[s][k]) if by_step[s].get(k) else np.nan for s in steps])
    return out


def _agent_columns(m: dict, prefix: str) -> list[str]:
    return sorted((k for k in m if k.startswith(prefix + "_") and k[len(prefix) + 1:].isdigit()),
                  key=lambda k: int(k.rsplit("_", 1)[1]))


def plot_diagnostics(run_dir: Path, out: Path | None = None) -> Path:
    """Draw the panels the run has; returns the PNG's path. One-line error when it has none of them."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    m = read_metrics(run_dir)
    x = m["env_steps"]
    panels = []
    for key, title in PANELS:
        if key == "coord":
            if "coord_mean" in m:
                panels.append((title, [("mean", m["coord_mean"]), ("variance", m.get("coord_var"))]))
        else:
            cols = _agent_columns(m, key)
            if cols:
                panels.append((title, [(f"agent {c.rsplit('_', 1)[1]}", m[c]) for c in cols]))
    if not panels:
        raise ValueError(f"{run_dir} has no MAMD/MAMT diagnostics (kl_old_<i>, d_ns_<i>, delta_<i>, coord_mean); "
                         f"allowed: a run of algo=mamd or algo=mamt")
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.2), squeeze=False)
    for ax, (title, curves) in zip(axes[0], panels):
        for label, y in curves:
            if y is not None:
                ax.plot(x, y, label=label, lw=1)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("env steps")
        if len(curves) <= 8:
            ax.legend(fontsize=7)
    fig.tight_layout()
    out = Path(out) if out is not None else Path(run_dir) / "mamt_diagnostics.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        raise SystemExit("usage: python -m trustmarl.offpolicy.figures RUN_DIR [OUT.png]")
    print(plot_diagnostics(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) == 3 else None))

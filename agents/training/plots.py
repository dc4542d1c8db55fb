"""Training curves of a run (``idplan plot RUN_DIR``; the demo writes them too) from its ``metrics.csv``."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from ...envs.atomic import atomic_path

#: the panels: title, y scale, and the columns drawn in it (those the run has)
PANELS = (
    ("loss", "linear", ("loss",)),
    ("accuracy / success", "linear", ("train_accuracy", "valid_success", "valid_optimal")),
    ("forward iterations", "linear", ("forward_iterations", "valid_forward_iterations")),
    ("forward relative residual", "log", ("forward_rel_residual", "valid_forward_rel_residual")),
    ("backward (adjoint) iterations", "linear", ("backward_iterations",)),
    ("backward relative residual", "log", ("backward_rel_residual",)),
)


def read_metrics(path: Path) -> dict[str, list[float]]:
    """``metrics.csv`` as columns of floats (``nan`` where an epoch has no value)."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise ValueError(f"{path}: no epochs recorded yet")
    return {key: [float(row[key]) if row.get(key) not in (None, "") else math.nan for row in rows] for key in rows[0]}


def plot_training(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the training curves of ``run_dir`` (its ``metrics.csv``) to ``out`` (default
    ``run_dir/training.png``): loss, training accuracy and validation success, forward and backward
    iterations and residuals per epoch, one panel each where the run recorded them. Returns the path."""
    run_dir = Path(run_dir)
    metrics_path = run_dir / "metrics.csv"
    if not metrics_path.is_file():
        raise FileNotFoundError(f"{metrics_path}: not a run directory (no metrics.csv)")
    columns = read_metrics(metrics_path)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ValueError("idplan plot needs matplotlib: pip install 'idplan[render]'") from error
    panels = [(title, scale, [c for c in names if c in columns]) for title, scale, names in PANELS]
    panels = [panel for panel in panels if panel[2]]
    epochs = columns.get("epoch") or list(range(1, len(next(iter(columns.values()))) + 1))
    cols = 2
    rows = math.ceil(len(panels) / cols)
    figure, axes = plt.subplots(rows, cols, figsize=(10, 3 * rows), squeeze=False)
    for axis, (title, scale, names) in zip(axes.flat, panels):
        for name in names:
            axis.plot(epochs, columns[name], marker="o", label=name)
        axis.set_title(title)
        axis.set_xlabel("epoch")
        axis.set_yscale(scale)
        axis.legend(fontsize="small")
        axis.grid(alpha=0.3)
    for axis in list(axes.flat)[len(panels) :]:
        axis.set_visible(False)
    figure.suptitle(run_dir.name)
    figure.tight_layout()
    out = Path(out) if out is not None else run_dir / "training.png"
    with atomic_path(out) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)
    return out

"""Seed and hyper-parameter sweeps on Ray Tune: ``idplan sweep``.

A sweep is one training configuration (a :class:`~idplan.agents.training.runs.TrainRun`) run over
seeds ``seed, seed + 1, ...`` and a small grid of option values (every combination): each trial is
one :func:`~idplan.agents.training.runs.train_run` (the same run as ``idplan train``, with that seed:
the seed of the generated data and of the initial weights), scheduled by Ray Tune on a local Ray
instance (one trial per core, or per GPU) or on an existing Ray cluster (``address``).

The sweep directory ``out`` holds::

    trials/<config>/seed<k>/   each trial's own run files (checkpoint.pt, summary.json, metrics.csv, ...)
    ray/                       Ray Tune's experiment state (its result.json and params.json per trial)
    sweep.json                 every trial (config, seed, directory, status, test metrics) and, per
                               configuration, the mean and standard error over its seeds
    sweep.md                   the same as two Markdown tables (what the command prints)

Every file is written atomically, each trial into its own directory; a non-empty ``out`` is refused
unless ``overwrite`` (which first deletes the previous sweep's entries above). On a cluster of
several machines, ``out`` must be on a file system every node shares (as Ray's own storage path
must), and idplan must be installed on every node.

Ray is imported only when a sweep runs: ``import idplan`` works without the ``tune`` extra.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import sys
from collections.abc import Sequence
from contextlib import ExitStack, redirect_stdout
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from ...envs.atomic import atomic_write_text
from .runs import TrainRun, _check_out, train_run, validate

# the sweep's entries in its out directory (overwrite removes exactly these)
SWEEP_ENTRIES = ("trials", "ray", "sweep.json", "sweep.md")
# options that a grid may not vary: the seeds are --seed/--seeds, the rest belong to the whole sweep
NOT_GRID_OPTIONS = ("seed", "out", "overwrite", "quiet", "device", "tensorboard", "help")
# the test metrics the tables show, as percentages (the papers' %Optimal, %Success and SPL)
RUN_METRICS = ("best_epoch", "final_loss", "train_seconds")  # reported besides the test metrics
TABLE_METRICS = (("test_optimal", "%Optimal"), ("test_success", "%Success"), ("test_spl", "SPL"))


class SweepFailed(ValueError):
    """Some trials of a sweep raised; the sweep's files record every trial's status and error."""


@dataclass(frozen=True)
class Trial:
    """One training run of a sweep: the configuration it belongs to, its seed and its run."""

    config: str
    seed: int
    run: TrainRun


def import_tune():
    """``ray`` and ``ray.tune``; ``ValueError`` with the install command when the extra is missing."""
    try:
        import ray
        from ray import tune
    except ImportError:
        raise ValueError("idplan sweep runs on Ray Tune, which is not installed: pip install 'idplan[tune]'") from None
    return ray, tune


def _grid_value(action: argparse.Action, text: str) -> Any:
    """One ``--grid`` value converted and checked as its option's own parser does."""
    if action.nargs == 0:  # a flag (store_true): the grid says whether it is given
        if text.lower() not in ("true", "false"):
            raise ValueError(f"--grid {action.dest}: a flag takes true or false, got {text!r}")
        return text.lower() == "true"
    try:
        value = action.type(text) if action.type is not None else text
    except (argparse.ArgumentTypeError, ValueError, TypeError) as error:
        raise ValueError(f"--grid {action.dest}: {error}") from None
    if action.choices is not None and value not in action.choices:
        choices = ", ".join(map(str, action.choices))
        raise ValueError(f"--grid {action.dest}: {text!r} is not one of {choices}")
    return value


def parse_grid(specs: Sequence[str], parser: argparse.ArgumentParser) -> dict[str, list[Any]]:
    """``--grid OPTION=V1,V2,...`` specifications as ``{field: [values]}``, each value converted and
    checked by the type and choices of ``parser``'s option of that name (``lr=1e-3,2e-3``,
    ``mode=implicit,explicit``, ``free-step=true,false``). ``ValueError`` names a bad one."""
    options = {action.dest: action for action in parser._actions if action.option_strings}
    grid: dict[str, list[Any]] = {}
    for spec in specs:
        key, sep, values = spec.partition("=")
        name = key.strip().lstrip("-").replace("-", "_")
        if not sep or not name or not values.strip():
            raise ValueError(f"--grid {spec!r}: expected OPTION=VALUE1,VALUE2,... (e.g. lr=1e-3,2e-3)")
        if name not in options or name in NOT_GRID_OPTIONS:
            hint = " (vary seeds with --seed and --seeds)" if name == "seed" else ""
            raise ValueError(f"--grid {spec!r}: {key.strip()} is not a training option a grid can vary{hint}")
        if name in grid:
            raise ValueError(f"--grid {spec!r}: {name} is given twice; list all its values in one --grid")
        parsed = [_grid_value(options[name], text.strip()) for text in values.split(",")]
        if len(set(map(str, parsed))) < len(parsed):
            raise ValueError(f"--grid {spec!r}: a value is repeated")
        grid[name] = parsed
    return grid


def config_name(overrides: dict[str, Any]) -> str:
    """A configuration's directory name: its grid values, ``key=value`` joined by commas, with the
    characters a file name should not hold replaced (``base`` for a sweep without a grid)."""
    text = ",".join(f"{key}={value}" for key, value in overrides.items()) or "base"
    return re.sub(r"[^A-Za-z0-9._=,+-]", "_", text)


def grid_configs(grid: dict[str, list[Any]]) -> dict[str, dict[str, Any]]:
    """Every combination of the grid's values, by :func:`config_name` (the grid's order)."""
    configs: list[dict[str, Any]] = [{}]
    for key, values in grid.items():
        configs = [{**config, key: value} for config in configs for value in values]
    named = {config_name(config): config for config in configs}
    if len(named) < len(configs):
        raise ValueError("--grid: two configurations map to the same directory name; make their values differ")
    return named


def plan_trials(base: TrainRun, seeds: Sequence[int], grid: dict[str, list[Any]], out: Path) -> list[Trial]:
    """The sweep's trials, configuration by configuration, seed by seed; each run writes into
    ``out/trials/<config>/seed<k>`` (an absolute path: trials may run in other processes and other
    working directories), quietly."""
    trials = []
    for name, overrides in grid_configs(grid).items():
        for seed in seeds:
            run_dir = out.resolve() / "trials" / name / f"seed{seed}"
            run = replace(base, **overrides, seed=seed, out=run_dir, quiet=True, overwrite=False, rollout=False)
            trials.append(Trial(name, seed, run))
    return trials


def mean_se(values: Sequence[float]) -> tuple[float, float | None]:
    """The mean and the standard error of the mean (sample standard deviation / sqrt(n); ``None``
    for a single value)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, None
    variance = sum((value - mean) ** 2 for value in values) / (n - 1)
    return mean, math.sqrt(variance / n)


def trial_metrics(summary: dict[str, Any]) -> dict[str, float]:
    """The numbers a trial reports to Tune: its test metrics (``test_*``), best epoch, final loss
    and training time (from its run's summary)."""
    metrics = {f"test_{key}": value for key, value in summary["test"].items() if isinstance(value, int | float)}
    return {**metrics, **{key: summary[key] for key in RUN_METRICS}}


def reported(metrics: dict[str, Any]) -> dict[str, float]:
    """The metrics :func:`trial_metrics` reported, out of a Tune result's (which adds its own)."""
    return {key: value for key, value in metrics.items() if key.startswith("test_") or key in RUN_METRICS}


def aggregate(trials: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per configuration: the seeds that finished and, for each metric, the mean and standard error
    over them (failed trials count in ``failed``, not in the statistics)."""
    configs: dict[str, dict[str, Any]] = {}
    for trial in trials:
        entry = configs.setdefault(trial["config"], {"overrides": trial["overrides"], "seeds": [], "failed": 0})
        if trial["status"] == "ok":
            entry["seeds"].append(trial["seed"])
        else:
            entry["failed"] += 1
    for name, entry in configs.items():
        finished = [t["metrics"] for t in trials if t["config"] == name and t["status"] == "ok"]
        entry["metrics"] = {}
        for key in finished[0] if finished else ():
            mean, se = mean_se([metrics[key] for metrics in finished])
            entry["metrics"][key] = {"mean": _round(mean), "se": None if se is None else _round(se)}
    return configs


def _round(value: float) -> float:
    """``value`` to 6 significant digits (the JSON files' figures, without float noise)."""
    return float(f"{value:.6g}")


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def tables(trials: list[dict[str, Any]], configs: dict[str, dict[str, Any]]) -> str:
    """Markdown: the mean ± standard error over seeds per configuration (in percent, as the papers'
    tables), then every trial."""
    names = [label for _, label in TABLE_METRICS]
    lines = [
        "| configuration | seeds | " + " | ".join(names) + " | train s |",
        "|---|---|" + "---|" * (len(names) + 1),
    ]
    for name, entry in configs.items():
        cells = []
        for key, _ in (*TABLE_METRICS, ("train_seconds", "")):
            stat = entry["metrics"].get(key)
            scale = 1 if key == "train_seconds" else 100
            if stat is None:
                cells.append("-")
            elif stat["se"] is None:
                cells.append(f"{scale * stat['mean']:.1f}")
            else:
                cells.append(f"{scale * stat['mean']:.1f} ± {scale * stat['se']:.1f}")
        failed = f" ({entry['failed']} failed)" if entry["failed"] else ""
        lines.append(f"| {name} | {len(entry['seeds'])}{failed} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| configuration | seed | " + " | ".join(names) + " | best epoch | status |",
        "|---|---|" + "---|" * 5,
    ]
    for trial in trials:
        metrics = trial.get("metrics", {})
        cells = [_percent(metrics.get(key)) for key, _ in TABLE_METRICS]
        status = trial["status"] if trial["status"] == "ok" else f"error: {trial['error']}"
        epoch = metrics.get("best_epoch", "-")
        lines.append(f"| {trial['config']} | {trial['seed']} | " + " | ".join(cells) + f" | {epoch} | {status} |")
    return "\n".join(lines) + "\n"


def _run_trial(config: dict[str, Any], trials: dict[tuple[str, int], TrainRun], cpus: float) -> None:
    """Ray Tune's trainable: train one trial's run on the device Ray gave it and report its metrics."""
    import ray
    from ray import tune

    torch.set_num_threads(max(1, int(cpus)))
    run = trials[config["config"], config["seed"]]
    run = replace(run, device="cuda" if ray.get_gpu_ids() else "cpu")
    tune.report(trial_metrics(train_run(run)[1]))


def _first_line(error: BaseException) -> str:
    """The root cause of a trial's error, on one line (Ray wraps it with its own traceback)."""
    cause = error
    while getattr(cause, "cause", None) is not None:  # ray.exceptions.RayTaskError: the trial's exception
        cause = cause.cause
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[-1] if text else ''}".strip()


def _prepare_out(out: Path, overwrite: bool) -> None:
    """Refuse a non-empty ``out`` unless ``overwrite``; then delete the previous sweep's entries."""
    _check_out(out, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    for name in SWEEP_ENTRIES:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def sweep(
    base: TrainRun,
    seeds: Sequence[int],
    grid: dict[str, list[Any]] | None = None,
    address: str | None = None,
    cpus_per_trial: float = 1.0,
    gpus_per_trial: float = 0.0,
    progress: bool = True,
) -> dict[str, Any]:
    """Run ``base`` over ``seeds`` and every combination of ``grid`` on Ray Tune; write each trial's
    run files and the sweep's results into ``base.out`` (see the module's docstring).

    Every trial's options are checked before Ray starts. Without ``address``, a local Ray instance
    with this machine's cores and GPUs runs as many trials at once as ``cpus_per_trial`` and
    ``gpus_per_trial`` allow; with it, the sweep runs on that existing cluster (``"auto"``: the
    cluster this machine belongs to). A trial with a GPU trains on it (``cuda``), else on the CPU.
    ``progress``: Ray Tune's status table, on standard error (on a terminal only).

    Returns the results (per configuration, the mean and standard error over seeds) and the
    tables; raises :class:`SweepFailed`, after writing the files, when some trials failed.
    """
    if not seeds:
        raise ValueError("--seeds: a sweep needs at least one seed")
    if cpus_per_trial <= 0 or gpus_per_trial < 0:
        raise ValueError(
            f"--cpus-per-trial must be > 0 and --gpus-per-trial >= 0, got {cpus_per_trial}, {gpus_per_trial}"
        )
    grid = grid or {}
    out = base.out
    trials = plan_trials(base, seeds, grid, out)
    for trial in trials:
        validate(trial.run)
    ray, tune = import_tune()
    _prepare_out(out, base.overwrite)

    progress = progress and sys.stderr.isatty()
    started = not ray.is_initialized()
    if started:
        level = "WARNING" if progress else "ERROR"
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=level)
    try:
        runs = {(trial.config, trial.seed): trial.run for trial in trials}
        trainable = tune.with_parameters(_run_trial, trials=runs, cpus=cpus_per_trial)
        trainable = tune.with_resources(trainable, {"cpu": cpus_per_trial, "gpu": gpus_per_trial})
        configs = list(dict.fromkeys(trial.config for trial in trials))
        tuner = tune.Tuner(
            trainable,
            param_space={"config": tune.grid_search(configs), "seed": tune.grid_search(list(seeds))},
            tune_config=tune.TuneConfig(
                trial_dirname_creator=lambda t: f"{t.config['config']}-seed{t.config['seed']}", reuse_actors=False
            ),
            run_config=tune.RunConfig(storage_path=str(out.resolve()), name="ray", verbose=1 if progress else 0),
        )
        with ExitStack() as stack:  # Ray Tune prints its status: standard output keeps the results only
            stack.enter_context(redirect_stdout(sys.stderr if progress else stack.enter_context(open(os.devnull, "w"))))
            results = tuner.fit()
    finally:
        if started:
            ray.shutdown()

    by_key = {(r.config["config"], r.config["seed"]): r for r in results}
    named = grid_configs(grid)
    records = []
    for trial in trials:
        result = by_key[trial.config, trial.seed]
        record = {
            "config": trial.config,
            "overrides": {k: str(v) if isinstance(v, Path) else v for k, v in named[trial.config].items()},
            "seed": trial.seed,
            "dir": str(trial.run.out),
            "ray_dir": result.path,  # Ray's files of the trial (error.txt: a failed trial's traceback)
        }
        metrics = reported(result.metrics or {})
        if result.error is not None:
            record.update(status="error", error=_first_line(result.error))
        elif not metrics:  # Ray Tune stopped it (Ctrl-C) before it reported
            record.update(status="stopped", error="stopped before it finished")
        else:
            record.update(status="ok", metrics=metrics)
        records.append(record)
    configs_stats = aggregate(records)
    table = tables(records, configs_stats)
    failed = [r for r in records if r["status"] != "ok"]
    summary = {
        "out": str(out),
        "trials": len(records),
        "failed": len(failed),
        "results": str(out / "sweep.json"),
        "table": str(out / "sweep.md"),
        "configs": configs_stats,
    }
    atomic_write_text(out / "sweep.json", json.dumps({**summary, "trial_runs": records}, indent=2))
    atomic_write_text(out / "sweep.md", table)
    if failed:
        first = failed[0]
        raise SweepFailed(
            f"{len(failed)} of {len(records)} trials failed (first: {first['config']} seed {first['seed']}: "
            f"{first['error']}); every trial's status is in {out / 'sweep.json'}, a failed one's traceback in "
            "its ray_dir's error.txt"
        )
    return {**summary, "markdown": table}

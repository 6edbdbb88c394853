"""Time to accuracy: how soon each model reaches a target when its schedule fits the budget.

    python -m ack_numpy study time-to-accuracy --jobs 2 --out data/time-to-accuracy

The paper says an adaptive network needs "about half the epochs" of a conventional CNN.
A test of that is fair only if no model is held back by settings chosen for another:

  * each model trains at its own learning rate, chosen on held-out images
    (`study lr-selection`): adaptive-lenet, lenet and the best plain model;
  * the cosine schedule is compressed into a budget of E epochs, E in BUDGETS: a run of E
    epochs anneals to 0 at its own end (a run cut short of a longer schedule never gets
    its small final steps);
  * accuracy is measured on the 10,000 held-out training images (never the test set)
    every tenth of an epoch (runner.HeldOutChecks), so that a target reached in the
    middle of an epoch counts there;
  * targets: 98.5%, 99.0%, and 99.8% of the model's own plateau (its held-out accuracy
    after 10 epochs at its chosen rate, from the selection), so that a model whose ceiling
    sits near a fixed target is not judged by that target alone.

A seed's cost to a target is the number of images seen at the first check at or above it,
in the run with the smallest budget E that gets there (a larger budget reaches a target
later in images, since its learning rate stays high for longer). Run locally, the study
trains one budget at a time and skips the larger budgets a seed no longer needs; printed
for a job array (--print-commands), it lists every budget a seed may still need.

Costs are compared as ratios of geometric means over seeds (adaptive / other), with a 95%
Welch t interval on the logarithms (10 seeds each, first 5: the Welch interval is valid at
both n, a percentile bootstrap is not at 5), in images, in
seconds (x each model's one-thread seconds per image, measured side by side in
data/compute) and in multiply-adds (x each model's forward multiply-adds per image, also
from data/compute; a backward pass costs about twice its forward for every model here, so
the ratio is the same for training).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..train import TrainConfig, split_sizes
from .ablation import load_selection
from .lrselect import SELECTION_FOLDER
from .records import (RecordError, check_report_may_replace, read_summary, summary_text, verified_rows,
                      write_report_files)
from .runner import CHECKS_NAME, Run, check_batches, is_finished, read_checks, run_all, run_commands
from .stats import welch_ci
from .variants import plain_candidates

BUDGETS = (1, 2, 3, 5, 8)           # epochs; fixed before any run
SEEDS = 10  # first run with 5; extended to 10 after that first look (the verdict stayed)
CHECKS_PER_EPOCH = 10
HOLDOUT = 10_000
FIXED_TARGETS = (0.985, 0.99)
PLATEAU_FRACTION = 0.998            # the third target: 99.8% of the model's own plateau
MAIN, LENET = "adaptive-lenet", "lenet"
ABOUT_HALF = 2 / 3                  # "about half": a ratio of at most two thirds; fixed before any run


def arms(selection: dict) -> dict[str, tuple[str, dict, float, float]]:
    """label -> (model, options, chosen learning rate, plateau held-out accuracy)."""
    chosen = selection["arms"]
    best = selection["best_plain"]
    out = {}
    for label in (MAIN, LENET, best):
        if not chosen.get(label, {}).get("chosen_lr"):
            raise ValueError(f"the learning-rate selection has not chosen {label}'s rate yet: finish "
                             f"`{selection.get('command')}` first")
        model, options = (label, {}) if label in (MAIN, LENET) else plain_candidates()[label]
        out[label] = (model, options, chosen[label]["chosen_lr"], chosen[label]["chosen_holdout_acc"])
    return out


def targets(plateau: float) -> dict[str, float]:
    """name -> held-out accuracy to reach."""
    return {**{f"{t:.1%}": t for t in FIXED_TARGETS}, f"{PLATEAU_FRACTION:.1%} of plateau": PLATEAU_FRACTION * plateau}


def plan(out: Path, selection: dict, seeds: int = SEEDS, budgets=BUDGETS, data_dir: str | None = None,
         limit_train: int | None = None, holdout: int = HOLDOUT) -> dict[tuple[str, int], list[Run]]:
    """(label, seed) -> its runs, one per budget, smallest budget first."""
    series = {}
    for label, (model, options, lr, _) in arms(selection).items():
        for seed in range(seeds):
            series[label, seed] = [
                Run(f"{label}-E{epochs}-seed{seed}",
                    TrainConfig(model=model, epochs=epochs, seed=seed, lr=lr, holdout=holdout, data_dir=data_dir,
                                limit_train=limit_train, out=str(out / "runs" / f"{label}-E{epochs}-seed{seed}"),
                                model_options=dict(options)),
                    checks_per_epoch=CHECKS_PER_EPOCH)
                for epochs in budgets]
    return series


# ----------------------------------------------------------------------------- one seed's cost
_CHECKED: dict[Path, list[tuple[int, float]]] = {}  # finished runs already checked by this call of the study


def curve(run: Run) -> list[tuple[int, float]] | None:
    """(images seen, held-out accuracy) at every check and at every epoch's end, in order; None
    while the run is unfinished. Both files are checked against the run's record (records.py),
    once per call of the study: checking re-evaluates the checkpoint, and the study walks its
    runs after every budget."""
    if run.folder in _CHECKED:
        return _CHECKED[run.folder]
    rows = verified_rows(run)
    if rows is None:
        return None
    path = run.folder / CHECKS_NAME
    checks = read_checks(path) if path.exists() else []
    n_batches = math.ceil(_train_images(run) / run.config.batch_size)
    expected = len(check_batches(n_batches, run.checks_per_epoch)) * run.config.epochs
    if len(checks) != expected:
        raise RecordError(f"run {run.name} ({run.folder}): {CHECKS_NAME} holds {len(checks)} checks, not the "
                          f"{expected} of {run.checks_per_epoch} per epoch; refusing to report it")
    points = [(c["images"], c["test_acc"]) for c in checks]
    points += [(row["epoch"] * _train_images(run), row["test_acc"]) for row in rows]
    _CHECKED[run.folder] = sorted(points)
    return _CHECKED[run.folder]


def _train_images(run: Run) -> int:
    return split_sizes(run.config.limit_train, holdout=run.config.holdout)[0]


def first_reach(points: list[tuple[int, float]], target: float) -> float | None:
    """Images seen when the curve first reaches `target` (None if never): linearly interpolated
    between the last point below it and the first at or above it (checks are a tenth of an
    epoch apart; without this every cost would round up to the next check)."""
    before = None
    for images, accuracy in points:
        if accuracy >= target:
            if before is None:
                return float(images)
            (x0, y0), (x1, y1) = before, (images, accuracy)
            return x0 + (target - y0) / (y1 - y0) * (x1 - x0)
        before = (images, accuracy)
    return None


def seed_cost(runs: list[Run], goals: dict[str, float]) -> dict:
    """Walk the budgets from the smallest: for each target, the first budget whose run reaches
    it and the images seen then. "open" names the targets not yet settled while a budget that
    could settle them is unfinished; a target no budget reaches is None."""
    cost, open_targets = {name: None for name in goals}, set(goals)
    for run in runs:
        points = curve(run)
        if points is None:
            return {"cost": cost, "open": sorted(open_targets), "next": run}
        for name in sorted(open_targets):
            images = first_reach(points, goals[name])
            if images is not None:
                cost[name] = {"budget": run.config.epochs, "images": images}
                open_targets.discard(name)
        if not open_targets:
            break
    return {"cost": cost, "open": [], "next": None}


# ----------------------------------------------------------------------------- comparisons
def ratio(a: list[float], b: list[float]) -> dict:
    """Geometric mean of a over that of b, with the 95% Welch t interval of the difference of
    mean logarithms, turned back into a ratio; ci95 is None when neither sample varies (no
    interval can be estimated from identical values)."""
    la, lb = np.log(a), np.log(b)
    if la.var() == 0 and lb.var() == 0:
        return {"ratio": float(math.exp(la.mean() - lb.mean())), "ci95": None}
    low, high = welch_ci(la, lb)
    return {"ratio": float(math.exp(la.mean() - lb.mean())), "ci95": [math.exp(low), math.exp(high)]}


def compare(costs: dict, label: str, other: str, compute: dict, labels_in_compute: dict, cap: float) -> dict:
    """Adaptive (label) against `other`, per target: ratios in images, seconds and multiply-adds.

    A seed that never reached the target within the largest budget counts as reaching it at
    `cap` (all the images of the largest budget), which flatters it: with adaptive seeds so
    counted the ratio is a lower bound ("censored": "adaptive"), with the other model's an
    upper bound ("other"); with both, it bounds nothing ("both")."""
    out = {}
    for name in costs[label]["targets"]:
        a = [c[name]["images"] if c[name] else None for c in costs[label]["per_seed"].values()]
        b = [c[name]["images"] if c[name] else None for c in costs[other]["per_seed"].values()]
        if len(a) < 2 or len(b) < 2:
            out[name] = {"ratio": None, "why": "too few seeds"}
            continue
        censored = {(True, False): "adaptive", (False, True): "other", (True, True): "both"}.get(
            (None in a, None in b))
        r = ratio([cap if v is None else v for v in a], [cap if v is None else v for v in b])
        r["censored"] = censored
        r["not_reached"] = [a.count(None), b.count(None)]
        ma, mb = compute[labels_in_compute[label]], compute[labels_in_compute[other]]
        seconds = ma["step_seconds"] / mb["step_seconds"]  # per step of the same batch size: per image
        macs = ma["multiply_adds"] / mb["multiply_adds"]
        scaled = lambda factor: {"ratio": r["ratio"] * factor, "censored": censored,
                                 "ci95": None if r["ci95"] is None else [c * factor for c in r["ci95"]]}
        out[name] = {"images": r, "seconds": scaled(seconds), "multiply_adds": scaled(macs)}
    return out


def seeds_text(n: int, model: str) -> str:
    """The words for n seeds of a model: 1 adaptive seed, 2 LeNet seeds."""
    return f"{n} {model} seed" + ("" if n == 1 else "s")


def half_the_epochs(comparison: dict) -> dict:
    """The claim, on the 99.0% target against LeNet, in images (= epochs). "About half" is read
    as a ratio of at most ABOUT_HALF: HOLDS if the whole 95% interval lies at or below it, DOES
    NOT HOLD if the whole interval lies above it, NOT SHOWN otherwise (or without an interval)."""
    c = comparison.get("99.0%", {})
    if not c.get("images"):
        return {"verdict": "NOT SHOWN", "why": c.get("why", "runs missing")}
    r = c["images"]
    if r["ci95"] is None:
        return {"verdict": "NOT SHOWN", "why": f"images to 99.0% held-out, adaptive / LeNet = {r['ratio']:.2f}, "
                                               "every seed the same: no interval"}
    low, high = r["ci95"]
    censored = r.get("censored")
    if high <= ABOUT_HALF and censored in (None, "other"):      # an upper bound at worst
        verdict = "HOLDS"
    elif low > ABOUT_HALF and censored in (None, "adaptive"):   # a lower bound at worst
        verdict = "DOES NOT HOLD"
    else:
        verdict = "NOT SHOWN"
    missed = r.get("not_reached", [0, 0])
    bound = {"adaptive": f"; at least this: {seeds_text(missed[0], 'adaptive')} never reached it and "
                         f"{'counts' if missed[0] == 1 else 'count'} as reaching it at the largest budget's end",
             "other": f"; at most this: {seeds_text(missed[1], 'LeNet')} never reached it and "
                      f"{'counts' if missed[1] == 1 else 'count'} as reaching it at the largest budget's end",
             "both": "; seeds of both models never reached it: no bound"}.get(censored, "")
    return {"verdict": verdict, "why": f"images to 99.0% held-out, adaptive / LeNet = {r['ratio']:.2f} "
                                       f"(95% Welch interval {low:.2f} to {high:.2f}){bound}"}


# ----------------------------------------------------------------------------- the study
def time_to_accuracy(out: str | Path, selection: str | Path = SELECTION_FOLDER, seeds: int = SEEDS,
                     jobs: int = 1, data_dir: str | None = None, limit_train: int | None = None,
                     limit_test: int | None = None, report_only: bool = False, print_commands: bool = False,
                     log=print, budgets=BUDGETS, holdout: int = HOLDOUT,
                     compute_results: str | Path = "data/compute/results.json") -> dict:
    """Train what is missing, one budget at a time (unless report_only), then write results.json,
    results.md and time-to-accuracy.png. (budgets and holdout other than the defaults are for
    quick tests; limit_test plays no part: the holdout is the evaluation set.)"""
    from .study import _command

    _CHECKED.clear()  # files may have changed since an earlier call in this process
    out, selection_dir = Path(out), Path(selection)
    chosen = load_selection(selection_dir)
    series = plan(out, chosen, seeds, budgets, data_dir, limit_train, holdout)
    goals = {label: targets(plateau) for label, (_, _, _, plateau) in arms(chosen).items()}
    if print_commands:  # every budget a seed may still need: a job array may run them all at once
        pending = [run for (label, seed), runs in series.items() if seed_cost(runs, goals[label])["open"]
                   for run in runs]
        return {"commands": [log(line) or line for line in run_commands(pending)]}
    out.mkdir(parents=True, exist_ok=True)
    wall = 0.0
    while not report_only:
        wave = [state["next"] for (label, seed), runs in series.items()
                if (state := seed_cost(runs, goals[label]))["next"] is not None]
        if not wave:
            break
        log(f"budget wave: {', '.join(run.name for run in wave)}")
        wall += run_all(wave, jobs, log=log)
    summary = summarize(series, goals, chosen, Path(compute_results))
    summary.update({"budgets": list(budgets), "seeds": seeds, "checks_per_epoch": CHECKS_PER_EPOCH,
                    "holdout": holdout, "train_images": split_sizes(limit_train, holdout=holdout)[0],
                    "selection": str(selection_dir / "results.md"),
                    "selection_link": str(Path("..") / selection_dir.name / "results.md"),
                    "command": _command("study time-to-accuracy", out, jobs, limit_train, None,
                                        f"--seeds {seeds} --selection {selection_dir}").replace("  ", " "),
                    "wall_seconds_this_call": wall})
    check_report_may_replace(out, summary, [run.name for runs in series.values() for run in runs])
    write_report_files(out, {"results.json": summary_text(summary), "results.md": markdown(summary)},
                       {"time-to-accuracy.png": lambda f: plot_curves(series, summary, f)})
    log(f"wrote {out / 'results.md'}, {out / 'results.json'} and {out / 'time-to-accuracy.png'}")
    return summary


def largest_budget_images(series: dict) -> int:
    """Every image the largest budget's run trains on: its epochs x the training images."""
    return max(run.config.epochs * _train_images(run) for runs in series.values() for run in runs)


def summarize(series: dict, goals: dict, chosen: dict, compute_results: Path) -> dict:
    costs, missing = {}, []
    model_arms = arms(chosen)
    for (label, seed), runs in series.items():
        model, options, lr, plateau = model_arms[label]
        entry = costs.setdefault(label, {"model": model, "options": options, "lr": lr, "plateau": plateau,
                                         "targets": goals[label], "per_seed": {}})
        state = seed_cost(runs, goals[label])
        if state["open"]:
            missing.append(state["next"].name)
            continue
        entry["per_seed"][str(seed)] = state["cost"]
    for entry in costs.values():
        entry["median_images"] = {name: _median([c[name]["images"] if c[name] else None
                                                 for c in entry["per_seed"].values()])
                                  for name in entry["targets"]}
    compute = read_summary(compute_results)["models"] if compute_results.exists() else {}
    best = chosen["best_plain"]
    in_compute = {MAIN: MAIN, LENET: LENET, best: best}
    comparisons = {}
    lacking = [label for label in in_compute.values() if label not in compute]
    why = (f"{len(missing)} runs missing" if missing else
           f"{compute_results} lacks {', '.join(lacking)}" if lacking else None)
    for other in (LENET, best):
        comparisons[other] = {} if why else compare(costs, MAIN, other, compute, in_compute,
                                                    cap=largest_budget_images(series))
    return {"arms": costs, "missing": missing, "best_plain": best, "comparisons": comparisons,
            "verdict": {"verdict": "NOT SHOWN", "why": why} if why else half_the_epochs(comparisons[LENET]),
            "compute_source": str(compute_results)}


def _median(values: list) -> float | None:
    """Median with None (never reached) counted as larger than every number; None if it falls there."""
    if not values:
        return None
    ordered = sorted(values, key=lambda v: (v is None, v or 0))
    n = len(ordered)
    middle = ordered[(n - 1) // 2 : n // 2 + 1]
    return None if None in middle else float(np.mean(middle))


def markdown(s: dict) -> str:
    from .study import _report_header

    epochs = lambda images: f"{images / s['train_images']:.1f}"
    lines = _report_header("Time to accuracy: each model at its own rate, with a schedule that fits the budget",
                           s["command"]) + [
        f"Each model trains at its own learning rate, chosen on held-out images ([{s['selection']}]"
        f"({s['selection_link']})), with the cosine schedule compressed into a budget of E = "
        f"{', '.join(map(str, s['budgets']))} epochs (annealed to 0 at the end of E). Held-out accuracy "
        f"({s['holdout']:,} training images the runs never train on; the test set plays no part) is measured "
        f"{s['checks_per_epoch']} times per epoch. A seed's cost to a target is the images seen when it first "
        f"reaches it (interpolated between the two checks around the crossing), in the smallest budget that "
        f"reaches it. {s['seeds']} seeds per model; one epoch = {s['train_images']:,} images. A model's plateau is "
        "its seed-0 held-out accuracy at its chosen rate (the best of three rates, so if anything a high bar).",
        ""]
    if s["missing"]:
        lines += [f"**Partial: {len(s['missing'])} runs have not finished** ({', '.join(s['missing'])}); "
                  "the same command completes them.", ""]
    v = s["verdict"]
    lines += ["## Verdict", "", f"- **About half the epochs of LeNet**: {v['verdict']} ({v['why']}).", "",
              f"\"About half\" is read as a ratio (adaptive / LeNet, images to 99.0% held-out) of at most "
              f"{ABOUT_HALF:.2f}, fixed before any run: HOLDS needs the whole 95% interval at or below it, DOES NOT "
              "HOLD the whole interval above it.", "",
              "## Cost per model (median over seeds)", "",
              "| model | lr | plateau (held-out, 10 epochs) | target | seeds reaching it | smallest budgets E | "
              "median images | median epochs |", "|---|---:|---:|---|---:|---|---:|---:|"]
    for label, a in s["arms"].items():
        for name, value in a["targets"].items():
            per = [c[name] for c in a["per_seed"].values()]
            reached = [c for c in per if c]
            budgets = ", ".join(str(c["budget"]) if c else "-" for c in per)
            median = a["median_images"][name]
            lines.append(f"| {label} | {a['lr']:g} | {a['plateau']:.2%} | {name} ({value:.2%}) | "
                         f"{len(reached)} of {len(per)} | {budgets} | "
                         f"{'-' if median is None else f'{median:,.0f}'} | "
                         f"{'-' if median is None else epochs(median)} |")
    lines += ["", "In the medians a seed that never reaches a target counts as slower than every seed that does "
              "('-' if the median falls among those seeds).",
              "", "## Ratios: adaptive-lenet / other model (geometric means over seeds, 95% Welch t interval "
              "on the logarithms)", "",
              "| against | target | images (= epochs) | seconds (one thread) | forward multiply-adds |",
              "|---|---|---|---|---|"]
    bound = {"adaptive": ", at least", "other": ", at most", "both": ", no bound"}
    cell = lambda r: f"{r['ratio']:.2f} " + ("(no interval: no spread)" if r["ci95"] is None
                                             else f"({r['ci95'][0]:.2f} to {r['ci95'][1]:.2f})") \
        + bound.get(r.get("censored"), "")
    for other, comparison in s["comparisons"].items():
        for name, c in comparison.items():
            if c.get("images"):
                shown = f"{name} (unequal: each model's own)" if "plateau" in name else name
                lines.append(f"| {other} | {shown} | {cell(c['images'])} | {cell(c['seconds'])} | "
                             f"{cell(c['multiply_adds'])} |")
            else:
                lines.append(f"| {other} | {name} | - ({c['why']}) | - | - |")
    lines += ["", "A ratio below 1: adaptive-lenet gets there first. A ratio is of geometric means, so it differs "
              "from the ratio of the medians above. Seconds and multiply-adds scale the image "
              "ratio by each model's one-thread seconds per training step and forward multiply-adds per image "
              "from [data/compute/results.md](../compute/results.md) (one side-by-side timing; their intervals are "
              "the image ratio's, scaled: the spread between seeds only, not the timing's own uncertainty). "
              "The costs depend on the budgets tried: a seed that needs E = 8 might get there with a budget "
              "between 5 and 8. Targets named \"of plateau\" differ between models (each model's own). A seed "
              "that never reached a target counts as reaching it at the end of the largest budget: \"at least\" "
              "(adaptive seeds so counted) and \"at most\" (the other model's) mark the bounds this gives.", "",
              "![held-out accuracy against images seen](time-to-accuracy.png)", "",
              "## Every seed", "", "| model | seed | " + " | ".join(
                  ["target", "budget E", "images"]) + " |", "|---|---:|---|---:|---:|"]
    for label, a in s["arms"].items():
        for seed, c in a["per_seed"].items():
            for name in a["targets"]:
                hit = c[name]
                lines.append(f"| {label} | {seed} | {name} | {hit['budget']} | {hit['images']:,.0f} |" if hit else
                             f"| {label} | {seed} | {name} | not reached at E <= {s['budgets'][-1]} | - |")
    return "\n".join(lines) + "\n"


def plot_curves(series: dict, summary: dict, file) -> None:
    """One panel per model: held-out accuracy against epochs of training for every finished run,
    coloured by its budget E, with the model's targets as dashed lines."""
    import matplotlib
    from matplotlib.figure import Figure  # not pyplot: a library call leaves the backend alone

    labels = list(summary["arms"])
    fig = Figure(figsize=(4.2 * len(labels), 3.8), dpi=110)
    axes = fig.subplots(1, len(labels), sharex=True, sharey=True, squeeze=False)
    colours = dict(zip(summary["budgets"], matplotlib.colormaps["viridis"](np.linspace(0, 0.9, len(summary["budgets"])))))
    for ax, label in zip(axes[0], labels):
        for (name, seed), runs in series.items():
            if name != label:
                continue
            for run in runs:
                if not is_finished(run) or not (run.folder / CHECKS_NAME).exists():
                    continue
                points = curve(run)
                ax.plot([i / summary["train_images"] for i, _ in points], [100 * a for _, a in points],
                        color=colours[run.config.epochs], linewidth=1, alpha=0.7,
                        label=f"E = {run.config.epochs}" if seed == 0 else None)
        for name, value in summary["arms"][label]["targets"].items():
            ax.axhline(100 * value, color="tab:red" if "plateau" in name else "gray",
                       linestyle=":" if "plateau" in name else "--", linewidth=1)
        ax.set_title(f"{label} (lr {summary['arms'][label]['lr']:g})", fontsize=10)
        ax.set_xlabel("epochs of training")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    axes[0][0].set_ylabel("held-out accuracy (%)")
    axes[0][0].set_ylim(97.0, 99.6)
    fig.suptitle("cosine schedule compressed into E epochs; grey dashed: 98.5% and 99.0%; red dotted: 99.8% of "
                 "the model's own plateau", fontsize=10)
    fig.tight_layout()
    fig.savefig(file, format="png")

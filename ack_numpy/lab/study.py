"""Two studies beside the reproduction, each one command, resumable, in parallel processes.

    python -m ack_numpy study convergence --jobs 2 --out data/convergence
    python -m ack_numpy study budget --jobs 2 --out data/budget-sweep

convergence  "About half the training epochs": lenet, adaptive-lenet and plain-small with
             a constant learning rate (the same for all, so no schedule decides when a
             model gets good), one epoch at a time until the test accuracy reaches 99% or
             a cap of epochs. Reports epochs and images seen to 98.5% and 99% per seed.
budget       Does adaptivity pay at other sizes? The adaptive model and its equal-budget
             plain counterpart (plain-small's rule) at five widths from about 1,000 to
             28,000 parameters, the reproduction's recipe, several seeds each.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..files import atomic_write
from ..models import build_model
from .variants import adaptive_width_options, plain_width_options
from ..train import TrainConfig
from .reproduce import plan as reproduction_plan
from .reproduce import _fmt_epochs, _fmt_sd, _median_epochs, epochs_to_target, recipe, reused_reproduction
from .records import check_report_may_replace, check_report_outputs, image_counts, summary_text, verified_rows
from .runner import Run, run_commands, is_finished, run_all
from .stats import compare, describe, mean_difference, number_of_splits, stratified_permutation_p

# ----------------------------------------------------------------------------- convergence
CONVERGENCE_MODELS = ("adaptive-lenet", "plain-small", "lenet")  # the order they are trained in
# Adam's own recommended step size (Kingma & Ba, 2015), fixed before any run of this study:
# nothing here is tuned, on the test set or otherwise.
CONVERGENCE_LR = 1e-3
CONVERGENCE_TARGETS = (0.985, 0.99)


def convergence_plan(out: Path, seeds: int = 3, max_epochs: int = 15, lr: float = CONVERGENCE_LR,
                     data_dir: str | None = None, limit_train: int | None = None,
                     limit_test: int | None = None, models=CONVERGENCE_MODELS) -> list[Run]:
    runs = []
    for model in models:
        for seed in range(seeds):
            name = f"{model}-seed{seed}"
            config = TrainConfig(model=model, epochs=max_epochs, seed=seed, out=str(out / "runs" / name),
                                 data_dir=data_dir, limit_train=limit_train, limit_test=limit_test,
                                 schedule="constant", lr=lr)
            runs.append(Run(name, config, until=max(CONVERGENCE_TARGETS)))
    return runs


# ----------------------------------------------------------------------------- budget sweep
BUDGET_WIDTHS = (2, 4, 8, 14, 20)


def budget_arms(widths=BUDGET_WIDTHS) -> list[tuple[str, str, dict, int]]:
    """(label, model, options, width) of every model in the sweep."""
    arms = []
    for width in widths:
        arms.append((f"adaptive-w{width}", "adaptive-lenet", adaptive_width_options(width), width))
        arms.append((f"plain-w{width}", "plain-small", plain_width_options(width), width))
    return arms


def budget_plan(out: Path, seeds: int = 3, epochs: int = 10, widths=BUDGET_WIDTHS, data_dir: str | None = None,
                limit_train: int | None = None, limit_test: int | None = None,
                reuse: Path | None = None) -> list[Run]:
    """The widest (slowest) models first, so that parallel jobs end together. With `reuse`
    (the reproduction's folder), width 8 is the reproduction's adaptive-lenet and plain-small
    runs, the same networks with the same recipe, kept where they are."""
    runs = []
    for label, model, options, width in sorted(budget_arms(widths), key=lambda arm: -arm[3]):
        if width == 8 and reuse is not None:
            same = {r.name: r for r in reproduction_plan(reuse, seeds=seeds, epochs=epochs, data_dir=data_dir,
                                                         limit_train=limit_train, limit_test=limit_test)}
            runs += [Run(f"{label}-seed{seed}", same[f"{model}-seed{seed}"].config) for seed in range(seeds)]
            continue
        for seed in range(seeds):
            name = f"{label}-seed{seed}"
            config = TrainConfig(model=model, epochs=epochs, seed=seed, out=str(out / "runs" / name),
                                 data_dir=data_dir, limit_train=limit_train, limit_test=limit_test,
                                 model_options=options)
            runs.append(Run(name, config))
    return runs


# ----------------------------------------------------------------------------- convergence: summary
def _rows(run: Run) -> list[dict]:
    """The rows of a finished run, checked against its checkpoint or record (records.py); [] if unfinished."""
    return verified_rows(run) or []


def convergence_summary(runs: list[Run], train_images: int) -> dict:
    """Per model and seed: epochs and images seen to each target (None: not within the cap)."""
    models, missing = {}, []
    for run in runs:
        rows = _rows(run)
        if not is_finished(run):
            missing.append(run.name)
            continue
        model = run.config.model
        accs = [r["test_acc"] for r in rows]
        entry = models.setdefault(model, {"parameters": build_model(model).num_parameters(), "per_seed": {}})
        reach = {str(t): epochs_to_target(accs, t) for t in CONVERGENCE_TARGETS}
        entry["per_seed"][str(run.config.seed)] = {
            "test_acc": accs, "epochs_to": reach,
            "images_to": {t: None if e is None else e * train_images for t, e in reach.items()}}
    for entry in models.values():
        entry["median_epochs_to"] = {str(t): _median_epochs([s["epochs_to"][str(t)] for s in entry["per_seed"].values()])
                                     for t in CONVERGENCE_TARGETS}
    return {"models": models, "missing": missing}


def _ratio(a, b):
    return None if a is None or b is None else a / b


def half_the_epochs_verdict(summary: dict, cap: int) -> dict:
    """HOLDS if adaptive-lenet's median epochs to 99% is at most half of LeNet's."""
    models = summary["models"]
    claim = "about half the training epochs of a conventional CNN (constant learning rate)"
    if "adaptive-lenet" not in models or "lenet" not in models:
        return {"claim": claim, "holds": None, "verdict": "NOT MEASURED", "evidence": "runs missing"}
    ada, lenet = models["adaptive-lenet"]["median_epochs_to"]["0.99"], models["lenet"]["median_epochs_to"]["0.99"]
    if ada is None:
        holds, why = False, f"adaptive-lenet did not reach 99% within {cap} epochs (median over seeds)"
    elif lenet is None:
        holds = True if ada <= (cap + 1) / 2 else None
        why = f"median epochs to 99%: adaptive-lenet {ada:g}, LeNet more than {cap}"
    else:
        holds = ada <= lenet / 2
        why = f"median epochs to 99%: adaptive-lenet {ada:g}, LeNet {lenet:g} (ratio {ada / lenet:.2f})"
    verdict = {True: "HOLDS", False: "DOES NOT HOLD", None: "NOT SHOWN"}[holds]
    return {"claim": claim, "holds": holds, "verdict": verdict, "evidence": why}


def _report_header(title: str, command: str) -> list[str]:
    """The first lines of every study report: its title and the command that regenerates it."""
    return [f"# {title}", "",
            f"Generated by `{command}` (finished runs are kept; rerun it to resume or to rewrite this report).", ""]


def write_convergence_markdown(summary: dict, path: Path, command: str) -> None:
    s = summary
    lines = _report_header("Convergence: epochs to 98.5% and 99% with a constant learning rate", command) + [
             f"Recipe, the same for every model: {json.dumps(s['recipe'])}, one epoch at a time until the test "
             f"accuracy reaches 99% or {s['max_epochs']} epochs, {s['train_images']:,} training / "
             f"{s['test_images']:,} test images, one BLAS thread per run.", "",
             f"The learning rate {s['recipe']['lr']:g} is Adam's recommended step size, fixed before any run; "
             "nothing is tuned. Accuracy is measured on the test set because the paper's 99% bar is a test-set "
             "figure; the test set only measures here, it chooses nothing (the stopping rule, first epoch at or "
             "above 99%, gives the same counts as training longer, since a constant rate does not depend on the "
             "horizon).", ""]
    if s["missing"]:
        lines += [f"**Partial: {len(s['missing'])} runs have not finished** ({', '.join(s['missing'])}); "
                  "the same command completes them.", ""]
    v = s["verdict"]
    lines += ["## Verdict", "", f"- **{v['claim']}**: {v['verdict']}. {v['evidence']}.", "",
              "HOLDS would need adaptive-lenet's median epochs to 99% to be at most half of LeNet's (a ratio of "
              "0.5 or less). The medians are over 3 seeds at one learning rate; \"final test acc\" below is each "
              "run's accuracy at the epoch where it stopped.", "",
              "## Epochs (and images seen) to each target, per seed", "",
              "| model | parameters | seed | epochs to 98.5% | epochs to 99% | images to 99% | final test acc |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for name, m in s["models"].items():
        for seed, r in m["per_seed"].items():
            lines.append(f"| {name} | {m['parameters']:,} | {seed} | {_fmt_epochs(r['epochs_to']['0.985'])} | "
                         f"{_fmt_epochs(r['epochs_to']['0.99'])} | "
                         f"{'-' if r['images_to']['0.99'] is None else format(r['images_to']['0.99'], ',')} | "
                         f"{r['test_acc'][-1]:.2%} |")
    lines += ["", "## Medians over seeds", "", "| model | median epochs to 98.5% | median epochs to 99% | "
              "ratio to LeNet (99%) |", "|---|---:|---:|---:|"]
    lenet99 = s["models"].get("lenet", {}).get("median_epochs_to", {}).get("0.99")
    for name, m in s["models"].items():
        e985, e99 = m["median_epochs_to"]["0.985"], m["median_epochs_to"]["0.99"]
        ratio = _ratio(e99, lenet99)
        lines.append(f"| {name} | {_fmt_epochs(e985)} | {_fmt_epochs(e99)} | {'-' if ratio is None else f'{ratio:.2f}'} |")
    lines += ["", "A seed that does not reach a target within the cap counts as slower than every seed that does "
              "(\"not reached\"). Images seen = epochs x training images.", "",
              "![test accuracy per epoch, constant learning rate](convergence.png)", ""]
    with atomic_write(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def plot_convergence(summary: dict, path: Path) -> None:
    from matplotlib.figure import Figure  # not pyplot: a library call leaves the backend alone

    fig = Figure(figsize=(7, 4.2), dpi=110)
    ax = fig.subplots()
    colors = {}
    for name, m in summary["models"].items():
        for i, (seed, r) in enumerate(m["per_seed"].items()):
            line, = ax.plot(range(1, len(r["test_acc"]) + 1), [100 * a for a in r["test_acc"]], marker="o",
                            markersize=3, color=colors.get(name), alpha=0.8,
                            label=f"{name} ({m['parameters']:,} params)" if i == 0 else None)
            colors[name] = line.get_color()
    for target in CONVERGENCE_TARGETS:
        ax.axhline(100 * target, color="gray", linestyle="--", linewidth=1)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(97.0, 99.6)
    ax.set_title(f"constant learning rate {summary['recipe']['lr']:g}: every seed, until 99%")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    with atomic_write(path) as f:
        fig.savefig(f, format="png")


def convergence(out: str | Path, seeds: int = 3, max_epochs: int = 15, lr: float = CONVERGENCE_LR, jobs: int = 1,
                data_dir: str | None = None, limit_train: int | None = None, limit_test: int | None = None,
                report_only: bool = False,
                 print_commands: bool = False, log=print) -> dict:
    out = Path(out)
    runs = convergence_plan(out, seeds, max_epochs, lr, data_dir, limit_train, limit_test)
    if print_commands:  # for a job array: one independent command per unfinished run
        return {"commands": [log(line) or line for line in run_commands(runs)]}
    out.mkdir(parents=True, exist_ok=True)
    wall = 0.0 if report_only else run_all(runs, jobs, log=log)
    summary = {"recipe": recipe(runs[0].config), "max_epochs": max_epochs,
               "targets": list(CONVERGENCE_TARGETS), **image_counts(limit_train, limit_test),
               **convergence_summary(runs, image_counts(limit_train)["train_images"])}
    summary["verdict"] = half_the_epochs_verdict(summary, max_epochs)
    summary["command"] = _command("study convergence", out, jobs, limit_train, limit_test,
                                  f"--seeds {seeds} --max-epochs {max_epochs} --lr {lr:g}")
    summary["wall_seconds_this_call"] = wall
    check_report_may_replace(out, summary, [run.name for run in runs])
    check_report_outputs(out, ["results.json", "results.md", "convergence.png"])
    with atomic_write(out / "results.json", "w") as f:
        f.write(summary_text(summary))
    write_convergence_markdown(summary, out / "results.md", summary["command"])
    if summary["models"]:  # no figure of nothing
        plot_convergence(summary, out / "convergence.png")
    log(f"wrote {out / 'results.md'}, {out / 'results.json'} and {out / 'convergence.png'}")
    return summary


def _command(name: str, out: Path, jobs: int, limit_train, limit_test, extra: str) -> str:
    return (f"python -m ack_numpy {name} {extra} --jobs {jobs} --out {out}"
            + (f" --limit-train {limit_train}" if limit_train else "")
            + (f" --limit-test {limit_test}" if limit_test else ""))


# ----------------------------------------------------------------------------- budget sweep: summary
def budget_summary(runs: list[Run], widths) -> dict:
    arms, missing = {}, []
    by_label = {label: (model, options, width) for label, model, options, width in budget_arms(widths)}
    for run in runs:
        label = run.name.rsplit("-seed", 1)[0]
        model, options, width = by_label[label]
        arm = arms.setdefault(label, {"model": model, "options": options, "width": width,
                                      "parameters": build_model(model, **options).num_parameters(),
                                      "final_test_acc_per_seed": {}})
        rows = _rows(run)
        if len(rows) >= run.config.epochs:
            arm["final_test_acc_per_seed"][str(run.config.seed)] = rows[run.config.epochs - 1]["test_acc"]
        else:
            missing.append(run.name)
    for arm in arms.values():
        finals = list(arm["final_test_acc_per_seed"].values())
        arm["final_test_acc"] = describe(finals) if finals else None
    pairs = []
    for width in widths:
        a, p = arms.get(f"adaptive-w{width}"), arms.get(f"plain-w{width}")
        fa = list(a["final_test_acc_per_seed"].values()) if a else []
        fp = list(p["final_test_acc_per_seed"].values()) if p else []
        pair = {"width": width, "adaptive": f"adaptive-w{width}", "plain": f"plain-w{width}"}
        if len(fa) >= 2 and len(fp) >= 2:
            pair.update(compare(fa, fp))
        pairs.append(pair)
    return {"arms": arms, "pairs": pairs, "missing": missing, "across_budgets": across_budgets(arms, widths)}


def across_budgets(arms: dict, widths) -> dict | None:
    """All budgets at once: how many the adaptive model leads, the mean difference, and a
    permutation p with labels shuffled only within each budget (None until every budget
    has at least 2 seeds per model)."""
    pairs = []
    for width in widths:
        finals = [list(arms.get(f"{kind}-w{width}", {}).get("final_test_acc_per_seed", {}).values())
                  for kind in ("adaptive", "plain")]
        if min(len(f) for f in finals) < 2:
            return None
        pairs.append(finals)
    differences = [mean_difference(a, b) for a, b in pairs]
    return {"budgets": len(pairs), "adaptive_ahead": sum(d > 0 for d in differences),
            "mean_difference": float(np.mean(differences)), "p": stratified_permutation_p(pairs)}


def budget_reading(summary: dict) -> list[str]:
    """Plain sentences from the numbers: one per budget (effect, interval, p), then what
    the number of seeds allows.

    "ahead" needs the interval to exclude 0 and p < 0.05; an interval that excludes 0 with
    a larger p is called a hint. With 3 seeds per model p cannot go below 0.1, so a single
    budget can give a hint at most; the test over all budgets together can decide."""
    lines = []
    for pair in summary["pairs"]:
        if not pair.get("welch_ci95"):
            continue
        low, high = pair["welch_ci95"]
        numbers = (f"adaptive - plain = {100 * pair['difference']:+.2f} points, 95% Welch t interval "
                   f"{100 * low:+.2f} to {100 * high:+.2f}, permutation p = {pair['p']:.2g} (exact, two-sided)")
        leader = "adaptive" if low > 0 else "plain" if high < 0 else None
        if leader is None:
            verdict = "the interval contains 0: no difference shown"
        elif pair["p"] < 0.05:
            verdict = f"{leader} ahead"
        else:
            verdict = f"{leader} ahead by the interval but not by p: a hint, not established"
        parameters = summary["arms"][pair["adaptive"]]["parameters"]
        lines.append(f"{parameters:,} parameters: {numbers}; {verdict}.")
    measured = [p for p in summary["pairs"] if "difference" in p]
    if len(measured) > 1:
        size = lambda p: f"{summary['arms'][p['adaptive']]['parameters']:,}"
        largest = max(measured, key=lambda p: p["difference"])
        smallest = min(measured, key=lambda p: p["difference"])
        lines.append(f"The difference is largest at {size(largest)} parameters ({100 * largest['difference']:+.2f} "
                     f"points) and smallest at {size(smallest)} ({100 * smallest['difference']:+.2f}).")
    n = min((min(p["n"]) for p in summary["pairs"] if p.get("n")), default=0)
    if n:
        lines.append(f"With {n} seeds per model a permutation test cannot give p below "
                     f"{2 / number_of_splits(n, n):.2g}, and a percentile bootstrap of {n} values understates the "
                     "spread (so the intervals here are Welch t intervals): "
                     "read each budget's interval as a rough guide, not as proof; no single budget can pass "
                     "p < 0.05 with so few seeds.")
    every = summary.get("across_budgets")
    if every:
        lines.append(f"All {every['budgets']} budgets together: the adaptive model has the higher mean at "
                     f"{every['adaptive_ahead']} of {every['budgets']}, by {100 * every['mean_difference']:+.2f} "
                     f"points on average; shuffling the labels only within each budget, a total difference "
                     f"this far from 0 has p = {every['p']:.2g} "
                     + ("(below 0.05: \"no difference at any budget\" is rejected; the total leans most on the "
                        "budget with the largest difference, so this does not show a gain at each budget)."
                        if every["p"] < 0.05 else "(not below 0.05: seed noise could explain it)."))
    return lines


def write_budget_markdown(summary: dict, path: Path, command: str) -> None:
    s = summary
    lines = _report_header("Budget sweep: adaptive vs plain at five parameter budgets", command) + [
             f"Recipe, the same for every model: {json.dumps(s['recipe'])}, {s['epochs']} epochs, "
             f"{s['train_images']:,} training / {s['test_images']:,} test images, one BLAS thread per run. "
             "Adaptive width w: adaptive w@3x3 -> conv 2w@5x5 -> fc 10 (w = 8 is adaptive-lenet). Its plain "
             "counterpart follows plain-small's rule: the same network with an ordinary first layer, widened to "
             "the most channels that stay within the adaptive model's parameter count.",
             "", "Width 8 is adaptive-lenet and plain-small; with `--reuse` its runs are seeds 0-2 of the "
             "reproduction, whose 10 seeds per model measure that budget more closely "
             "([../reproduction/results.md](../reproduction/results.md)).", ""]
    if s["missing"]:
        lines += [f"**Partial: {len(s['missing'])} runs have not finished** ({', '.join(s['missing'])}); "
                  "the same command completes them.", ""]
    lines += ["## Reading", ""] + [f"- {line}" for line in s["reading"]] + ["",
              "## Final test accuracy", "",
              "| width | adaptive params | adaptive mean (sd) | plain channels | plain params | plain mean (sd) | "
              "difference (points) | 95% Welch t interval | permutation p (exact, two-sided) | seeds |",
              "|---:|---:|---:|---|---:|---:|---:|---|---:|---:|"]
    for pair in s["pairs"]:
        a, p = s["arms"].get(pair["adaptive"]), s["arms"].get(pair["plain"])
        cell = lambda arm: "-" if not arm or not arm["final_test_acc"] else \
            f"{arm['final_test_acc']['mean']:.2%} ({_fmt_sd(arm['final_test_acc']['sd'])})"
        diff = "-" if "difference" not in pair else f"{100 * pair['difference']:+.2f}"
        ci = "-" if "welch_ci95" not in pair else \
            f"{100 * pair['welch_ci95'][0]:+.2f} to {100 * pair['welch_ci95'][1]:+.2f}"
        pv = "-" if "p" not in pair else f"{pair['p']:.3g}"
        seeds = "-" if "n" not in pair else f"{pair['n'][0]} + {pair['n'][1]}"
        lines.append(f"| {pair['width']} | {a['parameters']:,} | {cell(a)} | {tuple(p['options']['channels'])} | "
                     f"{p['parameters']:,} | {cell(p)} | {diff} | {ci} | {pv} | {seeds} |")
    lines += ["", "sd in percentage points; difference = adaptive mean - plain mean.", "",
              "![final test accuracy against parameters](budget.png)", "", "## Every seed", "",
              "| model | parameters | final test accuracy per seed |", "|---|---:|---|"]
    for label, arm in s["arms"].items():
        lines.append(f"| {label} | {arm['parameters']:,} | " + ", ".join(
            f"seed {k}: {v:.4f}" for k, v in arm["final_test_acc_per_seed"].items()) + " |")
    with atomic_write(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def plot_budget(summary: dict, path: Path) -> None:
    """Final test accuracy against parameters (log x): every seed as a dot, mean +- sd as a bar."""
    from matplotlib.figure import Figure  # not pyplot: a library call leaves the backend alone

    fig = Figure(figsize=(7, 4.4), dpi=110)
    ax = fig.subplots()
    for kind, color in (("adaptive", "tab:orange"), ("plain", "tab:blue")):
        arms = sorted((a for name, a in summary["arms"].items() if name.startswith(kind) and a["final_test_acc"]),
                      key=lambda a: a["parameters"])
        if not arms:
            continue
        x = [a["parameters"] for a in arms]
        mean = [100 * a["final_test_acc"]["mean"] for a in arms]
        sd = [100 * (a["final_test_acc"]["sd"] or 0) for a in arms]
        ax.errorbar(x, mean, yerr=sd, marker="o", capsize=4, color=color,
                    label=f"{kind} (mean +- sd over seeds)")
        for a in arms:
            finals = [100 * f for f in a["final_test_acc_per_seed"].values()]
            ax.scatter([a["parameters"]] * len(finals), finals, color=color, alpha=0.35, s=14)
    ax.set_xscale("log")
    ax.set_xlabel("parameters (log scale)")
    ax.set_ylabel("final test accuracy (%)")
    ax.set_title(f"MNIST, {summary['epochs']} epochs, same recipe: adaptive vs equal-budget plain")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    with atomic_write(path) as f:
        fig.savefig(f, format="png")


def budget(out: str | Path, seeds: int = 3, epochs: int = 10, widths=BUDGET_WIDTHS, jobs: int = 1,
           data_dir: str | None = None, limit_train: int | None = None, limit_test: int | None = None,
           reuse: str | Path | None = None, report_only: bool = False,
                 print_commands: bool = False, log=print) -> dict:
    out = Path(out)
    reused = reused_reproduction(reuse)
    runs = budget_plan(out, seeds, epochs, widths, data_dir, limit_train, limit_test, reused)
    if print_commands:  # for a job array: one independent command per unfinished run
        return {"commands": [log(line) or line for line in run_commands(runs)]}
    out.mkdir(parents=True, exist_ok=True)
    wall = 0.0 if report_only else run_all(runs, jobs, log=log)
    summary = {"recipe": recipe(runs[0].config), "epochs": epochs, "widths": list(widths),
               **image_counts(limit_train, limit_test), **budget_summary(runs, widths)}
    summary["reading"] = budget_reading(summary)
    summary["command"] = _command("study budget", out, jobs, limit_train, limit_test,
                                  f"--seeds {seeds} --epochs {epochs}" + (f" --reuse {reuse}" if reuse else ""))
    summary["wall_seconds_this_call"] = wall
    check_report_may_replace(out, summary, [run.name for run in runs])
    check_report_outputs(out, ["results.json", "results.md", "budget.png"])
    with atomic_write(out / "results.json", "w") as f:
        f.write(summary_text(summary))
    write_budget_markdown(summary, out / "results.md", summary["command"])
    if any(arm["final_test_acc"] for arm in summary["arms"].values()):
        plot_budget(summary, out / "budget.png")
    log(f"wrote {out / 'results.md'}, {out / 'results.json'} and {out / 'budget.png'}")
    return summary

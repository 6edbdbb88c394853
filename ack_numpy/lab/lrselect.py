"""Each model's learning rate, chosen on held-out training images from a grid fixed in advance.

    python -m ack_numpy study lr-selection --jobs 2 --out data/lr-selection

Every model of the comparisons (adaptive-lenet, lenet, the plain candidates and the
quadratic controls of variants.py) is trained once per learning rate of LR_GRID, seed 0,
with the recipe of `train` otherwise (Adam, cosine to 0 over 10 epochs, batch 64, shifts
of up to 2 px), on the first 50,000 training images; it is scored on the last 10,000
(`--holdout 10000`).
The test set plays no part. A model's learning rate is the one with the best final held-out
accuracy; a model whose best rate lies at an edge of the grid, strictly ahead of the others,
is also trained one step beyond that edge (BEYOND_EDGE) and takes that rate if it is strictly
better there. The best plain model is the
plain candidate with the best held-out accuracy at its own chosen rate. The later studies
(ablation.py, time_to_accuracy.py) read these choices from results.json.
"""
from __future__ import annotations

from pathlib import Path

from ..train import TrainConfig, split_sizes
from .records import RECORD_NAME, read_record
from .runner import Run, run_commands
from .variants import plain_candidates, quadratic_controls

LR_GRID = (1e-3, 3e-3, 1e-2)  # fixed before any run: Adam's default, the old recipe's 3e-3, and 1e-2
# One step (the grid's, about 3x) past an edge: a best rate at the edge may only mean that a
# better one lies beyond it. This rule was added after the first report, which found five
# models at an edge; the grid itself is as it was fixed.
BEYOND_EDGE = {1e-3: 3e-4, 1e-2: 3e-2}
EVERY_RATE = tuple(sorted({*LR_GRID, *BEYOND_EDGE.values()}))
HOLDOUT = 10_000
SELECTION_SEED = 0
SELECTION_FOLDER = "data/lr-selection"  # where ablation and time-to-accuracy read the chosen rates, unless told
SELECTION_EPOCHS = 10


def selection_arms() -> dict[str, tuple[str, dict]]:
    """label -> (model, options) of every model whose learning rate is chosen here: the main
    models, the plain candidates and the quadratic controls (full-q is adaptive-lenet itself)."""
    controls = {label: arm for label, arm in quadratic_controls().items() if label != "full-q"}
    return {"adaptive-lenet": ("adaptive-lenet", {}), "lenet": ("lenet", {}), **plain_candidates(), **controls}


def run_name(label: str, lr: float) -> str:
    return f"{label}-lr{lr:g}"


def selection_plan(out: Path, data_dir: str | None = None, limit_train: int | None = None,
                   limit_test: int | None = None, holdout: int = HOLDOUT, epochs: int = SELECTION_EPOCHS,
                   finals: dict[str, dict[float, float]] | None = None) -> list[Run]:
    """Every (model, learning rate) run of the grid, and, for each model whose grid runs are
    all in `finals` (label -> {lr: held-out accuracy}) with an edge strictly best, the run one
    step beyond it. adaptive-lenet first, lenet (the slowest, needed by no other choice) last,
    so that the choices the later studies need are made first."""
    runs = []
    for label, (model, options) in sorted(selection_arms().items(), key=lambda arm: arm[0] == "lenet"):
        for lr in (*LR_GRID, *beyond_edge((finals or {}).get(label, {}))):
            name = run_name(label, lr)
            config = TrainConfig(model=model, epochs=epochs, seed=SELECTION_SEED, out=str(out / "runs" / name),
                                 data_dir=data_dir, limit_train=limit_train, limit_test=limit_test,
                                 holdout=holdout, model_options=dict(options), lr=lr)
            runs.append(Run(name, config))
    return runs


def beyond_edge(finals: dict[float, float]) -> list[float]:
    """[the rate one step past an edge] if the grid's runs are all in (finals: lr -> held-out
    accuracy) and that edge is strictly the best of the grid, else []."""
    if not all(lr in finals for lr in LR_GRID):
        return []
    best = choose({lr: finals[lr] for lr in LR_GRID})
    strictly = all(finals[lr] < finals[best] for lr in LR_GRID if lr != best)
    return [BEYOND_EDGE[best]] if best in BEYOND_EDGE and strictly else []


def finished_finals(runs: list[Run]) -> dict[str, dict[float, float]]:
    """label -> {lr: final held-out accuracy} of the finished runs, read unverified: this only
    decides what to train next, and the report verifies every run it uses."""
    from .runner import is_finished, rows_of

    labels = {run_name(label, lr): label for label in selection_arms() for lr in EVERY_RATE}
    finals: dict[str, dict[float, float]] = {}
    for run in runs:
        try:
            rows = rows_of(run)[: run.config.epochs] if is_finished(run) else []
        except (ValueError, KeyError, TypeError):
            rows = []  # an unreadable metrics.csv: the report names the run
        if rows:
            finals.setdefault(labels[run.name], {})[run.config.lr] = rows[-1]["test_acc"]
    return finals


# ----------------------------------------------------------------------------- report
def choose(finals: dict[float, float]) -> float:
    """The learning rate with the best final held-out accuracy; a tie goes to the smaller rate."""
    return max(sorted(finals), key=lambda lr: (finals[lr], -lr))


def chosen_rate(finals: dict[float, float]) -> float | None:
    """The best rate of the grid, or the step beyond its edge if that is strictly better;
    None while a run the choice needs has not finished."""
    if not all(lr in finals for lr in LR_GRID):
        return None
    best = choose({lr: finals[lr] for lr in LR_GRID})
    for beyond in beyond_edge(finals):
        if beyond not in finals:
            return None
        if finals[beyond] > finals[best]:
            return beyond
    return best


def selection_summary(runs: list[Run], read_rows) -> dict:
    """Per model: the final held-out accuracy at each learning rate, the best of the grid
    alone (grid_lr) and the one chosen (with the step beyond an edge)."""
    arms, missing = {}, []
    labels = {run_name(label, lr): (label, lr) for label in selection_arms() for lr in EVERY_RATE}
    for run in runs:
        label, lr = labels[run.name]
        model, options = selection_arms()[label]
        arm = arms.setdefault(label, {"model": model, "options": options, "holdout_acc": {}})
        rows = read_rows(run)
        if rows is None:
            continue
        arm["holdout_acc"][f"{lr:g}"] = rows[-1]["test_acc"]
        record = read_record(run, run.folder / RECORD_NAME) or {}
        if record.get("saturated") is not None:
            arm.setdefault("saturated", {})[f"{lr:g}"] = record["saturated"]
    for label, arm in arms.items():
        finals = {float(lr): acc for lr, acc in arm["holdout_acc"].items()}
        # Missing: the grid's unfinished runs and, once the grid is in, a step beyond it that it calls for.
        missing += [run_name(label, lr) for lr in (*LR_GRID, *beyond_edge(finals)) if lr not in finals]
        arm["grid_lr"] = choose({lr: finals[lr] for lr in LR_GRID}) if all(lr in finals for lr in LR_GRID) else None
        arm["chosen_lr"] = chosen_rate(finals)
        arm["chosen_holdout_acc"] = None if arm["chosen_lr"] is None else finals[arm["chosen_lr"]]
    plain = {label: arm for label, arm in arms.items() if label.startswith("plain-")}
    every_plain_in = bool(plain) and all(arm["chosen_lr"] for arm in plain.values())
    best_plain = max(plain, key=lambda label: plain[label]["chosen_holdout_acc"]) if every_plain_in else None
    return {"arms": arms, "best_plain": best_plain, "missing": missing}


def selection_markdown(summary: dict) -> str:
    s = summary
    lines = [f"# Learning rate of each model, chosen on {s['holdout']:,} held-out training images", "",
             f"Generated by `{s['command']}` (finished runs are kept; rerun it to resume or to rewrite this report).",
             "", f"Grid fixed in advance: {', '.join(f'{lr:g}' for lr in LR_GRID)}; a model whose best rate lies "
             "at an edge, strictly ahead of the others, is also trained one step beyond it ("
             + ", ".join(f"{beyond:g} beyond {edge:g}" for edge, beyond in BEYOND_EDGE.items())
             + ") and takes that rate only if it is strictly better (this step was added after the first report "
             "found five models at an "
             f"edge; '-': not needed, or not finished). Seed {SELECTION_SEED}, "
             f"{s['epochs']} epochs, recipe otherwise {s['recipe']}; trained on the first "
             f"{s['train_images']:,} training images, scored on the last {s['holdout']:,} (the test set plays "
             "no part). One seed per rate: a choice, not a measurement of the differences between rates "
             "(compare the seed-to-seed spread in [../reproduction/results.md](../reproduction/results.md)).", ""]
    if s["missing"]:
        lines += [f"**Partial: {len(s['missing'])} runs have not finished** ({', '.join(s['missing'])}); "
                  "the same command completes them.", ""]
    lines += ["| model | options | parameters | " + " | ".join(f"lr {lr:g}" for lr in EVERY_RATE) + " | chosen |",
              "|---|---|---:|" + "---:|" * len(EVERY_RATE) + "---:|"]
    for label, arm in s["arms"].items():
        cells = [f"{arm['holdout_acc'][f'{lr:g}']:.2%}" if f"{lr:g}" in arm["holdout_acc"] else "-"
                 for lr in EVERY_RATE]
        chosen = "-" if arm["chosen_lr"] is None else f"{arm['chosen_lr']:g}"
        options = ", ".join(f"{k}={v}" for k, v in arm["options"].items()) or "-"
        lines.append(f"| {label} | {options} | {arm['parameters']:,} | " + " | ".join(cells) + f" | {chosen} |")
    moved = [f"{label} ({arm['grid_lr']:g} to {arm['chosen_lr']:g})" for label, arm in s["arms"].items()
             if arm["chosen_lr"] and arm["chosen_lr"] != arm["grid_lr"]]
    edges = [f"{label} ({arm['chosen_lr']:g})" for label, arm in s["arms"].items()
             if arm["chosen_lr"] in BEYOND_EDGE.values()]
    lines += ["", f"Best plain model (highest held-out accuracy at its chosen rate): **{s['best_plain'] or '-'}**."]
    stepped = [label for label, arm in s["arms"].items()
               if any(f"{lr:g}" in arm["holdout_acc"] for lr in BEYOND_EDGE.values())]
    if moved:
        lines += [f"The step beyond the edge changed the choice of: {', '.join(moved)}."]
    elif stepped:
        lines += [f"One step beyond the edge was no better for any model tried there ({', '.join(stepped)}): "
                  "no choice changed."]
    if edges:
        lines += [f"Best one step beyond the grid, so a still better rate may lie further: {', '.join(edges)}."]
    lines += [
              "Held-out accuracy is the final epoch's; a tie goes to the smaller rate. The augmentation (random "
              "shifts of up to 2 pixels) was chosen earlier, also on held-out images: "
              "[../recipe-selection/README.md](../recipe-selection/README.md).", "",
              "## Saturation of the first layer's tanh", "",
              "Share of the first tanh layer's outputs with |y| > 0.99 (derivative below 0.02), on the first 2,000 "
              "held-out images, from each run's checkpoint at its chosen rate (models with a tanh first stage "
              "only; the adaptive layer's tanh is inside it). One seed each: a description, not a test.", "",
              "| model | saturated at the chosen rate |", "|---|---:|"]
    for label, arm in s["arms"].items():
        value = arm.get("saturated", {}).get(f"{arm['chosen_lr']:g}") if arm["chosen_lr"] else None
        if value is not None:
            lines.append(f"| {label} | {value:.2%} |")
    return "\n".join(lines) + "\n"


def lr_selection(out: str | Path, jobs: int = 1, data_dir: str | None = None, limit_train: int | None = None,
                 limit_test: int | None = None, report_only: bool = False,
                 print_commands: bool = False, log=print,
                 holdout: int = HOLDOUT, epochs: int = SELECTION_EPOCHS) -> dict:
    """Train every missing run (unless report_only), then write results.json and results.md.
    (holdout and epochs other than the defaults are for quick tests.)"""
    from .records import verified_rows
    from .reproduce import recipe
    from .runner import is_finished, run_all
    from .study import _command
    from .variants import parameters

    out = Path(out)

    def plan() -> list[Run]:  # the grid, and the steps beyond an edge that its finished runs call for
        grid = selection_plan(out, data_dir, limit_train, limit_test, holdout, epochs)
        return selection_plan(out, data_dir, limit_train, limit_test, holdout, epochs, finished_finals(grid))

    if print_commands:  # for a job array: one command per unfinished run needed now (the steps beyond
        # an edge are known once the grid has finished: print again then)
        return {"commands": [log(line) or line for line in run_commands(plan())]}
    out.mkdir(parents=True, exist_ok=True)
    wall = 0.0
    if not report_only:
        wall += run_all(plan(), jobs, log=log)  # the grid
        beyond = [run for run in plan() if not is_finished(run)]
        wall += run_all(beyond, jobs, log=log) if beyond else 0.0  # the steps beyond an edge it calls for
    runs = plan()
    summary = {"recipe": {k: v for k, v in recipe(runs[0].config).items() if k != "lr"}, "grid": list(LR_GRID),
               "beyond_edge": {f"{edge:g}": beyond for edge, beyond in BEYOND_EDGE.items()},
               "seed": SELECTION_SEED, "epochs": epochs, "holdout": holdout,
               "train_images": split_sizes(limit_train, limit_test, holdout)[0],
               **selection_summary(runs, verified_rows)}
    for arm in summary["arms"].values():
        arm["parameters"] = parameters(arm["model"], arm["options"])
    summary["command"] = _command("study lr-selection", out, jobs, limit_train, limit_test, "").replace("  ", " ")
    summary["wall_seconds_this_call"] = wall
    from .records import check_report_may_replace, summary_text, write_report_files

    check_report_may_replace(out, summary, [run.name for run in runs])
    write_report_files(out, {"results.json": summary_text(summary),
                             "results.md": selection_markdown(summary)})
    log(f"wrote {out / 'results.md'} and {out / 'results.json'}")
    return summary

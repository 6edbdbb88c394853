"""Adaptive, or a better baseline? Adaptive, or just quadratic? 10 seeds each, at chosen rates.

    python -m ack_numpy study ablation --seeds 10 --jobs 2 --out data/ablation \
        --selection data/lr-selection --reuse data/reproduction

The models, all at adaptive-lenet's parameter budget (variants.py), each trained on the
full training set and scored on the test set, seeds 0..N-1:

  equal budget   adaptive-lenet against the best plain model (chosen on held-out images by
                 `study lr-selection`), each at its own chosen learning rate;
  quadratic      adaptive-lenet's network with Q diagonal, Q of rank 1 and 2, and an
                 ordinary convolution followed by a quadratic activation (variants.py),
                 each at its own rate where the selection has chosen one, otherwise at
                 adaptive-lenet's (the report says which);
  same tanh      plain-tanh (adaptive-lenet's network with an ordinary tanh first layer:
                 only the kernel differs) at its own chosen rate, when it is not the best
                 plain model already: the reference for "less saturation" and the tuned
                 twin of the reproduction's untuned plain-small.

The choices are read from the selection's results.json (data flows one way: a record,
then a plan). With `--reuse`, a run whose settings are exactly those of a reproduction run
(same model, options, recipe and learning rate) is that run, kept where it is.
Runs are trained in order of priority: the equal-budget pair for every seed, then the
quadratic controls seed by seed, so that a stopped study has the same seeds of every control.
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from ..train import TrainConfig
from .lrselect import SELECTION_FOLDER
from .records import (RECORD_NAME, SummaryError, check_report_may_replace, correct_of, image_counts, read_record, read_summary,
                      summary_text, verified_rows, write_report_files)
from .runner import Run, run_commands, run_all
from .stats import bootstrap_ci, describe, mcnemar_p, mean_difference, number_of_splits, permutation_p, welch_ci
from .variants import parameters, plain_candidates, quadratic_controls

MAIN = "adaptive-lenet"
SAME_TANH = "plain-tanh"  # the plain model whose first layer is adaptive-lenet's but for the kernel


class SelectionMissing(ValueError):
    """The learning-rate selection this study needs is missing or incomplete."""


def load_selection(folder: Path) -> dict:
    path = Path(folder) / "results.json"
    if not path.exists():
        raise SelectionMissing(f"{path} not found: run `python -m ack_numpy study lr-selection --out {folder}` first")
    try:
        selection = read_summary(path)
    except SummaryError as err:
        raise SelectionMissing(str(err)) from None
    waiting = [label for label, arm in selection["arms"].items() if not arm.get("chosen_lr")]
    if not selection.get("best_plain") or MAIN in waiting or set(waiting) & set(quadratic_controls()):
        raise SelectionMissing(f"{path} has not chosen the rates of the compared models yet "
                               f"({len(selection.get('missing', []))} runs missing): finish `{selection.get('command')}` first")
    return selection


def ablation_arms(selection: dict) -> dict[str, tuple[str, dict, float]]:
    """label -> (model, options, learning rate), in the order of priority."""
    chosen = {label: arm["chosen_lr"] for label, arm in selection["arms"].items()}
    best = selection["best_plain"]
    model, options = plain_candidates()[best]
    arms = {MAIN: ("adaptive-lenet", {}, chosen[MAIN]), best: (model, options, chosen[best])}
    for label, (model, options) in quadratic_controls().items():
        if label != "full-q":
            arms[label] = (model, options, chosen.get(label) or chosen[MAIN])
    if SAME_TANH != best and chosen.get(SAME_TANH):
        model, options = plain_candidates()[SAME_TANH]
        arms[SAME_TANH] = (model, options, chosen[SAME_TANH])
    return arms


def run_name(label: str, lr: float, main_lr: float, seed: int) -> str:
    """A control trained at a rate of its own gets the rate in its folder's name, so that its
    runs never meet those trained at adaptive-lenet's rate before its own was chosen."""
    return f"{label}-seed{seed}" if label == MAIN or lr == main_lr or not _is_control(label) \
        else f"{label}-lr{lr:g}-seed{seed}"


def _is_control(label: str) -> bool:
    return label in quadratic_controls()


def _reused_folder(reuse: Path | None, config: TrainConfig, seed: int) -> Path | None:
    """The reproduction run with exactly these settings (all but the folder), if there is one."""
    from dataclasses import asdict

    from .reproduce import plan as reproduction_plan

    if reuse is None:
        return None
    wanted = {k: v for k, v in asdict(config).items() if k != "out"}
    for run in reproduction_plan(reuse, seeds=seed + 1, lenet_seeds=seed + 1, epochs=config.epochs,
                                 data_dir=config.data_dir, limit_train=config.limit_train,
                                 limit_test=config.limit_test):
        if {k: v for k, v in asdict(run.config).items() if k != "out"} == wanted and run.folder.exists():
            return run.folder
    return None


def ablation_plan(out: Path, selection: dict, seeds: int = 10, reuse: Path | None = None, data_dir: str | None = None,
                  limit_train: int | None = None, limit_test: int | None = None, epochs: int = 10) -> list[Run]:
    arms = ablation_arms(selection)
    equal_budget, controls = list(arms)[:2], list(arms)[2:]
    order = [(label, seed) for label in equal_budget for seed in range(seeds)] + \
            [(label, seed) for seed in range(seeds) for label in controls]
    runs = []
    for label, seed in order:
        model, options, lr = arms[label]
        name = run_name(label, lr, arms[MAIN][2], seed)
        config = TrainConfig(model=model, epochs=epochs, seed=seed, out=str(out / "runs" / name), data_dir=data_dir,
                             limit_train=limit_train, limit_test=limit_test, model_options=dict(options), lr=lr)
        folder = _reused_folder(reuse, config, seed)
        runs.append(Run(name, config if folder is None else replace(config, out=str(folder))))
    return runs


def earlier_runs(runs: list[Run], arms: dict) -> dict[str, list[Run]]:
    """The runs a control trained at adaptive-lenet's rate before a rate of its own was
    chosen (folders without a rate in the name): kept as records, reported beside the
    chosen-rate runs so that the switch of rate after a first look is visible."""
    main_lr, found = arms[MAIN][2], {}
    for run in runs:
        label = run.name.rsplit("-lr", 1)[0] if "-lr" in run.name else None
        if label in arms and _is_control(label) and arms[label][2] != main_lr:
            folder = run.folder.parent / f"{label}-seed{run.config.seed}"
            found.setdefault(label, []).append(Run(folder.name, replace(run.config, lr=main_lr, out=str(folder))))
    return found


def earlier_comparisons(main_arm: dict, earlier: dict[str, list[Run]]) -> dict:
    """adaptive-lenet (its chosen-rate runs) against each control's earlier runs at its rate."""
    out = {}
    for label, runs in earlier.items():
        finals = {}
        for run in runs:
            rows = verified_rows(run)
            if rows is not None:
                finals[str(run.config.seed)] = rows[-1]["test_acc"]
        if len(finals) >= 2:
            c = compare_arms(main_arm, {"final_test_acc_per_seed": finals}, MAIN, label, {})
            out[f"{MAIN} - {label}"] = {k: c[k] for k in ("seeds", "difference", "welch_ci95", "p")}
    return out


# ----------------------------------------------------------------------------- report
def ablation_summary(runs: list[Run], arms: dict) -> dict:
    by_arm, missing, records = {}, [], {}
    label_of = {run_name(label, lr, arms[MAIN][2], seed): label
                for label, (_, _, lr) in arms.items() for seed in {run.config.seed for run in runs}}
    for run in runs:
        label = label_of[run.name]
        model, options, lr = arms[label]
        arm = by_arm.setdefault(label, {"model": model, "options": options, "lr": lr,
                                        "parameters": parameters(model, options), "final_test_acc_per_seed": {},
                                        "folders": {}})
        rows = verified_rows(run)
        if rows is None:
            missing.append(run.name)
            continue
        arm["final_test_acc_per_seed"][str(run.config.seed)] = rows[-1]["test_acc"]
        arm.setdefault("gap_per_seed", {})[str(run.config.seed)] = rows[-1]["test_loss"] - rows[-1]["train_loss"]
        arm.setdefault("test_loss_per_seed", {})[str(run.config.seed)] = rows[-1]["test_loss"]
        arm["folders"][str(run.config.seed)] = str(run.folder)
        record = records[label, run.config.seed] = read_record(run, run.folder / RECORD_NAME)
        if (record or {}).get("saturated") is not None:
            arm.setdefault("saturated_per_seed", {})[str(run.config.seed)] = record["saturated"]
    for arm in by_arm.values():
        finals = list(arm["final_test_acc_per_seed"].values())
        arm["final_test_acc"] = describe(finals) if finals else None
    comparisons = {}
    for label in list(by_arm)[1:]:
        comparisons[f"{MAIN} - {label}"] = compare_arms(by_arm[MAIN], by_arm[label], MAIN, label, records)
    return {"arms": by_arm, "comparisons": comparisons, "missing": missing}


def compare_arms(a: dict, b: dict, name_a: str, name_b: str, records: dict) -> dict:
    """mean(a) - mean(b) over every finished seed of each (two independent samples): Welch and
    bootstrap intervals, exact permutation p, verdict; McNemar per seed both have, where both
    checkpoints' records (records: (label, seed) -> record) hold per-image results."""
    fa, fb = list(a["final_test_acc_per_seed"].values()), list(b["final_test_acc_per_seed"].values())
    seeds = sorted(set(a["final_test_acc_per_seed"]) & set(b["final_test_acc_per_seed"]), key=int)
    result = {"seeds": [len(fa), len(fb)]}
    if min(len(fa), len(fb)) < 2:
        return result
    low, high = welch_ci(fa, fb)
    result.update(difference=mean_difference(fa, fb), welch_ci95=[low, high], bootstrap_ci95=list(bootstrap_ci(fa, fb)),
                  p=permutation_p(fa, fb), splits=number_of_splits(len(fa), len(fb)),
                  p_exact=number_of_splits(len(fa), len(fb)) <= 200_000)
    p = result["p"]
    result["verdict"] = (f"{name_a} ahead" if low > 0 and p < 0.05 else f"{name_b} ahead" if high < 0 and p < 0.05
                         else "no difference shown")
    per_seed = []
    for s in seeds:
        ca = correct_of(records.get((name_a, int(s))))
        cb = correct_of(records.get((name_b, int(s))))
        if ca is not None and cb is not None and len(ca) == len(cb):
            per_seed.append({"seed": int(s), **mcnemar_p(ca, cb)})
    result["mcnemar_per_seed"] = per_seed
    ga, gb = list(a.get("gap_per_seed", {}).values()), list(b.get("gap_per_seed", {}).values())
    if min(len(ga), len(gb)) >= 2:
        la, lb = list(a["test_loss_per_seed"].values()), list(b["test_loss_per_seed"].values())
        result["gap"] = {"difference": mean_difference(ga, gb), "welch_ci95": list(welch_ci(ga, gb)),
                         "p": permutation_p(ga, gb), "test_loss_difference": mean_difference(la, lb)}
    return result


def _pts(x: float) -> str:
    return f"{100 * x:+.2f}"


def earlier_text(earlier: dict, comparisons: dict) -> str:
    """The earlier runs at adaptive-lenet's rate in words, and whether their verdicts (by the
    same rule) are those of the chosen-rate runs."""
    if not earlier:
        return ""
    parts, same = [], True
    for name, c in earlier.items():
        low, high = c["welch_ci95"]
        verdict = f"{MAIN} ahead" if low > 0 and c["p"] < 0.05 else "no difference shown"
        same = same and verdict == comparisons.get(name, {}).get("verdict")
        parts.append(f"{name.split(' - ', 1)[1]} {_pts(c['difference'])} (Welch {_pts(low)} to {_pts(high)}, "
                     f"p = {c['p']:.2g}, {c['seeds'][1]} seeds: {verdict})")
    return ("Those earlier runs at adaptive-lenet's rate, kept in the folders without a rate in the name, give "
            "adaptive-lenet minus " + "; ".join(parts)
            + (": the same verdicts as at the chosen rates. " if same else ": verdicts that differ from those at "
               "the chosen rates. "))


def ablation_markdown(s: dict) -> str:
    lines = ["# Adaptive or a better baseline, adaptive or just quadratic: equal budget, chosen rates", "",
             f"Generated by `{s['command']}` (finished runs are kept; rerun it to resume or, with --report-only, "
             "to rewrite this report from the run folders, each checked against its checkpoint or record).", "",
             f"Every model has at most adaptive-lenet's {s['budget']:,} stored parameters; {s['epochs']} epochs, "
             f"{s['train_images']:,} training images, accuracy on {s['test_images']:,} test images; recipe otherwise "
             + json.dumps(s["recipe"]) + ". Learning rates from "
             f"[{s['selection']}]({s['selection_link']}) (held-out images, never the test set); the quadratic "
             "controls at their own held-out choice where the selection made one, otherwise at adaptive-lenet's "
             "(the lr column says which rate each model trained at).", ""]
    if s["missing"]:
        lines += [f"**Partial: {len(s['missing'])} runs have not finished** ({', '.join(s['missing'])}); the "
                  "numbers below use the finished runs only, and the same command completes the rest.", ""]
    lines += ["| model | options | parameters | lr | seeds | mean | sd | min-max |", "|---|---|---:|---:|---:|---:|---:|---|"]
    for label, arm in s["arms"].items():
        d = arm["final_test_acc"]
        options = ", ".join(f"{k}={v}" for k, v in arm["options"].items()) or "-"
        if d:
            sd = "-" if d["sd"] is None else f"{100 * d['sd']:.2f}"
            lines.append(f"| {label} | {options} | {arm['parameters']:,} | {arm['lr']:g} | {d['n']} | {d['mean']:.2%} | "
                         f"{sd} | {d['min']:.2%}-{d['max']:.2%} |")
        else:
            lines.append(f"| {label} | {options} | {arm['parameters']:,} | {arm['lr']:g} | 0 | - | - | - |")
    saturation = {label: list(arm["saturated_per_seed"].values()) for label, arm in s["arms"].items()
                  if arm.get("saturated_per_seed")}
    if saturation:
        lines += ["", "Share of the first tanh layer's outputs with |y| > 0.99 on the first 2,000 test images "
                  "(runs whose checkpoint was here when the report was made): "
                  + "; ".join(f"{label} {100 * sum(v) / len(v):.2f}% ({len(v)} seeds)" for label, v in saturation.items())
                  + "."]
    own_rate = [label for label, arm in s["arms"].items() if label in quadratic_controls()
                and arm["lr"] != s["arms"][MAIN]["lr"]]
    if own_rate:
        lines += ["", f"{', '.join(own_rate)} chose a rate of their own on held-out images and train at it, in "
                  "folders named by it (e.g. `runs/" + own_rate[0] + f"-lr{s['arms'][own_rate[0]]['lr']:g}-seed0`); "
                  "their folders without a rate in the name hold earlier runs at adaptive-lenet's rate, kept as "
                  "records and not used here."]
    lines += ["", "## Differences (adaptive-lenet minus the other), in points", "",
              "| comparison | seeds | difference | 95% Welch t interval | 95% bootstrap interval | permutation p "
              "(exact, two-sided) | McNemar per seed (p < 0.05) | verdict |",
              "|---|---:|---:|---|---|---:|---|---|"]
    for name, c in s["comparisons"].items():
        if "difference" not in c:
            lines.append(f"| {name} | {c['seeds'][0]} + {c['seeds'][1]} | - | - | - | - | - | too few seeds |")
            continue
        exact = "exact" if c["p_exact"] else "sampled"
        mc = c["mcnemar_per_seed"]
        mc_text = "-" if not mc else f"{sum(m['p'] < 0.05 for m in mc)} of {len(mc)} seeds"
        lines.append(f"| {name} | {c['seeds'][0]} + {c['seeds'][1]} | {_pts(c['difference'])} | {_pts(c['welch_ci95'][0])} to "
                     f"{_pts(c['welch_ci95'][1])} | {_pts(c['bootstrap_ci95'][0])} to {_pts(c['bootstrap_ci95'][1])} | "
                     f"{c['p']:.3g} ({exact}) | {mc_text} | {c['verdict']} |")
    gaps = {name: c["gap"] for name, c in s["comparisons"].items() if "gap" in c}
    if gaps:
        lines += ["", "## Generalisation gap (test loss minus the last epoch's training loss), adaptive-lenet minus "
                  "the other", "",
                  "| comparison | difference | 95% Welch t interval | permutation p (exact, two-sided) | "
                  "test loss difference |", "|---|---:|---|---:|---:|"]
        for name, g in gaps.items():
            lines.append(f"| {name} | {g['difference']:+.4f} | {g['welch_ci95'][0]:+.4f} to "
                         f"{g['welch_ci95'][1]:+.4f} | {g['p']:.3g} | {g['test_loss_difference']:+.4f} |")
        lines += ["", "Both losses as metrics.csv logs them: the training loss is the mean over the last epoch's "
                  "batches, on randomly shifted images, while the weights still move (the cosine schedule is near "
                  "0 by then). A negative difference: adaptive-lenet's test loss sits closer to its training loss; that "
                  "is better generalisation only if its test loss is not also higher (a model that fits its "
                  "training images worse also has a smaller gap)."]
    lines += ["", "Verdict: \"ahead\" needs the Welch interval to exclude 0 and p < 0.05; otherwise no difference "
              "is shown. The permutation p is exact and two-sided: every split of the pooled seeds into two groups "
              "is enumerated. McNemar: exact two-sided binomial test on the test images one model of a seed pair "
              "gets right and the other wrong (only for runs whose record holds per-image results, i.e. whose "
              "checkpoint was on the machine when the report was made).", "",
              "Seed history: the seeds 0-9 of each arm were fixed before training. The quadratic controls were "
              "first trained at adaptive-lenet's rate: seeds 0-4 (diagonal-q 0-5) when the compute of a session "
              "ran out, seeds 5-9 in the next session, after that first look. After the 10-seed look the "
              "learning-rate selection was extended to them; diagonal-q, rank2-q and quadratic-act chose a rate "
              "of their own and were trained again at it (diagonal-q and quadratic-act 10 seeds at once, rank2-q "
              "8 and then 10), rank1-q chose adaptive-lenet's rate, so its runs are those first ones. "
              + earlier_text(s.get("earlier_at_main_rate", {}), s["comparisons"])
              + ("Runs reused from the reproduction (same settings) come from a study first looked at with 3 seeds "
                 "and then extended to 10." if s.get("reuse") else
                 "adaptive-lenet's runs were trained here rather than reused from the reproduction (whose runs "
                 "then kept no checkpoints, so no per-image results for McNemar); the reproduction, trained "
                 "again since on the same machine with the same settings, has the same runs seed by seed."),
              "", "## Every seed", "", "| model | final test accuracy per seed |", "|---|---|"]
    for label, arm in s["arms"].items():
        lines.append(f"| {label} | " + ", ".join(f"{k}: {v:.4f}" for k, v in arm["final_test_acc_per_seed"].items())
                     + " |")
    return "\n".join(lines) + "\n"


def ablation(out: str | Path, selection: str | Path = SELECTION_FOLDER, seeds: int = 10, reuse: str | Path | None = None, jobs: int = 1,
             data_dir: str | None = None, limit_train: int | None = None, limit_test: int | None = None,
             report_only: bool = False,
                 print_commands: bool = False, log=print, epochs: int = 10) -> dict:
    """Train every missing run (unless report_only), then write results.json and results.md
    (epochs other than 10 are for quick tests)."""
    from .reproduce import recipe, reused_reproduction
    from .study import _command
    from .variants import BUDGET

    out, selection_dir = Path(out), Path(selection)
    reused = reused_reproduction(reuse)
    chosen = load_selection(selection_dir)
    runs = ablation_plan(out, chosen, seeds, reused, data_dir, limit_train, limit_test, epochs)
    if print_commands:  # for a job array: one independent command per unfinished run
        return {"commands": [log(line) or line for line in run_commands(runs)]}
    out.mkdir(parents=True, exist_ok=True)
    wall = 0.0 if report_only else run_all(runs, jobs, log=log)
    summary = {"recipe": {k: v for k, v in recipe(runs[0].config).items() if k != "lr"}, "budget": BUDGET,
               "seeds": seeds,
               "epochs": epochs, **image_counts(limit_train, limit_test),
               "selection": str(selection_dir / "results.md"),
               "selection_link": str(Path("..") / selection_dir.name / "results.md"),
               **ablation_summary(runs, ablation_arms(chosen))}
    summary["earlier_at_main_rate"] = earlier_comparisons(summary["arms"][MAIN],
                                                          earlier_runs(runs, ablation_arms(chosen)))
    summary["reuse"] = None if reuse is None else str(reuse)
    summary["command"] = _command("study ablation", out, jobs, limit_train, limit_test,
                                  f"--seeds {seeds} --selection {selection_dir}" + (f" --reuse {reuse}" if reuse else ""))
    summary["wall_seconds_this_call"] = wall
    check_report_may_replace(out, summary, [run.name for run in runs])
    write_report_files(out, {"results.json": summary_text(summary),
                             "results.md": ablation_markdown(summary)})
    log(f"wrote {out / 'results.md'} and {out / 'results.json'}")
    return summary

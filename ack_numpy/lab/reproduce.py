"""Measure the paper's MNIST claims: `python -m ack_numpy reproduce --jobs 2 --out data/reproduction`.

The claims (Zamora Esquivel et al., 2019), and how each is judged here:

  1. "Above 99% test accuracy with 66x fewer parameters than LeNet."
     Holds if adaptive-lenet has at most 431,080 / 66 = 6,531 parameters and both its
     mean and its median final test accuracy over the seeds are at least 99.0%.
  2. "About half the training epochs of a conventional CNN." Judged in time_to_accuracy.py
     (`python -m ack_numpy study time-to-accuracy`), each model at its own held-out rate
     with the cosine fitted to each budget: with this recipe's one 10-epoch cosine every
     model improves near the end of its horizon, whatever its speed.

The ablations (not claims of the paper), on the mean final test accuracy over seeds:
  equal budget  adaptive-lenet vs plain-small (ordinary first layer widened to 9 channels,
                the most that fit the same budget);
  equal width   adaptive-lenet vs plain-width8 (ordinary first layer of the same 8 channels),
so a reader can tell how much of a gain comes from the kernel being adaptive and how much
from width. Both models train at this recipe's rate, 3e-3, chosen for adaptive-lenet and
untuned for the plain ones (each at its own held-out rate: ablation.py). Each says HOLDS
only when the 95% Welch t interval of the mean difference lies above 0 (stats.py), and
states the effect size, its interval and a permutation p.
The report also sets adaptive-lenet against LeNet itself (no verdict: not a claim), and
adds, where the runs' records hold per-image results, an exact McNemar test per seed pair.

Every model is trained with the same recipe (TrainConfig's defaults) and every seed is reported;
nothing is selected by test accuracy. The runs go through runner.py: parallel processes
(--jobs), one BLAS thread each, finished runs kept, unfinished ones resumed.
"""
from __future__ import annotations

import json
import math
import shutil
import statistics
from dataclasses import replace
from pathlib import Path

from ..files import atomic_write, quote_path
from ..models import LENET_PARAMETERS, PAPER_BUDGET, build_model
from .variants import EQUAL_WIDTH_OPTIONS
from ..train import CHECKPOINT_NAME, TrainConfig, read_metrics
from .records import (RECORD_NAME, SummaryError, check_report_may_replace, check_report_outputs, correct_of, image_counts,
                      read_record, read_summary, sha256, summary_text,
                      verified_rows)
from .runner import Run, run_commands, run_all
from .stats import compare, describe, mcnemar_p

STUDY_MODELS = ("lenet", "adaptive-lenet", "plain-small", "plain-width8")
MEDIAN_NAME = "adaptive-lenet-median.npz"  # the median seed's checkpoint, in the study's --out folder
# label -> (model name, options): plain-width8 is plain-small at adaptive-lenet's width.
ARMS = {"lenet": ("lenet", {}), "adaptive-lenet": ("adaptive-lenet", {}), "plain-small": ("plain-small", {}),
        "plain-width8": ("plain-small", dict(EQUAL_WIDTH_OPTIONS))}
# One recipe for every model: the defaults of `train`, which live in TrainConfig (Adam, cosine
# learning rate from 3e-3 to 0, batch 64, random shifts of up to 2 pixels). The studies build
# their TrainConfigs from those defaults; `recipe` only describes a config for the reports.
RECIPE_FIELDS = ("optimizer", "lr", "schedule", "batch_size", "max_shift")


def recipe(config: TrainConfig) -> dict:
    """The training recipe of a config, as the reports print it."""
    return {name: getattr(config, name) for name in RECIPE_FIELDS}


RECIPE = recipe(TrainConfig())  # the recipe of `train`'s defaults, for printing
TARGET = 0.99


def run_dir(out: Path, model: str, seed: int) -> Path:
    return out / "runs" / f"{model}-seed{seed}"


def reused_reproduction(reuse: str | Path | None) -> Path | None:
    """`--reuse DIR` (budget, ablation) as a Path, once DIR is known to be a reproduction's
    --out folder; None when not given. A folder that is not one is refused, never ignored."""
    if reuse is None:
        return None
    if not (Path(reuse) / "runs").is_dir():
        raise ValueError(f"--reuse {quote_path(reuse)}: no reproduction there (no runs/ folder); give the "
                         f"--out folder of a `reproduce`, e.g. data/reproduction")
    return Path(reuse)


def seeds_of(label: str, seeds: int, lenet_seeds: int) -> list[int]:
    return list(range(lenet_seeds if label == "lenet" else seeds))


def plan(out: Path, seeds: int = 10, lenet_seeds: int = 10, epochs: int = 10, data_dir: str | None = None,
         limit_train: int | None = None, limit_test: int | None = None, models=STUDY_MODELS) -> list[Run]:
    """Every run of the reproduction, the slowest models first so that parallel jobs end together."""
    runs = []
    for label in models:
        model, options = ARMS[label]
        for seed in seeds_of(label, seeds, lenet_seeds):
            config = TrainConfig(model=model, epochs=epochs, seed=seed, out=str(run_dir(out, label, seed)),
                                 data_dir=data_dir, limit_train=limit_train, limit_test=limit_test,
                                 model_options=options)
            runs.append(Run(f"{label}-seed{seed}", config))
    cost = {"lenet": 3, "adaptive-lenet": 2, "plain-small": 1, "plain-width8": 1}
    return sorted(runs, key=lambda r: -cost.get(r.name.rsplit("-seed", 1)[0], 0))


# ----------------------------------------------------------------------------- summary
def epochs_to_target(accuracies: list[float], target: float = TARGET) -> int | None:
    """First epoch (1-based) whose test accuracy is at least `target`; None if never."""
    for epoch, acc in enumerate(accuracies, start=1):
        if acc >= target:
            return epoch
    return None


def _median_epochs(values: list[int | None]) -> float | None:
    """Median epochs to the target; a seed that never got there counts as "more than all"
    (infinity), and a median that is infinite is reported as None ("not reached")."""
    median = statistics.median([math.inf if v is None else v for v in values])
    return None if median == math.inf else median


def finished_rows(runs: dict[str, Run], label: str, seeds: list[int], missing: list[str],
                  correct: dict | None = None) -> dict:
    """{seed: metric rows} of the finished runs, each checked against its checkpoint or
    record (records.py); the names of the others go into `missing`. `correct`, if given,
    receives {(label, seed): which test images the run classifies correctly} for the runs
    whose record holds that (a record made from a checkpoint)."""
    found = {}
    for seed in seeds:
        run = runs[f"{label}-seed{seed}"]
        rows = verified_rows(run)
        if rows:
            found[seed] = rows
            per_image = correct_of(read_record(run, run.folder / RECORD_NAME))
            if correct is not None and per_image is not None:
                correct[(label, seed)] = per_image
        else:
            missing.append(f"{label}-seed{seed}")
    return found


def model_summary(rows_per_seed: dict[int, list[dict]], parameters: int, target: float = TARGET) -> dict:
    """Per model: final accuracy statistics over seeds, accuracy per epoch, epochs to target."""
    seeds = sorted(rows_per_seed)
    epochs = min(len(rows_per_seed[s]) for s in seeds)
    per_epoch = [[rows_per_seed[s][e]["test_acc"] for s in seeds] for e in range(epochs)]
    reach = {s: epochs_to_target([r["test_acc"] for r in rows_per_seed[s]], target) for s in seeds}
    finals = [rows_per_seed[s][-1]["test_acc"] for s in seeds]
    return {
        "parameters": parameters,
        "ratio_to_lenet": LENET_PARAMETERS / parameters,
        "seeds": seeds,
        "final_test_acc_per_seed": {str(s): f for s, f in zip(seeds, finals)},
        "final_test_acc": describe(finals),
        "final_test_acc_median": statistics.median(finals),
        "test_acc_per_seed": {str(s): [r["test_acc"] for r in rows_per_seed[s]] for s in seeds},
        "test_acc_median": [statistics.median(a) for a in per_epoch],
        "test_acc_min": [min(a) for a in per_epoch],
        "test_acc_max": [max(a) for a in per_epoch],
        "epochs_to_99_per_seed": {str(s): reach[s] for s in seeds},
        "epochs_to_99_median": _median_epochs(list(reach.values())),
        "seconds_per_epoch_median": statistics.median(r["seconds"] for s in seeds for r in rows_per_seed[s]),
    }


def summarize(out: Path, seeds: int, epochs: int, lenet_seeds: int = 10, models=STUDY_MODELS,
              limit_train: int | None = None, limit_test: int | None = None, data_dir: str | None = None) -> dict:
    summary = {"recipe": RECIPE, "epochs": epochs, "target": TARGET,
               **image_counts(limit_train, limit_test), "models": {}}
    summary["missing"] = []
    runs = {r.name: r for r in plan(out, seeds, lenet_seeds, epochs, data_dir, limit_train, limit_test, models)}
    correct = {}
    for label in models:
        model, options = ARMS[label]
        rows = finished_rows(runs, label, seeds_of(label, seeds, lenet_seeds), summary["missing"], correct)
        if rows:
            summary["models"][label] = model_summary(rows, build_model(model, **options).num_parameters())
    summary["comparisons"] = {}
    for a, b, what in (("adaptive-lenet", "plain-small", "equal budget"),
                       ("adaptive-lenet", "plain-width8", "equal width"),
                       ("plain-small", "plain-width8", "width alone"),
                       ("adaptive-lenet", "lenet", "nothing: LeNet has 66x the parameters")):
        if a in summary["models"] and b in summary["models"]:
            summary["comparisons"][f"{a} - {b}"] = {"what": what, **comparison(summary, a, b, correct)}
    summary["verdicts"] = verdicts(summary)
    return summary


def comparison(summary: dict, a: str, b: str, correct: dict | None = None) -> dict:
    """mean(a) - mean(b) over seeds (stats.compare), and an exact McNemar test on the test
    images for each seed both models have (seed s of a against seed s of b: two independent
    trainings, paired only by the images), where both records hold per-image results."""
    finals_a = list(summary["models"][a]["final_test_acc_per_seed"].values())
    finals_b = list(summary["models"][b]["final_test_acc_per_seed"].values())
    result = compare(finals_a, finals_b) if min(len(finals_a), len(finals_b)) >= 2 else {}
    correct = correct or {}
    pairs = sorted(set(summary["models"][a]["seeds"]) & set(summary["models"][b]["seeds"]))
    result["mcnemar_per_seed"] = [{"seed": s, **mcnemar_p(correct[(a, s)], correct[(b, s)])} for s in pairs
                                  if (a, s) in correct and (b, s) in correct]
    return result


def difference_verdict(claim: str, a: str, b: str, result: dict) -> dict:
    """HOLDS only when the 95% Welch t interval of mean(a) - mean(b) lies above 0; REVERSED
    when it lies below; otherwise NOT SHOWN (the data cannot tell the difference from seed
    noise). The Welch interval is the one valid at every number of seeds here; the
    percentile bootstrap is shown beside it from BOOTSTRAP_SEEDS seeds on."""
    if "welch_ci95" not in result:
        return {"claim": claim, "holds": False, "verdict": "NOT SHOWN", "evidence": "fewer than 2 seeds per model"}
    low, high = result["welch_ci95"]
    verdict = "HOLDS" if low > 0 else "REVERSED" if high < 0 else "NOT SHOWN"
    bootstrap = (f", 95% bootstrap CI {100 * result['ci95'][0]:+.2f} to {100 * result['ci95'][1]:+.2f}"
                 if min(result["n"]) >= BOOTSTRAP_SEEDS and "ci95" in result else "")
    evidence = (f"mean final test accuracy {a} minus {b}: {100 * result['difference']:+.2f} points "
                f"(95% Welch t {100 * low:+.2f} to {100 * high:+.2f}{bootstrap}; "
                f"permutation p = {result['p']:.3g}, exact, two-sided; "
                f"{result['n'][0]} and {result['n'][1]} seeds)")
    if verdict == "NOT SHOWN":
        evidence += "; the interval contains 0, so these seeds cannot tell it from seed noise"
    return {"claim": claim, "holds": verdict == "HOLDS", "verdict": verdict, "evidence": evidence}


def verdicts(summary: dict) -> dict:
    models = summary["models"]
    if "adaptive-lenet" not in models:
        return {}
    ada = models["adaptive-lenet"]
    small_enough = ada["parameters"] <= PAPER_BUDGET
    mean = ada["final_test_acc"]["mean"]
    accurate = ada["final_test_acc_median"] >= TARGET and mean >= TARGET
    found = {"accuracy_with_66x_fewer_parameters": {
        "claim": "above 99% MNIST test accuracy with 66x fewer parameters than LeNet",
        "holds": bool(small_enough and accurate), "verdict": "HOLDS" if small_enough and accurate else "DOES NOT HOLD",
        "evidence": (f"adaptive-lenet: {ada['parameters']:,} parameters ({ada['ratio_to_lenet']:.1f}x fewer than "
                     f"LeNet's {LENET_PARAMETERS:,}; budget {PAPER_BUDGET:,}); final test accuracy mean "
                     f"{mean:.2%}, median {ada['final_test_acc_median']:.2%}, range "
                     f"{ada['final_test_acc']['min']:.2%}-{ada['final_test_acc']['max']:.2%} over "
                     f"{len(ada['seeds'])} seeds")}}
    comparisons = summary["comparisons"]
    if "adaptive-lenet - plain-small" in comparisons:
        found["ablation"] = difference_verdict(
            "ablation, equal budget: adaptive kernels beat ordinary ones at the same parameter budget, both at "
            "this recipe's rate (untuned for plain-small; each at its own held-out rate: "
            "[../ablation/results.md](../ablation/results.md))",
            "adaptive-lenet", "plain-small", comparisons["adaptive-lenet - plain-small"])
    if "adaptive-lenet - plain-width8" in comparisons:
        found["ablation_equal_width"] = difference_verdict(
            "ablation, equal width: an adaptive first layer beats an ordinary one of the same width (8 channels), "
            "both at this recipe's rate (untuned for plain-width8)",
            "adaptive-lenet", "plain-width8", comparisons["adaptive-lenet - plain-width8"])
    return found


# ----------------------------------------------------------------------------- report
BOOTSTRAP_SEEDS = 10  # fewer seeds per model than this: the report shows no percentile bootstrap


def _mcnemar_text(per_seed: list[dict]) -> str:
    if not per_seed:
        return "- (no per-image records)"
    return (f"{sum(m['p'] < 0.05 for m in per_seed)} of {len(per_seed)} "
            f"({sum(m['a_only'] for m in per_seed):,} / {sum(m['b_only'] for m in per_seed):,})")


def _fmt_sd(sd) -> str:
    return "-" if sd is None else f"{100 * sd:.2f}"


def _fmt_epochs(value) -> str:
    return "not reached" if value is None else f"{value:g}"


def write_markdown(summary: dict, path: Path, command: str) -> None:
    models, epochs = summary["models"], summary["epochs"]
    lines = ["# Reproducing the paper's MNIST claims", "",
             f"Generated by `{command}` (finished runs are kept; rerun it to resume or to rewrite this report).", "",
             f"Recipe, the same for every model: {json.dumps(summary['recipe'])}, {epochs} epochs, "
             f"MNIST ({summary['train_images']:,} training / {summary['test_images']:,} test images), "
             f"one BLAS thread per run. Every seed trained is reported; nothing is selected by test accuracy.", "",
             "## Verdicts", ""]
    if summary["missing"]:
        lines[-2:-2] = [f"**Partial: {len(summary['missing'])} runs have not finished** "
                        f"({', '.join(summary['missing'])}); the numbers below use the finished runs only, "
                        f"and the same command completes the rest.", ""]
    for v in summary["verdicts"].values():
        lines.append(f"- **{v['claim']}**: {v['verdict']}. {v['evidence']}.")
    lines += ["- **about half the training epochs of a conventional CNN**: judged with each model at its own "
              "held-out rate and a cosine fitted to each budget in "
              "[../time-to-accuracy/results.md](../time-to-accuracy/results.md) (a cosine schedule that ends at "
              f"epoch {epochs} makes every model improve near its end, so epochs to 99% below mostly measure the "
              "schedule).",
              "- How the gap changes with size: [../budget-sweep/results.md](../budget-sweep/results.md).", "",
              "The interval that decides is the 95% Welch t interval of the difference of the mean final test "
              "accuracies; from 10 seeds per model a 95% percentile bootstrap (20,000 resamples) is shown beside "
              "it; p is an exact two-sided permutation test over every split of the pooled seeds "
              "(`ack_numpy/lab/stats.py`). HOLDS means: for the first claim, at most LeNet / 66 parameters with "
              "a mean and a median final test accuracy of at least 99%; for the ablations, a 95% Welch interval "
              "that lies above 0. Differences are in percentage points. The interval and p measure how much the "
              f"result moves from seed to seed on this one test set of {summary['test_images']:,} images; the "
              f"sampling error of the test set itself (about {100 * math.sqrt(0.99 * 0.01 / summary['test_images']):.1f} "
              "points at 99%) is not in them, though it is largely shared by two "
              "models scored on the same images.", "",
              "## Final test accuracy over seeds", "",
              "| model | parameters | LeNet / params | seeds | mean | sd | median | min-max | epochs to 99% (median; per seed) | s/epoch |",
              "|---|---:|---:|---:|---:|---:|---:|---|---|---:|"]
    for name, m in models.items():
        d = m["final_test_acc"]
        per_seed = ", ".join(_fmt_epochs(e) for e in m["epochs_to_99_per_seed"].values())
        lines.append(f"| {name} | {m['parameters']:,} | {m['ratio_to_lenet']:.1f}x | {d['n']} | {d['mean']:.2%} | "
                     f"{_fmt_sd(d['sd'])} | {d['median']:.2%} | {d['min']:.2%}-{d['max']:.2%} | "
                     f"{_fmt_epochs(m['epochs_to_99_median'])} ({per_seed}) | {m['seconds_per_epoch_median']:.1f} |")
    lines += ["", "sd in percentage points. plain-width8 is plain-small with 8 first-layer channels, "
              "adaptive-lenet's width, instead of 9. s/epoch is the median epoch time each run logged while it "
              "shared the machine with other runs and work: not a comparison of speed (for that, timed side by "
              "side at one thread: [../compute/results.md](../compute/results.md)).", "",
              "## Differences of the mean final test accuracy", "",
              "| difference | what is held equal | seeds | mean difference (points) | 95% Welch t interval | "
              "95% bootstrap CI | permutation p (exact, two-sided) | McNemar per seed pair: p < 0.05 "
              "(images only the first / only the second gets right, summed) |",
              "|---|---|---:|---:|---|---|---:|---|"]
    for name, c in summary["comparisons"].items():
        if c.get("ci95"):
            small = min(c["n"]) < BOOTSTRAP_SEEDS
            boot = "- (too few seeds)" if small else f"{100 * c['ci95'][0]:+.2f} to {100 * c['ci95'][1]:+.2f}"
            lines.append(f"| {name} | {c['what']} | {c['n'][0]} and {c['n'][1]} | {100 * c['difference']:+.2f} | "
                         f"{100 * c['welch_ci95'][0]:+.2f} to {100 * c['welch_ci95'][1]:+.2f} | {boot} | "
                         f"{c['p']:.3g} | {_mcnemar_text(c.get('mcnemar_per_seed', []))} |")
    lines += ["", f"McNemar: an exact two-sided test per seed pair on the {summary['test_images']:,} test images "
              "(seed s of one model against seed s of the other), uncorrected for the number of pairs: at "
              "p < 0.05 about 1 pair in 20 is expected by chance alone. The percentile bootstrap is shown from "
              f"{BOOTSTRAP_SEEDS} seeds per model; below that it is too narrow (with 3 seeds it has 10 distinct "
              "resamples) and the Welch t interval is the one to read."]
    if summary.get("median_checkpoint_seed") is not None:
        held = summary.get("median_checkpoint_file_seed")
        lines += ["", f"The median seed of adaptive-lenet's final accuracy is seed {summary['median_checkpoint_seed']}; "
                  f"`{MEDIAN_NAME}` holds seed {held}"
                  + ("." if held == summary["median_checkpoint_seed"] else
                     " (kept from an earlier report: this was a --report-only call, which trains nothing; "
                     "the same command without it trains that seed again and replaces the file).")]
    lines += ["", "![test accuracy per epoch](accuracy.png)", "",
              "## Test accuracy after each epoch (median over seeds, min-max in brackets)", "",
              "| epoch | " + " | ".join(models) + " |", "|---:|" + "---|" * len(models)]
    for e in range(epochs):
        cells = [f"{m['test_acc_median'][e]:.2%} ({m['test_acc_min'][e]:.2%}-{m['test_acc_max'][e]:.2%})"
                 for m in models.values()]
        lines.append(f"| {e + 1} | " + " | ".join(cells) + " |")
    lines += ["", "## Every seed", "", "| model | seed | test accuracy per epoch |", "|---|---:|---|"]
    for name, m in models.items():
        for seed, accs in m["test_acc_per_seed"].items():
            lines.append(f"| {name} | {seed} | " + " ".join(f"{a:.4f}" for a in accs) + " |")
    with atomic_write(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def plot_accuracy(summary: dict, path: Path) -> None:
    """Left: test accuracy per epoch (median line, min-max band). Right: final accuracy of every seed."""
    from matplotlib.figure import Figure  # not pyplot: a library call leaves the backend alone

    fig = Figure(figsize=(11, 4.4), dpi=110)
    ax, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    for i, (name, m) in enumerate(summary["models"].items()):
        epochs = range(1, len(m["test_acc_median"]) + 1)
        line, = ax.plot(epochs, [100 * a for a in m["test_acc_median"]], marker="o",
                        label=f"{name} ({m['parameters']:,} params)")
        ax.fill_between(epochs, [100 * a for a in m["test_acc_min"]], [100 * a for a in m["test_acc_max"]],
                        color=line.get_color(), alpha=0.2)
        finals = [100 * f for f in m["final_test_acc_per_seed"].values()]
        right.scatter([i] * len(finals), finals, color=line.get_color(), alpha=0.7, s=22)
        right.errorbar([i + 0.25], [100 * m["final_test_acc"]["mean"]],
                       yerr=[[100 * (m["final_test_acc"]["sd"] or 0)]], fmt="D", color=line.get_color(), capsize=4)
    ax.axhline(100 * TARGET, color="gray", linestyle="--", linewidth=1, label="99% (the paper's bar)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(97.0, 100.0)
    ax.set_title("test accuracy per epoch (median and range over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    right.axhline(100 * TARGET, color="gray", linestyle="--", linewidth=1)
    right.set_xticks(range(len(summary["models"])))
    right.set_xticklabels(list(summary["models"]), rotation=20, fontsize=8)
    right.set_ylabel("final test accuracy (%)")
    right.set_title("every seed (dots); mean and sd (diamond)")
    right.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_write(path) as f:
        fig.savefig(f, format="png")


def median_seed(summary: dict, model: str) -> int:
    """A seed whose final accuracy is the median one (the lower median for an even count);
    where several seeds share that accuracy, the lowest-numbered of them, so that adding
    seeds does not move the committed checkpoint to another seed of the same accuracy."""
    finals = sorted((accs[-1], int(s)) for s, accs in summary["models"][model]["test_acc_per_seed"].items())
    median = finals[(len(finals) - 1) // 2][0]
    return min(seed for accuracy, seed in finals if accuracy == median)


def _same_metrics(a: list[dict], b: list[dict]) -> bool:
    """Equal to the last digit in everything but the seconds."""
    return [{k: v for k, v in r.items() if k != "seconds"} for r in a] == \
           [{k: v for k, v in r.items() if k != "seconds"} for r in b]


def _file_seed(path: Path, runs: list[Run], written: str | None = None) -> int | None:
    """The seed of the median checkpoint already in `path` (None if there is none), once it
    is known to be what its name says: adaptive-lenet, with exactly the metrics of that
    seed's run folder, and the bytes of that run's checkpoint (its record's digest) or of
    the file the last report wrote there (`written`: a median trained again has other
    bytes, its timings and zip dates differ). Anything else (another model, a file from
    another study, weights changed in place) is refused, naming the file: a report never
    vouches for a file it has not checked."""
    from ..checkpoint import CheckpointError, read_meta

    if not path.exists():
        return None
    try:
        meta = read_meta(path)
    except CheckpointError as err:  # cut short, or not a checkpoint at all
        raise CheckpointError(f"{quote_path(path)} is not the median checkpoint of this study: it cannot be read "
                         f"({err}); refusing to report it (restore the file, or remove it to have it written "
                         f"again)") from None
    seed = meta.get("config", {}).get("seed")
    run = next((r for r in runs if r.name == f"adaptive-lenet-seed{seed}"), None)
    problem = None
    if meta.get("model") != "adaptive-lenet" or meta.get("model_options"):
        problem = f"it holds a {meta.get('model')} model with options {meta.get('model_options') or {}}"
    elif run is None or not (run.folder / "metrics.csv").exists():
        problem = f"it names seed {seed!r}, which has no run folder here"
    elif not _same_metrics(meta.get("metrics", []), read_metrics(run.folder / "metrics.csv")):
        problem = f"its metrics are not those of {run.folder / 'metrics.csv'}"
    else:  # a copy of the run's checkpoint has its bytes: weights edited in place are caught here
        recorded = (read_record(run, run.folder / RECORD_NAME) or {}).get("checkpoint_sha256")
        if recorded is not None and sha256(path) not in (recorded, written):
            problem = (f"its bytes are not those of the checkpoint {run.folder / RECORD_NAME} names "
                       f"(its weights were changed?)")
    if problem:
        raise ValueError(f"{quote_path(path)} is not the median checkpoint of this study: {problem}; "
                         f"refusing to report it (restore the file, or remove it to have it written again)")
    return seed


def median_checkpoint(out: Path, runs: list[Run], seed: int, log,
                      train_again: bool = True) -> tuple[Path, Path] | None:
    """Where the median seed's checkpoint comes from and where it goes, as (source, target):
    out/adaptive-lenet-median.npz, or a new name if that file holds another (see
    `_new_median_name`). Nothing is copied here: `write_median` does that once the report
    is written. If the run folder was kept without its checkpoint, a median file already
    there from that same run is kept (source = target); otherwise the run is trained again
    elsewhere and must give the same metrics to the last digit. None: nothing to write."""
    from ..checkpoint import read_meta

    run = next(r for r in runs if r.name == f"adaptive-lenet-seed{seed}")
    target = out / MEDIAN_NAME
    source = run.folder / CHECKPOINT_NAME
    kept = read_metrics(run.folder / "metrics.csv")
    if not source.exists() and target.exists():
        meta = read_meta(target)
        if meta.get("config", {}).get("seed") == seed and _same_metrics(meta.get("metrics", []), kept):
            return target, target
    if not source.exists() and not train_again:
        log(f"  {run.name} has no checkpoint and --report-only trains nothing: {target} not updated")
        return None
    if not source.exists():
        again = Run(run.name, replace(run.config, out=str(out / "median-retrain")))
        log(f"  {run.name} has no checkpoint: training it again to {again.folder} (same settings)")
        run_all([again], jobs=1, log=log)
        if not _same_metrics(kept, read_metrics(again.folder / "metrics.csv")):
            raise RuntimeError(f"retraining {run.name} gave other metrics than {run.folder / 'metrics.csv'}; "
                               f"this machine's float32 arithmetic differs from the one that trained it (another CPU, BLAS "
                               f"or NumPy, or a change in the code), so every run must be trained again here")
        source = again.folder / CHECKPOINT_NAME
    return source, _new_median_name(target, source, seed, log)


def _median_written(out: Path) -> str | None:
    """The digest of the median file the last report in `out` wrote (None if none is known)."""
    try:
        return read_summary(out / "results.json").get("median_file_sha256")
    except (SummaryError, OSError):
        return None


def write_median(source: Path, target: Path) -> None:
    """Copy the median's checkpoint (atomically; a file already at `target` is never written
    over) and take away the folder of a run trained again for it."""
    if not target.exists():
        with atomic_write(target, "wb", durable=True) as f, open(source, "rb") as copy_from:
            shutil.copyfileobj(copy_from, f)
    if source.parent.name == "median-retrain":
        shutil.rmtree(source.parent)


def _new_median_name(target: Path, source: Path, seed: int, log) -> Path:
    """Where the median's checkpoint goes: `target`, unless a file is there already with
    other bytes (a committed median is never written over): then a new file named after
    the seed and the first digits of its content's SHA-256."""
    import hashlib

    if not target.exists() or target.read_bytes() == source.read_bytes():
        return target
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:8]
    new = target.with_name(f"{target.stem}-seed{seed}-{digest}.npz")
    log(f"  {target} is kept (a file already there is never written over); the median of this report, "
        f"seed {seed}, is in {new}")
    return new


def reproduce(out: str | Path, seeds: int = 10, epochs: int = 10, jobs: int = 1, data_dir: str | None = None,
              limit_train: int | None = None, limit_test: int | None = None, models=STUDY_MODELS,
              lenet_seeds: int = 10, report_only: bool = False,
                 print_commands: bool = False, log=print) -> dict:
    """Train every missing run (unless report_only), then write results.json, results.md,
    accuracy.png and the median seed's checkpoint into `out` (adaptive-lenet-median.npz, or a
    new name if that file holds another: see `_new_median_name`)."""
    out = Path(out)
    runs = plan(out, seeds, lenet_seeds, epochs, data_dir, limit_train, limit_test, models)
    if print_commands:  # for a job array: one independent command per unfinished run
        return {"commands": [log(line) or line for line in run_commands(runs)]}
    out.mkdir(parents=True, exist_ok=True)
    wall = 0.0 if report_only else run_all(runs, jobs, log=log)
    summary = summarize(out, seeds, epochs, lenet_seeds, models, limit_train, limit_test, data_dir)
    check_report_may_replace(out, summary, [run.name for run in runs])
    summary["wall_seconds_this_call"] = wall
    command = f"python -m ack_numpy reproduce --seeds {seeds} --lenet-seeds {lenet_seeds} --epochs {epochs} " \
              f"--jobs {jobs} --out {out}" + (f" --limit-train {limit_train}" if limit_train else "") + \
              (f" --limit-test {limit_test}" if limit_test else "")
    summary["command"] = command
    best = median_seed(summary, "adaptive-lenet") if "adaptive-lenet" in summary["models"] else None
    summary["median_checkpoint_seed"] = best
    # Everything that can refuse comes before anything is written: a corrupt median file
    # already there fails here and leaves the folder as it was.
    check_report_outputs(out, ["results.json", "results.md", "accuracy.png"])
    fixed_seed = _file_seed(out / MEDIAN_NAME, runs, written=_median_written(out))
    median = None if best is None else median_checkpoint(out, runs, best, log, train_again=not report_only)
    median_file = None if median is None else median[1]
    if median is not None and not median[1].exists():
        check_report_outputs(out, [median[1].name])
    summary["median_checkpoint_file"] = None if median_file is None else median_file.name
    summary["median_checkpoint_file_seed"] = best if median_file == out / MEDIAN_NAME else fixed_seed
    fixed = out / MEDIAN_NAME  # the digest of what that file holds once this report is written
    summary["median_file_sha256"] = (sha256(median[0]) if median is not None and median[1] == fixed
                                     else sha256(fixed) if fixed.exists() else None)
    with atomic_write(out / "results.json", "w") as f:
        f.write(summary_text(summary))
    write_markdown(summary, out / "results.md", command)
    plot_accuracy(summary, out / "accuracy.png")
    if median is not None:
        write_median(*median)
    log(f"wrote {out / 'results.md'}, {out / 'results.json'}, {out / 'accuracy.png'}"
        + ("" if median_file is None else f"; the median seed {best} is {median_file}"))
    return summary

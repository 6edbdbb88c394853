"""The learning-rate selection and the ablation plan, without training: what is chosen,
how it flows into the plan, and which runs are reused."""
from pathlib import Path

import pytest

from ack_numpy.lab import ablation, lrselect
from ack_numpy.lab.records import summary_text
from ack_numpy.lab.variants import BUDGET, parameters, plain_candidates, quadratic_controls


def test_every_candidate_and_control_fits_the_budget():
    for label, (model, options) in {**plain_candidates(), **quadratic_controls()}.items():
        assert parameters(model, options) <= BUDGET, label
    assert BUDGET == 6514 and parameters(*quadratic_controls()["full-q"]) == BUDGET


def test_the_best_rate_wins_and_a_tie_goes_to_the_smaller():
    assert lrselect.choose({1e-3: 0.98, 3e-3: 0.99, 1e-2: 0.97}) == 3e-3
    assert lrselect.choose({1e-3: 0.99, 3e-3: 0.99, 1e-2: 0.97}) == 1e-3


def test_a_best_rate_at_an_edge_is_checked_one_step_beyond_it():
    assert lrselect.beyond_edge({1e-3: 0.97, 3e-3: 0.98, 1e-2: 0.99}) == [3e-2]
    assert lrselect.beyond_edge({1e-3: 0.99, 3e-3: 0.98, 1e-2: 0.97}) == [3e-4]
    assert lrselect.beyond_edge({1e-3: 0.97, 3e-3: 0.99, 1e-2: 0.98}) == []  # inside the grid
    assert lrselect.beyond_edge({3e-3: 0.98, 1e-2: 0.99}) == []             # the grid is not all in yet
    # Only an edge that is strictly best calls for a step beyond, at either end.
    assert lrselect.beyond_edge({1e-3: 0.99, 3e-3: 0.99, 1e-2: 0.98}) == []
    assert lrselect.beyond_edge({1e-3: 0.98, 3e-3: 0.99, 1e-2: 0.99}) == []
    plan = lrselect.selection_plan(Path("out"), finals={"diagonal-q": {1e-3: 0.97, 3e-3: 0.98, 1e-2: 0.99},
                                                       "lenet": {1e-3: 0.99, 3e-3: 0.98}})
    names = [run.name for run in plan]
    assert "diagonal-q-lr0.03" in names and not any(name.startswith("lenet-lr0.0003") for name in names)
    assert len(names) == len(lrselect.selection_arms()) * len(lrselect.LR_GRID) + 1


def test_the_choice_waits_for_the_step_beyond_and_may_move_to_it(tmp_path):
    def summary(finals: dict[float, float]) -> dict:
        runs = [lrselect.Run(lrselect.run_name("diagonal-q", lr), lrselect.TrainConfig(lr=lr, out=str(tmp_path)))
                for lr in finals]
        rows = {lrselect.run_name("diagonal-q", lr): [{"test_acc": acc}] for lr, acc in finals.items()}
        return lrselect.selection_summary(runs, lambda run: rows[run.name])

    grid = {1e-3: 0.97, 3e-3: 0.98, 1e-2: 0.99}
    waiting = summary(grid)
    assert waiting["arms"]["diagonal-q"]["chosen_lr"] is None and waiting["missing"] == ["diagonal-q-lr0.03"]
    assert waiting["arms"]["diagonal-q"]["grid_lr"] == 1e-2
    moved = summary({**grid, 3e-2: 0.995})["arms"]["diagonal-q"]
    assert (moved["grid_lr"], moved["chosen_lr"], moved["chosen_holdout_acc"]) == (1e-2, 3e-2, 0.995)
    stayed = summary({**grid, 3e-2: 0.10})["arms"]["diagonal-q"]
    assert stayed["chosen_lr"] == 1e-2
    tied = summary({**grid, 3e-2: 0.99})["arms"]["diagonal-q"]  # the step beyond must be strictly better
    assert tied["chosen_lr"] == 1e-2
    below = summary({1e-3: 0.99, 3e-3: 0.98, 1e-2: 0.97, 3e-4: 0.99})["arms"]["diagonal-q"]
    assert below["chosen_lr"] == 1e-3


def test_the_selection_trains_the_grid_then_the_steps_it_calls_for(tmp_path, monkeypatch):
    # Training and verification are stood in for: each "run" writes the metrics a table gives it.
    from ack_numpy.lab import records, runner
    from ack_numpy.train import write_metrics

    accuracy = {1e-3: 0.97, 3e-3: 0.98, 1e-2: 0.99, 3e-2: 0.995}  # every model: best at the top edge, and beyond
    waves = []

    def run_all(runs, jobs, log=print):
        todo = [run for run in runs if not runner.is_finished(run)]
        waves.append(sorted({run.config.lr for run in todo}))
        for run in todo:
            run.folder.mkdir(parents=True)
            rows = [{"epoch": e + 1, "train_loss": 0.1, "train_acc": 0.9, "test_loss": 0.1,
                     "test_acc": accuracy[run.config.lr], "seconds": 1.0, "lr": run.config.lr}
                    for e in range(run.config.epochs)]
            write_metrics(run.folder / "metrics.csv", rows)
        return 1.0

    monkeypatch.setattr(runner, "run_all", run_all)
    monkeypatch.setattr(records, "verified_rows", lambda run: runner.rows_of(run) if runner.is_finished(run) else None)
    first = lrselect.lr_selection(tmp_path, epochs=2, print_commands=True, log=lambda line: None)["commands"]
    assert len(first) == len(lrselect.selection_arms()) * len(lrselect.LR_GRID)  # no step beyond known yet
    summary = lrselect.lr_selection(tmp_path, epochs=2, log=lambda line: None)
    assert waves == [list(lrselect.LR_GRID), [3e-2]]
    assert all(arm["chosen_lr"] == 3e-2 and arm["grid_lr"] == 1e-2 for arm in summary["arms"].values())
    assert summary["missing"] == []
    report = (tmp_path / "results.md").read_text()
    assert "| lr 0.0003 | lr 0.001 | lr 0.003 | lr 0.01 | lr 0.03 |" in report
    assert "The step beyond the edge changed the choice of: adaptive-lenet (0.01 to 0.03)" in report
    assert "Best one step beyond the grid, so a still better rate may lie further" in report


def selection(best="plain-relu", adaptive_lr=3e-3, plain_lr=1e-2) -> dict:
    arms = {label: {"chosen_lr": plain_lr} for label in plain_candidates()}
    arms["adaptive-lenet"] = {"chosen_lr": adaptive_lr}
    return {"arms": arms, "best_plain": best, "missing": ["lenet-lr0.01"], "command": "c"}


def test_the_plan_follows_the_selection_record_and_trains_the_pair_first():
    runs = ablation.ablation_plan(Path("out"), selection(), seeds=2)
    names = [r.name for r in runs]
    assert names[:4] == ["adaptive-lenet-seed0", "adaptive-lenet-seed1", "plain-relu-seed0", "plain-relu-seed1"]
    assert names[4:9] == ["diagonal-q-seed0", "rank1-q-seed0", "rank2-q-seed0", "quadratic-act-seed0",
                          "plain-tanh-seed0"]  # the same tanh first layer, at its own rate
    lr = {r.name: r.config.lr for r in runs}
    assert lr["plain-relu-seed0"] == 1e-2 and lr["rank1-q-seed1"] == 3e-3 == lr["adaptive-lenet-seed0"]
    assert lr["plain-tanh-seed1"] == 1e-2 and len(names) == 2 * 7
    as_best = [r.name for r in ablation.ablation_plan(Path("out"), selection(best="plain-tanh"), seeds=1)]
    assert as_best.count("plain-tanh-seed0") == 1 and len(as_best) == 6  # the best plain model already


def test_runs_with_the_reproductions_settings_are_reused(tmp_path):
    reuse = tmp_path / "reproduction"
    for name in ("adaptive-lenet-seed0", "plain-small-seed0"):
        (reuse / "runs" / name).mkdir(parents=True)
    runs = {r.name: r for r in ablation.ablation_plan(tmp_path / "abl", selection(best="plain-tanh", plain_lr=3e-3),
                                                      seeds=2, reuse=reuse)}
    assert runs["adaptive-lenet-seed0"].folder == reuse / "runs" / "adaptive-lenet-seed0"
    assert runs["plain-tanh-seed0"].folder == reuse / "runs" / "plain-small-seed0"   # plain-tanh is plain-small
    assert runs["adaptive-lenet-seed1"].folder == tmp_path / "abl" / "runs" / "adaptive-lenet-seed1"  # none to reuse
    other_rate = ablation.ablation_plan(tmp_path / "abl", selection(adaptive_lr=1e-2), seeds=1, reuse=reuse)
    assert other_rate[0].folder == tmp_path / "abl" / "runs" / "adaptive-lenet-seed0"


def test_an_unfinished_selection_is_refused_in_one_line(tmp_path):
    with pytest.raises(ablation.SelectionMissing, match="run `python -m ack_numpy study lr-selection"):
        ablation.load_selection(tmp_path)
    (tmp_path / "results.json").write_text(summary_text({**selection(), "best_plain": None}))
    with pytest.raises(ablation.SelectionMissing, match="has not chosen"):
        ablation.load_selection(tmp_path)
    waiting = selection()  # a control still waits for its step beyond the grid's edge: never a fallback rate
    waiting["arms"]["diagonal-q"] = {"grid_lr": 1e-2, "chosen_lr": None}
    (tmp_path / "results.json").write_text(summary_text(waiting))
    with pytest.raises(ablation.SelectionMissing, match="has not chosen"):
        ablation.load_selection(tmp_path)
    waiting["arms"]["diagonal-q"]["chosen_lr"] = 3e-2
    (tmp_path / "results.json").write_text(summary_text(waiting))
    assert ablation.ablation_arms(ablation.load_selection(tmp_path))["diagonal-q"][2] == 3e-2


def test_a_comparison_also_compares_the_generalisation_gaps():
    a = {"final_test_acc_per_seed": {"0": 0.99, "1": 0.991}, "gap_per_seed": {"0": 0.010, "1": 0.012},
         "test_loss_per_seed": {"0": 0.03, "1": 0.03}}
    b = {"final_test_acc_per_seed": {"0": 0.989, "1": 0.990}, "gap_per_seed": {"0": 0.020, "1": 0.024},
         "test_loss_per_seed": {"0": 0.04, "1": 0.04}}
    gap = ablation.compare_arms(a, b, "adaptive-lenet", "plain-5x5", records={})["gap"]
    assert gap["difference"] == pytest.approx(-0.011) and gap["p"] == pytest.approx(1 / 3)
    assert gap["welch_ci95"][0] < -0.011 < gap["welch_ci95"][1] and gap["test_loss_difference"] == pytest.approx(-0.01)


def test_a_control_with_a_rate_of_its_own_trains_in_folders_named_by_it():
    chosen = selection()
    chosen["arms"]["diagonal-q"] = {"chosen_lr": 1e-2}
    chosen["arms"]["rank1-q"] = {"chosen_lr": 3e-3}  # the same as adaptive-lenet's: its old folders stand
    runs = {r.name: r for r in ablation.ablation_plan(Path("out"), chosen, seeds=1)}
    assert runs["diagonal-q-lr0.01-seed0"].config.lr == 1e-2
    assert runs["rank1-q-seed0"].config.lr == 3e-3 and runs["rank2-q-seed0"].config.lr == 3e-3

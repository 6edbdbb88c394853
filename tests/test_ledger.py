"""The claims ledger writes its table from the records, and nothing of the README outside its section."""
import json
from pathlib import Path

from ack_numpy.lab.ledger import BEGIN, END, write_ledger
from ack_numpy.lab.records import summary_text


def test_the_ledger_replaces_only_its_section_and_says_what_is_missing(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\nbefore\n\n{BEGIN} (old) -->\nold text\n{END}\n\nafter\n")
    data = tmp_path / "data"
    (data / "compute").mkdir(parents=True)
    models = {name: {"activations": a, "multiply_adds": m, "peak_bytes": b, "step_seconds": t, "stored_parameters": p}
              for name, a, m, b, t, p in (("adaptive-lenet", 6704, 797152, 19e6, 0.17, 6514),
                                          ("lenet", 500, 2293000, 30e6, 0.33, 431080))}
    (data / "compute" / "results.json").write_text(summary_text({"models": models, "command": "cmd",
                                                                 "load_before": "1.00 1.00 1.00"}))
    write_ledger(readme, data, log=lambda m: None)
    text = readme.read_text()
    assert text.startswith("# Title\n\nbefore\n\n") and text.endswith(f"{END}\n\nafter\n") and "old text" not in text
    assert ("| fewer activation-function computations (than LeNet) | **does not hold** | 6,704 per image against "
            "LeNet's 500") in text
    assert "| less memory | **holds against LeNet** |" in text  # no selection record: no equal-budget model named
    assert "| less training time (than LeNet) | **holds** |" in text
    assert "CIFAR-10" in text and "not testable here" in text
    assert (data / "claims" / "results.md").read_text().count("| claim (paper) |") == 1


def test_half_the_epochs_comes_from_the_fair_test_once_it_is_complete():
    from ack_numpy.lab.ledger import epochs_row

    ratio = {"images": {"ratio": 0.45, "ci95": [0.3, 0.7]}, "seconds": {"ratio": 0.2, "ci95": [0.1, 0.3]}}
    tta = {"verdict": {"verdict": "HOLDS", "why": "w"}, "best_plain": "plain-5x5", "seeds": 5, "command": "cmd",
           "comparisons": {"lenet": {"99.0%": ratio}, "plain-5x5": {"99.0%": {"ratio": None, "why": "never"}}}}
    claim, verdict, number, source = epochs_row(tta)
    assert verdict == "holds" and "against lenet 0.45 (0.30-0.70) to 99.0%" in number
    assert "plain-5x5" not in number and source.startswith("cmd; [data/time-to-accuracy/results.md]")


def test_generalisation_is_the_loss_gap_against_the_best_plain_model():
    from ack_numpy.lab.ledger import generalisation_row

    selection = {"best_plain": "plain-5x5"}
    gap = {"difference": -0.01, "welch_ci95": [-0.02, -0.005], "p": 0.01, "test_loss_difference": -0.002}
    ablation = {"command": "cmd", "comparisons": {"adaptive-lenet - plain-5x5": {"seeds": [10, 10], "gap": gap}}}
    assert generalisation_row(ablation, selection)[1] == "holds"
    gap["test_loss_difference"] = 0.001  # a smaller gap from fitting the training images worse
    assert generalisation_row(ablation, selection)[1] == "not shown"
    gap.update(welch_ci95=[-0.02, 0.01], p=0.3)
    assert generalisation_row(ablation, selection)[1] == "not shown"
    assert generalisation_row(None, selection)[1] == "not shown"


def test_training_time_is_judged_to_an_accuracy_once_the_fair_test_is_complete():
    from ack_numpy.lab.ledger import training_time_row

    compute = {"command": "cc", "load_before": "1", "models": {"adaptive-lenet": {"step_seconds": 0.015},
                                                               "lenet": {"step_seconds": 0.035}}}
    assert training_time_row(compute, None)[1] == "holds"  # per epoch only
    seconds = {"ratio": 1.02, "ci95": [0.89, 1.17]}
    tta = {"command": "tc", "comparisons": {"lenet": {"99.0%": {"seconds": seconds, "images": {"ratio": 2.4}}}}}
    claim, verdict, number, source = training_time_row(compute, tta)
    assert verdict == "not shown" and "one thread: 1.02x (95% Welch 0.89 to 1.17)" in number
    assert "2.40x the images; the intervals hold" in number
    tta["comparisons"]["lenet"]["99.8% of plateau"] = {"seconds": {"ratio": 0.9, "ci95": [0.7, 1.1]}}
    assert training_time_row(compute, tta)[1] == "not shown"  # no other target settles it either
    # Faster to a lower target: the verdict at 99.0% stays, and says the picture is mixed.
    tta["comparisons"]["lenet"]["98.5%"] = {"seconds": {"ratio": 0.74, "ci95": [0.65, 0.85]}}
    claim, verdict, number, source = training_time_row(compute, tta)
    assert verdict == "not shown (mixed)" and "to 98.5%: 0.74x (0.65 to 0.85)" in number
    seconds["ci95"] = [1.05, 1.3]
    assert training_time_row(compute, tta)[1] == "does not hold"


def test_memory_and_activations_name_the_model_they_are_compared_with():
    from ack_numpy.lab.ledger import activations_row, memory_row

    def model(activations, peak):
        return {"activations": activations, "peak_bytes": peak, "multiply_adds": 1e6, "stored_parameters": 6000}

    compute = {"command": "cc", "models": {"adaptive-lenet": model(6704, 19e6), "lenet": model(500, 30e6),
                                           "plain-5x5": model(6208, 16e6)}}
    claim, verdict, number, _ = memory_row(compute, "plain-5x5")
    assert verdict == "holds against LeNet, not against plain-5x5" and "plain-5x5: 16.0 MB (1.19x)" in number
    assert memory_row(compute, None)[1] == "holds against LeNet"
    claim, verdict, number, _ = activations_row(compute, "plain-5x5")
    assert claim.endswith("(than LeNet)") and verdict == "does not hold" and "plain-5x5: 6,208 activations" in number


def test_saturation_adds_the_controls_ten_seeds_when_the_ablation_has_them():
    from ack_numpy.lab.ledger import saturation_row

    selection = {"command": "sc", "arms": {"adaptive-lenet": {"chosen_lr": 3e-3, "saturated": {"0.003": 0.08}},
                                           "plain-tanh": {"chosen_lr": 1e-2, "saturated": {"0.01": 0.009}}}}
    claim, verdict, number, source = saturation_row(selection)
    assert verdict == "not shown" and "it leans the other way" in number and "controls" not in number
    ablation = {"command": "ac", "arms": {"adaptive-lenet": {"saturated_per_seed": {"0": 0.05, "1": 0.06}},
                                          "diagonal-q": {"saturated_per_seed": {"0": 0.03, "1": 0.04}},
                                          "quadratic-act": {"saturated_per_seed": {"0": 0.0, "1": 0.0}}}}
    claim, verdict, number, source = saturation_row(selection, ablation)
    assert "2 seeds each: adaptive-lenet 5.50%, the quadratic controls 0.00% to 3.50%" in number
    assert source.endswith("[data/ablation/results.md](data/ablation/results.md)") and verdict == "not shown"
    # plain-tanh, the same tanh layer with an ordinary kernel, at its own rate in the ablation: a test
    ablation["arms"]["plain-tanh"] = {"saturated_per_seed": {"0": 0.008, "1": 0.010, "2": 0.009}}
    ablation["arms"]["adaptive-lenet"]["saturated_per_seed"]["2"] = 0.055
    claim, verdict, number, source = saturation_row(selection, ablation)
    assert verdict == "does not hold" and "adaptive-lenet 5.50%, plain-tanh" in number and "3 and 3 seeds" in number
    assert source == "ac; [data/ablation/results.md](data/ablation/results.md)"
    for per_seed in ablation["arms"]["plain-tanh"]["saturated_per_seed"], ablation["arms"]["adaptive-lenet"]["saturated_per_seed"]:
        per_seed.update({"0": 0.2, "1": 0.01})  # the same spread in both: no difference shown
    assert saturation_row(selection, ablation)[1] == "not shown"


def test_lenet_itself_is_compared_with_its_per_image_tests(tmp_path):
    from ack_numpy.lab.ledger import rows

    c = {"difference": -0.0018, "welch_ci95": [-0.0030, -0.0006], "p": 0.006, "n": [10, 3],
         "mcnemar_per_seed": [{"seed": s, "a_only": 30, "b_only": 48, "p": p} for s, p in enumerate((0.04, 0.2, 0.01))]}
    (tmp_path / "reproduction").mkdir()
    (tmp_path / "reproduction" / "results.json").write_text(summary_text(
        {"command": "rc", "models": {}, "comparisons": {"adaptive-lenet - lenet": c}}))
    row = next(r for r in rows(tmp_path) if "against LeNet itself" in r[0])
    assert row[1] == "LeNet ahead"
    assert row[2] == ("-0.18 points (95% Welch -0.30 to -0.06; permutation p = 0.006, exact, two-sided), 10 and 3 "
                      "seeds; McNemar p < 0.05 in 2 of 3 seed pairs (uncorrected: about 0.2 expected by chance)")
    c.update(welch_ci95=[-0.003, 0.001], p=0.3)
    (tmp_path / "reproduction" / "results.json").write_text(summary_text(
        {"command": "rc", "models": {}, "comparisons": {"adaptive-lenet - lenet": c}}))
    assert next(r for r in rows(tmp_path) if "against LeNet itself" in r[0])[1] == "no difference shown"


def test_xor_comes_from_the_committed_notebooks_outputs(tmp_path):
    from ack_numpy.lab.ledger import XOR_TUTORIAL, xor_row

    claim, verdict, number, source = xor_row(Path(__file__).resolve().parents[1])
    assert verdict == "holds (a demonstration)" and "one adaptive unit" in number and "100.0%" in number
    assert source.endswith("[tutorials/06_xor_and_dynamic_filters.ipynb](tutorials/06_xor_and_dynamic_filters.ipynb)")
    lines = ["linear unit    3 parameters: final loss 0.9, training accuracy 75.0% (200 points)\n",
             "adaptive unit  7 parameters: final loss 0.9, training accuracy 98.0% (200 points)\n"]
    notebook = tmp_path / XOR_TUTORIAL.with_suffix(".ipynb")
    notebook.parent.mkdir()
    notebook.write_text(json.dumps({"cells": [{"outputs": [{"name": "stdout", "text": lines}]}]}))
    assert xor_row(tmp_path)[1] == "not shown"  # the adaptive unit did not get every point
    notebook.write_text(json.dumps({"cells": [{"outputs": []}]}))
    assert xor_row(tmp_path)[2].endswith("holds no outputs of the two units")


def test_the_committed_ledger_is_what_the_records_say():
    """README's results section and data/claims/results.md hold exactly the table that
    `study ledger` writes from the committed records today: no stale or hand-edited row."""
    from ack_numpy.lab.ledger import ledger_text

    root = Path(__file__).resolve().parents[1]
    table = ledger_text(root / "data")
    readme = (root / "README.md").read_text()
    assert "\n" + table + "\n" + END in readme, "README's ledger is stale: run python -m ack_numpy study ledger --out README.md"
    assert table in (root / "data" / "claims" / "results.md").read_text()

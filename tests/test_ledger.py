"""The claims ledger writes its table from the records, and nothing of the README outside its section."""
import json

from ack_numpy.lab.ledger import BEGIN, END, write_ledger


def test_the_ledger_replaces_only_its_section_and_says_what_is_missing(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\nbefore\n\n{BEGIN} (old) -->\nold text\n{END}\n\nafter\n")
    data = tmp_path / "data"
    (data / "compute").mkdir(parents=True)
    models = {name: {"activations": a, "multiply_adds": m, "peak_bytes": b, "step_seconds": t, "stored_parameters": p}
              for name, a, m, b, t, p in (("adaptive-lenet", 6704, 797152, 19e6, 0.17, 6514),
                                          ("lenet", 500, 2293000, 30e6, 0.33, 431080))}
    (data / "compute" / "results.json").write_text(json.dumps({"models": models, "command": "cmd",
                                                                 "load_before": "1.00 1.00 1.00"}))
    write_ledger(readme, data, log=lambda m: None)
    text = readme.read_text()
    assert text.startswith("# Title\n\nbefore\n\n") and text.endswith(f"{END}\n\nafter\n") and "old text" not in text
    assert "| fewer activation-function computations | **does not hold** | 6,704 per image against LeNet's 500" in text
    assert "| less training time | **holds** |" in text
    assert "CIFAR-10" in text and "not testable here" in text
    assert (data / "claims" / "results.md").read_text().count("| claim (paper) |") == 1

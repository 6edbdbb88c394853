"""The committed notebooks match their tutorials, show their outputs, and are valid nbformat 4.

tutorials/make_notebooks.py writes tutorials/NN_name.ipynb from tutorials/NN_name.py with
the outputs of a full run. Here, for every tutorial:
- its notebook's cells are the script's cells (type and source), in order;
- every code cell that prints has printed text under it, every cell that saves a figure
  (`save(fig, ...)`) has a PNG under it, and no cell ends in an error;
- the JSON has what the nbformat 4.5 schema requires (top-level keys, cell types and their
  keys, unique cell ids, the shape of each output): `schema_problems` below, written from
  the schema (nbformat/v4/nbformat.v4.5.schema.json) since nbformat is not a dependency.
Each check is a function that returns the problems it finds, and each is shown to find the
problem in a tampered copy. The generator itself is run on a small tutorial made here.

No tutorial imports `ack_numpy.lab` (the instruments) or touches the memory allocator.
"""
from __future__ import annotations

import ast
import base64
import copy
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "tutorials"
SCRIPTS = sorted(TUTORIALS.glob("[0-9][0-9]_*.py"))
GENERATOR = TUTORIALS / "make_notebooks.py"

_spec = importlib.util.spec_from_file_location("make_notebooks", GENERATOR)
make_notebooks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_notebooks)

ID_PATTERN = re.compile(r"^[a-zA-Z0-9-_]+$")
CELL_KEYS = {  # required keys, then the keys allowed (the schema's additionalProperties: false)
    "markdown": ({"id", "cell_type", "metadata", "source"}, {"attachments"}),
    "raw": ({"id", "cell_type", "metadata", "source"}, {"attachments"}),
    "code": ({"id", "cell_type", "metadata", "source", "outputs", "execution_count"}, set()),
}
OUTPUT_KEYS = {
    "stream": {"output_type", "name", "text"},
    "display_data": {"output_type", "data", "metadata"},
    "execute_result": {"output_type", "data", "metadata", "execution_count"},
    "error": {"output_type", "ename", "evalue", "traceback"},
}


def load(script: Path) -> dict:
    return json.loads(script.with_suffix(".ipynb").read_text(encoding="utf-8"))


def text(value) -> str:
    """A multiline string as nbformat stores it (a string or a list of strings), joined."""
    return value if isinstance(value, str) else "".join(value)


def is_multiline(value) -> bool:
    return isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))


def is_count(value) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0)


# ---------------------------------------------------------------------------------------
# The checks: each returns a list of problems (empty: none)
# ---------------------------------------------------------------------------------------

def schema_problems(nb) -> list[str]:
    """What nbformat 4.5 requires of the JSON, from its schema."""
    if not isinstance(nb, dict):
        return ["the notebook is not a JSON object"]
    problems = []
    required = {"metadata", "nbformat_minor", "nbformat", "cells"}
    if set(nb) != required:
        problems.append(f"top-level keys must be {sorted(required)}, got {sorted(nb)}")
    if nb.get("nbformat") != 4:
        problems.append(f"nbformat must be 4, got {nb.get('nbformat')!r}")
    minor = nb.get("nbformat_minor")
    if not (isinstance(minor, int) and minor >= 5):
        problems.append(f"nbformat_minor must be an integer >= 5 (cell ids), got {minor!r}")
    metadata = nb.get("metadata")
    if not isinstance(metadata, dict):
        problems.append("metadata must be an object")
    else:
        kernelspec = metadata.get("kernelspec", {})
        if not (isinstance(kernelspec, dict) and {"name", "display_name"} <= set(kernelspec)):
            problems.append("metadata.kernelspec needs name and display_name")
        if "language_info" in metadata and "name" not in metadata["language_info"]:
            problems.append("metadata.language_info needs name")
    cells = nb.get("cells")
    if not isinstance(cells, list):
        return problems + ["cells must be a list"]
    ids = set()
    for number, cell in enumerate(cells, start=1):
        where = f"cell {number}"
        kind = cell.get("cell_type") if isinstance(cell, dict) else None
        if kind not in CELL_KEYS:
            problems.append(f"{where}: cell_type must be markdown, code or raw, got {kind!r}")
            continue
        needed, optional = CELL_KEYS[kind]
        if not needed <= set(cell) <= needed | optional:
            problems.append(f"{where}: a {kind} cell has the keys {sorted(needed)}, got {sorted(cell)}")
        ident = cell.get("id")
        if not (isinstance(ident, str) and 1 <= len(ident) <= 64 and ID_PATTERN.match(ident)):
            problems.append(f"{where}: id must be 1-64 letters, digits, '-' or '_', got {ident!r}")
        elif ident in ids:
            problems.append(f"{where}: id {ident!r} is not unique")
        ids.add(ident)
        if not isinstance(cell.get("metadata"), dict):
            problems.append(f"{where}: metadata must be an object")
        if not is_multiline(cell.get("source")):
            problems.append(f"{where}: source must be a string or a list of strings")
        if kind == "code":
            if not is_count(cell.get("execution_count")):
                problems.append(f"{where}: execution_count must be an integer >= 0 or null")
            outputs = cell.get("outputs")
            if not isinstance(outputs, list):
                problems.append(f"{where}: outputs must be a list")
                continue
            problems += [f"{where}, output {k}: {p}" for k, output in enumerate(outputs, start=1)
                         for p in output_problems(output)]
    return problems


def output_problems(output) -> list[str]:
    kind = output.get("output_type") if isinstance(output, dict) else None
    if kind not in OUTPUT_KEYS:
        return [f"output_type must be one of {sorted(OUTPUT_KEYS)}, got {kind!r}"]
    if set(output) != OUTPUT_KEYS[kind]:
        return [f"a {kind} output has the keys {sorted(OUTPUT_KEYS[kind])}, got {sorted(output)}"]
    problems = []
    if kind == "stream":
        if output["name"] not in ("stdout", "stderr"):
            problems.append(f"stream name must be stdout or stderr, got {output['name']!r}")
        if not is_multiline(output["text"]):
            problems.append("stream text must be a string or a list of strings")
    if kind in ("display_data", "execute_result"):
        data = output["data"]
        if not (isinstance(data, dict) and all(is_multiline(v) for k, v in data.items() if not k.endswith("json"))):
            problems.append("data must map each mimetype to a string or a list of strings")
        if not isinstance(output["metadata"], dict):
            problems.append("metadata must be an object")
    if kind == "execute_result" and not is_count(output["execution_count"]):
        problems.append("execution_count must be an integer >= 0 or null")
    return problems


def cell_problems(nb: dict, script: Path) -> list[str]:
    """The notebook's cells must be the script's cells: same types, same sources, same order."""
    expected = [(c["cell_type"], c["source"]) for c in make_notebooks.read_cells(script)]
    got = [(c["cell_type"], text(c["source"])) for c in nb["cells"]]
    if len(got) != len(expected):
        return [f"{len(got)} cells, the script has {len(expected)}: regenerate with "
                f"`python tutorials/make_notebooks.py {script.name[:2]}`"]
    return [f"cell {k} differs from the script's: regenerate with `python tutorials/make_notebooks.py "
            f"{script.name[:2]}`" for k, (g, e) in enumerate(zip(got, expected), start=1) if g != e]


def called_names(source: str) -> set[str]:
    """The names of the functions a cell calls directly (`print(...)`, `save(...)`)."""
    return {node.func.id for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}


def output_problems_of_cells(nb: dict) -> list[str]:
    """A cell that prints has text under it, a cell that saves a figure has a PNG, none failed."""
    problems = []
    for number, cell in enumerate(nb["cells"], start=1):
        if cell["cell_type"] != "code":
            continue
        kinds = {o["output_type"] for o in cell["outputs"]}
        calls = called_names(text(cell["source"]))
        if "print" in calls and "stream" not in kinds:
            problems.append(f"cell {number} prints but has no printed output")
        if "save" in calls and "display_data" not in kinds:
            problems.append(f"cell {number} saves a figure but shows none")
        if "error" in kinds:
            problems.append(f"cell {number} ended in an error")
        for output in cell["outputs"]:
            png = output.get("data", {}).get("image/png") if output["output_type"] == "display_data" else None
            if png is not None and not base64.b64decode(text(png))[:8] == b"\x89PNG\r\n\x1a\n":
                problems.append(f"cell {number}: its image/png is not a PNG")
        if cell["outputs"] and cell["execution_count"] is None:
            problems.append(f"cell {number} has outputs but no execution_count")
    return problems


def lab_problems(source: str, name: str) -> list[str]:
    """Imports of ack_numpy.lab and any use of the allocator in one Python file of tutorials/."""
    problems = []
    for node in ast.walk(ast.parse(source, name)):
        modules = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        problems += [f"{name}, line {node.lineno}: imports {m}" for m in modules
                     if m == "ack_numpy.lab" or m.startswith("ack_numpy.lab.")]
        word = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
        if "allocator" in word or word in ("keep_freed_memory", "mallopt"):
            problems.append(f"{name}, line {node.lineno}: uses {word}")
    return problems


# ---------------------------------------------------------------------------------------
# The committed notebooks
# ---------------------------------------------------------------------------------------

def test_every_tutorial_has_a_notebook_and_every_notebook_a_tutorial():
    scripts = {p.stem for p in SCRIPTS}
    notebooks = {p.stem for p in TUTORIALS.glob("*.ipynb")}
    assert scripts == notebooks, ("missing notebooks (run python tutorials/make_notebooks.py): "
                                  f"{sorted(scripts - notebooks)}; notebooks without a tutorial: "
                                  f"{sorted(notebooks - scripts)}")


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_notebook_is_valid_nbformat_4(script):
    assert schema_problems(load(script)) == []


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_notebook_cells_are_the_scripts_cells(script):
    assert cell_problems(load(script), script) == []


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_notebook_shows_what_each_cell_prints_and_draws(script):
    nb = load(script)
    assert output_problems_of_cells(nb) == []
    assert nb["metadata"]["ack_numpy"]["mode"] == "full", "the committed notebooks come from a full-mode run"
    saves = sum(text(c["source"]).count("save(fig") for c in nb["cells"] if c["cell_type"] == "code")
    images = sum(o["output_type"] == "display_data" for c in nb["cells"] for o in c.get("outputs", []))
    assert images >= saves


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_notebook_does_not_name_the_folder_it_was_made_in(script):
    raw = script.with_suffix(".ipynb").read_text(encoding="utf-8")
    assert str(ROOT) not in raw


def test_no_tutorial_imports_the_lab_or_touches_the_allocator():
    files = sorted(TUTORIALS.rglob("*.py"))
    assert len(files) > len(SCRIPTS)  # the tutorials, check.py, one_pixel.py, exercises, solutions
    problems = [p for f in files for p in lab_problems(f.read_text(encoding="utf-8"), str(f.relative_to(ROOT)))]
    assert problems == []


# ---------------------------------------------------------------------------------------
# The checks find what they look for
# ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def good():
    return SCRIPTS[0], load(SCRIPTS[0])


def first_code_cell(nb: dict, calling: str) -> dict:
    return next(c for c in nb["cells"] if c["cell_type"] == "code" and calling in called_names(text(c["source"])))


def test_schema_check_finds_tampering(good):
    _, nb = good
    assert schema_problems(nb) == []
    tampered = []
    for change in (lambda n: n.pop("nbformat"),
                   lambda n: n.update(nbformat_minor=4),
                   lambda n: n.update(extra=1),
                   lambda n: n["cells"][0].update(cell_type="text"),
                   lambda n: n["cells"][0].pop("id"),
                   lambda n: n["cells"][1].update(id=n["cells"][0]["id"]),
                   lambda n: n["cells"][0].update(id="has space"),
                   lambda n: first_code_cell(n, "print").pop("outputs"),
                   lambda n: first_code_cell(n, "print").update(execution_count=-1),
                   lambda n: first_code_cell(n, "print")["outputs"][0].update(output_type="text"),
                   lambda n: first_code_cell(n, "print")["outputs"][0].update(name="stdin"),
                   lambda n: first_code_cell(n, "print")["outputs"][0].pop("text"),
                   lambda n: first_code_cell(n, "save")["outputs"][-1].pop("metadata"),
                   lambda n: first_code_cell(n, "save")["outputs"][-1]["data"].update({"image/png": 7})):
        copy_ = copy.deepcopy(nb)
        change(copy_)
        tampered.append(schema_problems(copy_))
    assert all(tampered), [k for k, problems in enumerate(tampered) if not problems]


def test_cell_check_finds_tampering(good):
    script, nb = good
    edited = copy.deepcopy(nb)
    first_code_cell(edited, "print")["source"].append("\nprint('edited in the notebook')")
    assert cell_problems(edited, script)
    dropped = copy.deepcopy(nb)
    dropped["cells"].pop()
    assert cell_problems(dropped, script)
    swapped = copy.deepcopy(nb)
    swapped["cells"][0]["cell_type"] = "code" if swapped["cells"][0]["cell_type"] == "markdown" else "markdown"
    assert cell_problems(swapped, script)


def test_output_check_finds_tampering(good):
    _, nb = good
    assert output_problems_of_cells(nb) == []
    no_text = copy.deepcopy(nb)
    cell = first_code_cell(no_text, "print")
    cell["outputs"] = [o for o in cell["outputs"] if o["output_type"] != "stream"]
    assert output_problems_of_cells(no_text)
    no_figure = copy.deepcopy(nb)
    cell = first_code_cell(no_figure, "save")
    cell["outputs"] = [o for o in cell["outputs"] if o["output_type"] != "display_data"]
    assert output_problems_of_cells(no_figure)
    not_png = copy.deepcopy(nb)
    next(o for o in first_code_cell(not_png, "save")["outputs"]
         if o["output_type"] == "display_data")["data"]["image/png"] = base64.b64encode(b"GIF89a").decode()
    assert output_problems_of_cells(not_png)


def test_lab_check_finds_imports_and_allocator_calls():
    for source in ("from ack_numpy.lab.reproduce import RECIPE",
                   "import ack_numpy.lab.allocator",
                   "from ack_numpy.lab import reproduce",
                   "from ack_numpy import lab",
                   "import tutorial_setup\ntutorial_setup.keep_freed_memory()",
                   "import ctypes\nctypes.CDLL('libc.so.6').mallopt(-1, 0)"):
        assert lab_problems(source, "t.py"), source
    assert lab_problems("from ack_numpy.train import TrainConfig\nimport ack_numpy.laboratory", "t.py") == []


# ---------------------------------------------------------------------------------------
# The generator
# ---------------------------------------------------------------------------------------

def test_read_cells_of_a_percent_script(tmp_path):
    script = tmp_path / "99_tiny.py"
    script.write_text("# %% [markdown]\n# # Title\n#\n# Some *text*.\n\n"
                      "# %% Setup: the title of a code cell\nimport os\n\n\n"
                      "# %%\nx = 1\n\n# a comment inside\ny = 2\n\n", encoding="utf-8")
    assert make_notebooks.read_cells(script) == [
        {"cell_type": "markdown", "source": "# Title\n\nSome *text*."},
        {"cell_type": "code", "source": "# Setup: the title of a code cell\nimport os"},
        {"cell_type": "code", "source": "x = 1\n\n# a comment inside\ny = 2"},
    ]
    script.write_text("# %% [markdown]\n# text\nnot a comment\n", encoding="utf-8")
    with pytest.raises(make_notebooks.ScriptError, match="line 3"):
        make_notebooks.read_cells(script)


TINY = '''# %% [markdown]
# # A tiny tutorial
#
# It prints, draws and shows a value.

# %%
import matplotlib.pyplot as plt
from tutorial_setup import ROOT, save
print("before the figure", ROOT)

# %%
fig, ax = plt.subplots(figsize=(2, 2))
ax.plot([0, 1], [1, 0])
save(fig, "99_tiny.png")
print("after the figure")

# %%
import sys
print("to stderr", file=sys.stderr)
6 * 7
'''


def run_generator(folder: Path, script: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("ACK_QUICK", "ACK_CHECKPOINT")}
    env.update(ACK_TUTORIAL_OUT=str(folder / "figures"), MPLBACKEND="Agg")
    return subprocess.run([sys.executable, str(GENERATOR), "--execute", str(script),
                           "--notebook", str(script.with_suffix(".ipynb"))],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=120)


def test_generator_records_each_output_under_its_cell_in_order(tmp_path):
    shutil.copy(TUTORIALS / "tutorial_setup.py", tmp_path)  # it finds this checkout's package
    script = tmp_path / "99_tiny.py"
    script.write_text(TINY, encoding="utf-8")
    done = run_generator(tmp_path, script)
    assert done.returncode == 0, done.stderr
    nb = json.loads(script.with_suffix(".ipynb").read_text(encoding="utf-8"))
    assert schema_problems(nb) == [] and cell_problems(nb, script) == [] and output_problems_of_cells(nb) == []
    _, setup, draw, value = nb["cells"]
    assert [text(o["text"]) for o in setup["outputs"]] == ["before the figure ...\n"]  # the folder is '...'
    assert [o["output_type"] for o in draw["outputs"]] == ["stream", "display_data", "stream"]
    assert text(draw["outputs"][0]["text"]).startswith("saved ")
    assert text(draw["outputs"][2]["text"]) == "after the figure\n"
    png = base64.b64decode(draw["outputs"][1]["data"]["image/png"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and b"matplotlib" not in png  # no version stamp
    assert [(o["output_type"], o.get("name")) for o in value["outputs"]] == [("stream", "stderr"),
                                                                             ("execute_result", None)]
    assert text(value["outputs"][1]["data"]["text/plain"]) == "42"
    assert [c["execution_count"] for c in (setup, draw, value)] == [1, 2, 3]
    first = script.with_suffix(".ipynb").read_bytes()
    assert run_generator(tmp_path, script).returncode == 0
    assert script.with_suffix(".ipynb").read_bytes() == first  # the same bytes again


def test_generator_writes_nothing_when_a_cell_fails(tmp_path):
    shutil.copy(TUTORIALS / "tutorial_setup.py", tmp_path)
    script = tmp_path / "99_tiny.py"
    script.write_text(TINY + "\n# %%\nprint('about to fail')\n1 / 0\n", encoding="utf-8")
    notebook = script.with_suffix(".ipynb")
    notebook.write_text("an older notebook", encoding="utf-8")
    done = run_generator(tmp_path, script)
    assert done.returncode == 1
    assert "99_tiny.py, cell 5 failed" in done.stderr and "about to fail" in done.stderr
    assert "ZeroDivisionError" in done.stderr
    assert notebook.read_text(encoding="utf-8") == "an older notebook"  # nothing saved is lost


def test_the_command_makes_a_quick_notebook_elsewhere(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("ACK_QUICK", "ACK_TUTORIAL_OUT", "ACK_CHECKPOINT")}
    done = subprocess.run([sys.executable, str(GENERATOR), "01", "--quick", "--out", str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 notebook(s) in" in done.stdout and "load average" in done.stdout
    nb = json.loads((tmp_path / "01_autograd.ipynb").read_text(encoding="utf-8"))
    script = TUTORIALS / "01_autograd.py"
    assert schema_problems(nb) == [] and cell_problems(nb, script) == [] and output_problems_of_cells(nb) == []
    assert nb["metadata"]["ack_numpy"]["mode"] == "quick"
    assert (tmp_path / "figures" / "01_finite_difference_error.png").is_file()  # not in tutorials/figures


def test_generator_refuses_quick_notebooks_in_place_and_unknown_tutorials():
    for args, message in ((["--quick"], "--quick notebooks are not the committed ones"),
                          (["98"], "no tutorial 98")):
        done = subprocess.run([sys.executable, str(GENERATOR), *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr

"""Make each tutorial's notebook, with its outputs: tutorials/NN_name.py -> tutorials/NN_name.ipynb.

    python tutorials/make_notebooks.py            # every tutorial, full mode (what is committed)
    python tutorials/make_notebooks.py 03 05      # only these
    python tutorials/make_notebooks.py --quick --out DIR    # quick mode, notebooks into DIR

The scripts are the source; a notebook is written from them and never edited by hand.
A script is a list of cells in the "percent" format: a line `# %% [markdown]` starts a
text cell (its lines are `# ` + Markdown), a line `# %%` (maybe followed by a title)
starts a code cell. In the notebook a text cell is Markdown without the `# `, and a code
cell is its code, with the title, if any, as a first comment line (`read_cells`).

Each tutorial runs in a fresh Python process, started in tutorials/ as a Jupyter kernel
would be: its code cells run one after the other in one namespace, and each cell's
outputs are recorded in the order they happen (printed text as `stream` outputs; each
figure the cell saves with `tutorial_setup.save` as a PNG `display_data`; the value of a
last bare expression, as Jupyter shows it). The notebook is written only when every cell
ran. The committed notebooks are made in full mode with the tutorials' default settings:
ACK_QUICK, ACK_TUTORIAL_OUT and ACK_CHECKPOINT are removed from the environment of the
run; ACK_MNIST_DIR is kept (it says where the data is, not what to compute). Training's
status lines (batches, images/s, ETA; see ack_numpy/progress.py) are turned off, the
epoch lines stay. Printed paths inside the checkout are written `...` in place of the
checkout's folder, so a notebook does not depend on where it was made.

The format is nbformat 4.5 (JSON; cell ids, written the way Jupyter writes them:
indent 1, sorted keys), checked by tests/test_notebooks.py.
"""
from __future__ import annotations

import argparse
import ast
import base64
import hashlib
import io
import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's package, as tutorial_setup.py does
from ack_numpy.files import atomic_write  # noqa: E402

HERE = Path(__file__).resolve().parent
COMMAND = "python tutorials/make_notebooks.py"
NOTEBOOK_WIDTH = 1200  # pixels: the widest figure is drawn at most this wide in a notebook
NOTEBOOK_DPI = 100     # and at most this many dots per inch (the PNG files use 110)
SETTINGS_REMOVED = ("ACK_QUICK", "ACK_TUTORIAL_OUT", "ACK_CHECKPOINT")
THREAD_SETTINGS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")  # they change the timings


# ---------------------------------------------------------------------------------------
# The cells of a percent-format script
# ---------------------------------------------------------------------------------------

class ScriptError(ValueError):
    """A tutorial script that is not a list of percent-format cells."""


def tutorial_scripts(folder: Path = HERE) -> list[Path]:
    """Every tutorial in `folder`: the files named NN_*.py (two digits), in order."""
    return sorted(p for p in folder.glob("[0-9][0-9]_*.py"))


def read_cells(script: Path) -> list[dict]:
    """The cells of a percent-format script, as [{"cell_type": "markdown" | "code", "source": str}].

    Leading and trailing blank lines of each cell are dropped; lines before the first
    `# %%` (if any) form a code cell, as in Jupyter's and VS Code's reading of the format."""
    cells: list[dict] = []
    kind, lines, start = "code", [], 1
    for number, line in enumerate(script.read_text(encoding="utf-8").splitlines(), start=1):
        if line.startswith("# %%"):
            _close_cell(cells, kind, lines, script, start)
            marker = line[len("# %%"):].strip()
            kind = "markdown" if marker.startswith("[markdown]") else "code"
            lines, start = ([f"# {marker}"] if kind == "code" and marker else []), number + 1
        else:
            lines.append(line)
    _close_cell(cells, kind, lines, script, start)
    return cells


def _close_cell(cells: list[dict], kind: str, lines: list[str], script: Path, start: int) -> None:
    while lines and not lines[-1].strip():
        lines.pop()
    while lines and not lines[0].strip():
        lines.pop(0)
        start += 1
    if not lines:
        return
    if kind == "markdown":
        for offset, line in enumerate(lines):
            if not line.startswith("#"):
                raise ScriptError(f"{script.name}, line {start + offset}: a line of a markdown cell "
                                  f"must start with '#', got {line[:40]!r}")
        # "# text" -> "text", "#" -> "" (a blank line of Markdown)
        lines = [line[2:] if line.startswith("# ") else line[1:] for line in lines]
    cells.append({"cell_type": kind, "source": "\n".join(lines)})


# ---------------------------------------------------------------------------------------
# Running the code cells (in the child process, one per tutorial)
# ---------------------------------------------------------------------------------------

class CellOutputs:
    """The outputs of the cell that is running, in the order they happen, as nbformat outputs."""

    def __init__(self, root: Path):
        self.root = str(root)
        self.outputs: list[dict] = []

    def write_text(self, stream: str, text: str) -> None:
        text = text.replace(self.root, "...")  # where the checkout is says nothing about the tutorial
        last = self.outputs[-1] if self.outputs else None
        if last and last["output_type"] == "stream" and last["name"] == stream:
            last["text"] += text  # consecutive writes to one stream form one output, as in Jupyter
        else:
            self.outputs.append({"output_type": "stream", "name": stream, "text": text})

    def add_figure(self, fig) -> None:
        width_inches = fig.get_size_inches()[0]
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=min(NOTEBOOK_DPI, NOTEBOOK_WIDTH / width_inches),
                    bbox_inches="tight", metadata={"Software": None})  # no version stamp: same bytes every run
        width, height = (fig.get_size_inches() * fig.dpi).round().astype(int)
        self.outputs.append({"output_type": "display_data", "metadata": {},
                             "data": {"image/png": base64.b64encode(buffer.getvalue()).decode("ascii"),
                                      "text/plain": f"<Figure size {width}x{height} with {len(fig.axes)} Axes>"}})

    def add_result(self, value, execution_count: int) -> None:
        self.outputs.append({"output_type": "execute_result", "execution_count": execution_count,
                             "metadata": {}, "data": {"text/plain": repr(value)}})


class StreamTo(io.TextIOBase):
    """sys.stdout or sys.stderr while a cell runs: what is written goes to the cell's outputs."""

    def __init__(self, outputs: list[CellOutputs], name: str):
        self.current, self.name = outputs, name

    def write(self, text: str) -> int:
        self.current[0].write_text(self.name, text)
        return len(text)

    def isatty(self) -> bool:
        return False


def run_cell(source: str, namespace: dict, filename: str, outputs: CellOutputs, count: int) -> None:
    """Run one cell's code in `namespace`; a last bare expression is shown, as Jupyter does."""
    tree = ast.parse(source, filename)
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    exec(compile(tree, filename, "exec"), namespace)
    if last is not None:
        value = eval(compile(ast.Expression(last.value), filename, "eval"), namespace)
        if value is not None:
            outputs.add_result(value, count)


def execute(script: Path, notebook: Path) -> None:
    """Run `script`'s code cells in this process and write `notebook` (nothing if a cell fails)."""
    cells = read_cells(script)
    sys.path.insert(0, str(script.parent))  # as a kernel started in tutorials/ finds tutorial_setup
    import tutorial_setup

    current = [CellOutputs(tutorial_setup.ROOT)]
    tutorial_setup.on_save = lambda fig: current[0].add_figure(fig)
    namespace = {"__name__": "__main__"}
    count = 0
    real_stdout, real_stderr = sys.stdout, sys.stderr
    for index, cell in enumerate(cells, start=1):
        if cell["cell_type"] != "code":
            continue
        count += 1
        current[0] = CellOutputs(tutorial_setup.ROOT)
        sys.stdout, sys.stderr = StreamTo(current, "stdout"), StreamTo(current, "stderr")
        started = time.perf_counter()
        try:
            run_cell(cell["source"], namespace, f"{script.name}, cell {index}", current[0], count)
        except BaseException:
            sys.stdout, sys.stderr = real_stdout, real_stderr
            print(f"make_notebooks: {script.name}, cell {index} failed; {notebook.name} not written. "
                  f"What it printed:\n{_text_of(current[0].outputs)}", file=sys.stderr)
            traceback.print_exc()
            raise SystemExit(1)
        finally:
            sys.stdout, sys.stderr = real_stdout, real_stderr
        cell["outputs"], cell["execution_count"] = current[0].outputs, count
        print(f"  cell {index:3d}: {time.perf_counter() - started:6.1f} s", flush=True)
    write_json(notebook, to_notebook(cells, script.name, quick=tutorial_setup.QUICK))


def _text_of(outputs: list[dict]) -> str:
    return "".join(o["text"] for o in outputs if o["output_type"] == "stream")


# ---------------------------------------------------------------------------------------
# The notebook (nbformat 4.5)
# ---------------------------------------------------------------------------------------

def multiline(text: str) -> list[str]:
    """Text as nbformat stores it: a list of lines, each but the last ending in a newline."""
    return text.splitlines(keepends=True)


def cell_id(cell: dict, taken: set[str]) -> str:
    """A short id from the cell's content, so ids do not move when another cell changes."""
    digest = hashlib.sha1((cell["cell_type"] + "\n" + cell["source"]).encode("utf-8")).hexdigest()[:8]
    ident, n = digest, 1
    while ident in taken:  # two cells with the same content
        n += 1
        ident = f"{digest}-{n}"
    taken.add(ident)
    return ident


def to_notebook(cells: list[dict], source_name: str, quick: bool) -> dict:
    """The notebook of a script's cells (code cells with "outputs" and "execution_count")."""
    taken: set[str] = set()
    notebook_cells = []
    for cell in cells:
        entry = {"id": cell_id(cell, taken), "cell_type": cell["cell_type"], "metadata": {},
                 "source": multiline(cell["source"])}
        if cell["cell_type"] == "code":
            entry["execution_count"] = cell.get("execution_count")
            entry["outputs"] = [_stored(o) for o in cell.get("outputs", [])]
        notebook_cells.append(entry)
    return {
        "nbformat": 4, "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python", "file_extension": ".py", "mimetype": "text/x-python"},
            "ack_numpy": {"source": source_name, "made_by": made_by(quick), "mode": "quick" if quick else "full"},
        },
        "cells": notebook_cells,
    }


def made_by(quick: bool) -> str:
    """The command that made the notebook, with the thread settings that were in force."""
    settings = [f"{name}={os.environ[name]}" for name in THREAD_SETTINGS if name in os.environ]
    return " ".join(settings + [COMMAND] + (["--quick"] if quick else []))


def _stored(output: dict) -> dict:
    """An output with its text fields as lists of lines (the PNG stays one base64 string)."""
    output = dict(output)
    if "text" in output:
        output["text"] = multiline(output["text"])
    if "data" in output:
        output["data"] = {mime: multiline(value) if mime.startswith("text/") else value
                          for mime, value in output["data"].items()}
    return output


def write_json(path: Path, notebook: dict) -> None:
    """Write the notebook as Jupyter does (indent 1, sorted keys), whole or not at all."""
    text = json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    with atomic_write(path, "w", encoding="utf-8") as f:
        f.write(text)


# ---------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------

def child_environment(quick: bool, figures: Path | None) -> dict:
    """The tutorial's environment: the defaults (full mode), or quick mode with figures elsewhere."""
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS_REMOVED}
    env["MPLBACKEND"] = "Agg"
    env["ACK_PROGRESS_SECONDS"] = "1e9"  # no status lines: a person watching needs them, a record does not
    if quick:
        env["ACK_QUICK"] = "1"
    if figures is not None:
        env["ACK_TUTORIAL_OUT"] = str(figures)
    return env


def make(script: Path, out: Path, quick: bool) -> float:
    """Run `script` in a fresh process that writes out/<name>.ipynb; its wall time in seconds."""
    notebook = out / (script.stem + ".ipynb")
    figures = out / "figures" if out != script.parent else None
    started = time.perf_counter()
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--execute", str(script),
                           "--notebook", str(notebook)],
                          cwd=script.parent, env=child_environment(quick, figures))
    if done.returncode != 0:
        raise SystemExit(f"make_notebooks: {script.name} failed (exit {done.returncode}); "
                         f"{notebook.name} was not written")
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Make tutorials/NN_*.ipynb from tutorials/NN_*.py, "
                                                 "with the outputs of a run.")
    parser.add_argument("tutorials", nargs="*", metavar="NN", help="tutorial numbers (default: all)")
    parser.add_argument("--quick", action="store_true", help="run in quick mode (needs --out: never committed)")
    parser.add_argument("--out", type=Path, help="folder for the notebooks (default: tutorials/, beside the scripts)")
    parser.add_argument("--execute", type=Path, help=argparse.SUPPRESS)   # the child process
    parser.add_argument("--notebook", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.execute:
        execute(args.execute.resolve(), args.notebook.resolve())
        return

    if args.quick and args.out is None:
        parser.error("--quick notebooks are not the committed ones: give --out DIR")
    scripts = tutorial_scripts()
    chosen = [s for s in scripts if not args.tutorials or s.name[:2] in args.tutorials]
    unknown = sorted(set(args.tutorials) - {s.name[:2] for s in scripts})
    if unknown:
        parser.error(f"no tutorial {unknown[0]} in {HERE} (there are {', '.join(s.name[:2] for s in scripts)})")
    try:
        for script in chosen:
            read_cells(script)  # a malformed script stops everything before anything runs
    except ScriptError as err:
        raise SystemExit(f"make_notebooks: {err}") from None
    out = (args.out or HERE).resolve()
    out.mkdir(parents=True, exist_ok=True)
    removed = [k for k in SETTINGS_REMOVED if k in os.environ]
    if removed:
        print(f"(not passed to the tutorials: {', '.join(removed)}; they run with the default settings"
              + (", in quick mode" if args.quick else "") + ")")
    print(load_line())
    total = 0.0
    for script in chosen:
        print(f"{script.name}:", flush=True)
        seconds = make(script, out, args.quick)
        total += seconds
        size = (out / (script.stem + ".ipynb")).stat().st_size
        print(f"{script.stem}.ipynb: {seconds:.1f} s, {size / 1024:.0f} KiB", flush=True)
    sizes = sum((out / (s.stem + ".ipynb")).stat().st_size for s in chosen)
    print(f"{len(chosen)} notebook(s) in {out}: {total:.1f} s, {sizes / 1024:.0f} KiB in all")
    print(load_line())


def load_line() -> str:
    """How busy the machine is: the timings in the notebooks depend on it."""
    if not hasattr(os, "getloadavg"):
        return "(load average: not known on this system)"
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} cores"


if __name__ == "__main__":
    main()

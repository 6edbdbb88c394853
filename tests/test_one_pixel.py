"""The debugger recipe of tutorials/README.md ("Step through one pixel") cannot rot.

The README shows a pdb session of `python tutorials/one_pixel.py`. These tests type
exactly the commands it shows (the lines starting with "(Pdb) "), from a folder outside
the project, and check what pdb prints: against the transcript in the README, and
against the vectorised engine computed here.
"""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ack_numpy.functional as F

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tutorials" / "one_pixel.py"
PROMPT = "(Pdb) "


def documented_transcript() -> list[str]:
    """The lines of the README's code block that starts with `$ python tutorials/one_pixel.py`."""
    text = (ROOT / "tutorials" / "README.md").read_text()
    match = re.search(r"```text\n\$ python tutorials/one_pixel.py\n(.*?)```", text, re.S)
    assert match, "tutorials/README.md has no ```text block starting with `$ python tutorials/one_pixel.py`"
    return match.group(1).rstrip("\n").split("\n")


def documented_commands() -> list[str]:
    return [line[len(PROMPT):] for line in documented_transcript() if line.startswith(PROMPT)]


def run_session(cwd: Path, env_update: dict) -> str:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", **env_update)
    env.pop("PYTHONPATH", None)   # the script must find its package by itself
    result = subprocess.run([sys.executable, str(SCRIPT)], input="\n".join(documented_commands()) + "\n",
                            cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"one_pixel.py exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    return result.stdout


def as_transcript(stdout: str) -> list[str]:
    """Put each command in front of its output, as a terminal shows them, and drop pdb's
    '> file(line)function()' location lines (the README leaves them out)."""
    commands = iter(documented_commands())
    lines = []
    for line in stdout.rstrip("\n").split("\n"):
        while line.startswith(PROMPT):
            lines.append(PROMPT + next(commands))
            line = line[len(PROMPT):]
        if line.startswith("> ") and line.endswith(")"):
            continue
        lines.append(line)
    return [line for line in lines if line != "" or lines[-1] != ""]


def outputs(stdout: str) -> dict[str, str]:
    """command -> the text pdb printed for it (its first occurrence)."""
    found, current = {}, None
    for line in as_transcript(stdout):
        if line.startswith(PROMPT):
            current = line[len(PROMPT):]
            found.setdefault(current, [])
        elif current is not None:
            found[current].append(line)
    return {command: "\n".join(text) for command, text in found.items()}


def numbers(text: str) -> np.ndarray:
    return np.array([float(v) for v in re.findall(r"[-+]?\d+\.?\d*(?:e[-+]?\d+)?", text.replace("float64", ""))])


def load_script_module():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        spec = importlib.util.spec_from_file_location("one_pixel_under_test", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(SCRIPT.parent))


def test_the_documented_commands_print_the_values_the_engine_computes(tmp_path):
    # Without MNIST (an empty folder), from a folder outside the project: the drawn stroke.
    empty = tmp_path / "no-mnist"
    empty.mkdir()
    out = outputs(run_session(tmp_path, {"ACK_MNIST_DIR": str(empty)}))
    script = load_script_module()
    Q, w, b, _ = script.trained_first_layer()
    x = script.drawn_stroke()   # the input one_pixel.py uses without MNIST
    o, i, j = script.CHANNEL, script.ROW, script.COL

    assert numbers(out["p o, i, j"]).tolist() == [o, i, j]
    np.testing.assert_allclose(numbers(out["p p"]), x[0, 0, i:i + 3, j:j + 3].reshape(-1), atol=1e-4)
    kernel = F.adaptive_kernels(x, Q, w)[0, o, i, j].reshape(-1)
    np.testing.assert_allclose(numbers(out["p k"]), kernel, atol=1e-4)
    np.testing.assert_allclose(numbers(out["p Q[o] @ p + w[o]"]), kernel, atol=1e-4)
    sigma = F.adaptive_conv2d(x, Q, w, b).data[0, o, i, j]
    assert numbers(out["p sigma[0, o, i, j]"])[-1] == pytest.approx(sigma, abs=1e-9)
    assert numbers(out["p p @ Q[o] @ p + w[o] @ p + b[o]"])[-1] == pytest.approx(sigma, abs=1e-9)


def same_line(documented: str, printed: str) -> bool:
    """Equal text, numbers equal to the printed precision, '...' standing for a path prefix;
    NumPy 1 prints a float64 scalar without the `np.float64(...)` around it."""
    strip = lambda s: re.sub(r"np\.float64\((.*)\)", r"\1", s)  # noqa: E731
    documented, printed = strip(documented), strip(printed)
    if documented == "-> ...":
        return printed.startswith("-> ")
    if documented.startswith("breakpoint: ..."):   # '...' a path, 'LINE' a line number
        pattern = re.escape(documented[len("breakpoint: ..."):]).replace("LINE", r"\d+")
        return re.fullmatch(r"breakpoint: /.*" + pattern, printed) is not None
    if "LINE" in documented:
        return re.fullmatch(re.escape(documented).replace("LINE", r"\d+"), printed) is not None
    pattern = r"[-+]?\d+\.\d+"
    if re.sub(pattern, "#", documented) != re.sub(pattern, "#", printed):
        return False
    a, b = (np.array([float(v) for v in re.findall(pattern, s)]) for s in (documented, printed))
    return a.shape == b.shape and bool(np.all(np.abs(a - b) <= 2e-4 + 1e-6 * np.abs(b)))


@pytest.mark.mnist
def test_the_readme_transcript_is_what_pdb_prints(tmp_path, mnist_path):
    printed = as_transcript(run_session(tmp_path, {"ACK_MNIST_DIR": str(mnist_path)}))
    documented = documented_transcript()
    assert len(printed) == len(documented), "\n".join(printed)
    for line_number, (doc, out) in enumerate(zip(documented, printed), 1):
        assert same_line(doc, out), f"README transcript line {line_number}:\n  README: {doc}\n  pdb:    {out}"


def test_a_pixel_outside_the_image_gets_one_clear_line(tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), "--row", "26"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 2
    assert result.stderr.strip() == ("one_pixel.py: --channel must be in 0..7, --row in 0..25, --col in 0..25; "
                                     "got 0, 26, 16")


def run_from_model(tmp_path, commands: list[str]) -> str:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", ACK_MNIST_DIR=str(tmp_path))
    env.pop("PYTHONPATH", None)
    result = subprocess.run([sys.executable, str(SCRIPT), "--from-model"], input="\n".join(commands) + "\n",
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"one_pixel.py --from-model exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    return result.stdout


def test_from_model_continue_lands_in_the_loops_through_the_layers(tmp_path):
    # The README's "Step from model(x) into the loops": continue, where, then the pixel's indices.
    out = run_from_model(tmp_path, ["continue", "where", "p o, i, j", "continue"])
    _, after_continue, after_where, after_p = out.split(PROMPT)[:4]
    assert re.match(r"> /.*/ack_numpy/functional/adaptive\.py\(\d+\)adaptive_conv2d_loops\(\)", after_continue)
    frames = re.findall(r"/ack_numpy/([\w/]+\.py)\(\d+\)(\w+)\(\)", after_where)
    assert [f for f in frames if f[0] != "nn/module.py"] == [
        ("models.py", "forward"), ("nn/layers.py", "forward"), ("nn/adaptive.py", "forward"),
        ("functional/adaptive.py", "adaptive_conv2d_loops_with_grad"),
        ("functional/adaptive.py", "adaptive_conv2d_loops")], after_where
    assert after_p.strip().startswith("(0, 12, 16)")
    assert "adaptive_conv2d at channel 0, pixel (12, 16)" in out


def test_from_model_step_by_step_reaches_the_loops(tmp_path):
    # "Typing `step` instead of `continue` walks the same path": 40 steps are enough.
    out = run_from_model(tmp_path, ["step"] * 40 + ["where", "continue"])
    functions = re.findall(r"\((\d+)\)(\w+)\(\)", out)
    names = [name for _, name in functions]
    assert "adaptive_conv2d_loops_with_grad" in names and "adaptive_conv2d_loops" in names, names
    assert names.index("forward") < names.index("adaptive_conv2d_loops_with_grad") < names.index("adaptive_conv2d_loops")

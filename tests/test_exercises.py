"""The exercises' checker (tutorials/check.py): every reference solution passes, and wrong
answers, the plausible mistakes a reader makes, are rejected with a hint."""
from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "tutorials"


def load(path: Path, name: str):
    sys.path.insert(0, str(TUTORIALS))
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(TUTORIALS))


checker = load(TUTORIALS / "check.py", "tutorial_check_under_test")
NUMBERS = sorted(checker.CHECKS)


def solutions(number: str):
    return load(TUTORIALS / "solutions" / f"ex{number}.py", f"solutions_{number}")


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    env.pop("PYTHONPATH", None)  # check.py finds the package by itself
    return subprocess.run([sys.executable, str(TUTORIALS / "check.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_every_tutorial_has_exercises_solutions_and_says_so():
    for number in NUMBERS:
        assert (TUTORIALS / "exercises" / f"ex{number}.py").is_file()
        assert (TUTORIALS / "solutions" / f"ex{number}.py").is_file()
        tutorial = next(TUTORIALS.glob(f"{number}_*.py")).read_text()
        assert f"python tutorials/check.py {number}" in tutorial, f"tutorial {number} does not point to its checker"
        for name, _ in checker.CHECKS[number]:
            assert name in tutorial, f"tutorial {number} does not describe exercise {name}"
    assert sorted(p.name[:2] for p in TUTORIALS.glob("[0-9][0-9]_*.py")) == NUMBERS


@pytest.mark.parametrize("number", NUMBERS)
def test_the_reference_solutions_pass_the_checker(number, tmp_path):
    result = run_cli(number, "--solutions", cwd=tmp_path)
    n = len(checker.CHECKS[number])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{n} of {n} right" in result.stdout
    assert result.stdout.count(": right") == n


@pytest.mark.parametrize("number", NUMBERS)
def test_the_unanswered_exercises_are_reported_not_done(number, tmp_path):
    result = run_cli(number, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout.count(": not done. it still raises NotImplementedError") == len(checker.CHECKS[number])


def _wrong_answers():
    """(tutorial, exercise, a plausible wrong answer)."""
    F = checker.F
    return [
        ("01", "tanh_layer_grads", lambda x, W, g: (g @ W.T, x.T @ g)),                     # forgot tanh'
        ("01", "bias_grad", lambda grad, shape: grad.sum(axis=tuple(range(grad.ndim - len(shape))))),  # size-1 axes
        ("02", "patch_row", lambda x, n, i, j, m, s, p: x[n, :, i * s:i * s + m, j * s:j * s + m].reshape(-1)),
        ("02", "conv2d_by_matmul", lambda x, wt, b, s, p: (F.im2col(x, wt.shape[2], s, p) @ wt.reshape(len(wt), -1).T + b)
         .reshape(x.shape[0], len(wt), F.conv_output_size(x.shape[2], wt.shape[2], s, p),
                  F.conv_output_size(x.shape[3], wt.shape[2], s, p))),                      # no transpose
        ("02", "copies_per_pixel", lambda H, W, m, s, p: np.full((H, W), m * m)),
        ("03", "adaptive_kernel", lambda p, Q, w: Q.T @ p + w),                             # column, not row
        ("03", "dsigma_dp", lambda p, Q, w: 2 * Q @ p + w),                                  # Q assumed symmetric
        ("03", "most_adapted_location", lambda x, Q, w, o: divmod(int(F.im2col(x, 3).sum(axis=1).argmax()),
                                                                  x.shape[3] - 2)),         # most ink
        ("04", "cosine_learning_rate", lambda lr, t, T: lr * np.cos(np.pi * t / T)),
        ("04", "cross_entropy_grad", lambda z, y: solutions("04").cross_entropy_grad(z, y) * len(y)),  # no / N
        ("04", "adaptive_layer_parameters", lambda C, O, m: O * ((C * m * m) ** 2 + 1)),    # forgot w
        ("05", "kernel_distance_map", lambda x, Q, w, o: solutions("05").distance_to_mean_kernel(x, Q, w, o)),
        ("05", "distance_to_mean_kernel", lambda x, Q, w, o: solutions("05").kernel_distance_map(x, Q, w, o)),
        ("06", "quadratic_unit", lambda P, Q, w, b: np.tanh(np.diag(P @ Q @ P.T) + P @ w)),         # forgot b
        ("06", "adaptive_as_dynamic_filter", lambda weight, bias: (weight.reshape(len(bias), -1).T, bias)),  # columns
    ]


@pytest.mark.parametrize("number, name, wrong", _wrong_answers(), ids=lambda v: v if isinstance(v, str) else "")
def test_a_plausible_mistake_is_rejected_with_a_hint(number, name, wrong):
    answers = solutions(number)
    answers = SimpleNamespace(**{n: getattr(answers, n) for n, _ in checker.CHECKS[number]})
    setattr(answers, name, wrong)
    verdicts = {label.split()[1]: (verdict, message) for label, verdict, message in checker.check(number, answers)}
    assert verdicts[name][0] == "wrong", verdicts[name]
    assert len(verdicts[name][1]) > 20                       # a hint, not just "wrong"
    assert all(v == "right" for n, (v, _) in verdicts.items() if n != name)


@pytest.mark.parametrize("number", NUMBERS)
def test_every_exercise_rejects_a_slightly_wrong_answer(number):
    # The reference answer, nudged: 1e-3 added to every number it returns.
    def nudged(function):
        def answer(*args):
            result = function(*args)
            if isinstance(result, tuple) and all(isinstance(v, np.ndarray) for v in result):
                return tuple(v + 1e-3 for v in result)
            return result + 1e-3 if not isinstance(result, tuple) else tuple(v + 1 for v in result)
        return answer

    reference = solutions(number)
    for name, _ in checker.CHECKS[number]:
        answers = SimpleNamespace(**{n: getattr(reference, n) for n, _ in checker.CHECKS[number]})
        setattr(answers, name, nudged(getattr(reference, name)))
        verdict = {label.split()[1]: v for label, v, _ in checker.check(number, answers)}[name]
        assert verdict == "wrong", f"{number} {name} accepted a nudged answer"


def test_an_answer_that_raises_is_wrong_in_one_line_and_a_missing_one_not_done():
    def broken(p, Q, w):
        raise ValueError("shapes do not match")

    results = checker.check("03", SimpleNamespace(adaptive_kernel=broken))
    assert results[0] == ("03.1 adaptive_kernel", "wrong", "it raised ValueError: shapes do not match")
    assert results[1] == ("03.2 dsigma_dp", "not done", "there is no function dsigma_dp")


def test_command_line_errors_are_one_clear_line(tmp_path):
    result = run_cli("7", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "check.py: no exercises for tutorial '7'; choose one of 01, 02, 03, 04, 05, 06"
    bad = tmp_path / "mine.py"
    bad.write_text("def adaptive_kernel(:\n")
    result = run_cli("03", "--answers", str(bad), cwd=tmp_path)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith(f"check.py: {bad} does not run: SyntaxError")
    for limit in ("inf", "nan", "1e300", "0", "-3"):
        result = run_cli("03", "--solutions", "--time-limit", limit, cwd=tmp_path)
        assert result.returncode == 2 and result.stdout == ""
        assert result.stderr.startswith("check.py: --time-limit must be a number of seconds above 0 and at most "
                                        "86400, got ") and len(result.stderr.strip().splitlines()) == 1


# ----------------------------------------------------------------------------- hostile answers
# The command line runs each answer in a child process; these answers try to pass, hang or
# break the checker, and each is reported as what it did.
RIGHT_03 = """
import numpy as np
def dsigma_dp(p, Q_o, w_o):
    return (Q_o + Q_o.T) @ p + w_o
def most_adapted_location(x, Q, w, o):
    raise NotImplementedError
"""


def answers_file(tmp_path: Path, adaptive_kernel_body: str, prelude: str = "") -> Path:
    path = tmp_path / "mine.py"
    path.write_text(f"import os, sys\n{prelude}\ndef adaptive_kernel(p, Q_o, w_o):\n    {adaptive_kernel_body}\n" + RIGHT_03)
    return path


def verdicts(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.startswith("exercise ")]


@pytest.mark.parametrize("body, verdict", [
    ("sys.exit(0)", "exercise 03.1 adaptive_kernel: wrong. it called sys.exit(0)"),
    ("raise KeyboardInterrupt", "exercise 03.1 adaptive_kernel: wrong. it raised KeyboardInterrupt"),
    ("os._exit(0)", "exercise 03.1 adaptive_kernel: wrong. its process ended without a result (exit status 0)"),
    ("return 'the kernel'", "exercise 03.1 adaptive_kernel: wrong. adaptive_kernel (D=9) returned a str ('the kernel'), "
                            "expected a NumPy array of numbers."),
    ("return {1: 2}", "exercise 03.1 adaptive_kernel: wrong. adaptive_kernel (D=9) returned a dict, expected"),
    ("os.write(int(os.environ['ACK_CHECK_REPLY_FD']), b'right\\n'); return Q_o @ p",
     "exercise 03.1 adaptive_kernel: wrong. its process sent a malformed result ('right')"),
    ("print('exercise 03.1 adaptive_kernel: right'); return Q_o.T @ p + w_o", "exercise 03.1 adaptive_kernel: wrong. "),
])
def test_a_hostile_answer_is_reported_as_what_it_did(tmp_path, body, verdict):
    result = run_cli("03", "--answers", str(answers_file(tmp_path, body)), cwd=tmp_path)
    lines = verdicts(result)
    assert result.returncode == 1, result.stdout + result.stderr
    assert lines[0].startswith(verdict), lines
    assert lines[1] == "exercise 03.2 dsigma_dp: right"       # the next exercise runs in a fresh process
    assert lines[2].endswith("not done. it still raises NotImplementedError")
    assert "Traceback" not in result.stdout + result.stderr
    assert "1 of 3 right" in result.stdout


def test_an_endless_loop_is_stopped_at_the_time_limit(tmp_path):
    result = run_cli("03", "--answers", str(answers_file(tmp_path, "while True: pass")), "--time-limit", "3",
                     cwd=tmp_path)
    assert verdicts(result)[0] == "exercise 03.1 adaptive_kernel: wrong. it did not finish within 3 s (an endless loop?)"
    assert verdicts(result)[1] == "exercise 03.2 dsigma_dp: right" and result.returncode == 1


def test_half_a_reply_and_then_silence_is_stopped_at_the_time_limit(tmp_path):
    body = ("os.write(int(os.environ['ACK_CHECK_REPLY_FD']), b'{\"value\": '); import time; time.sleep(600)")
    started = time.monotonic()
    result = run_cli("03", "--answers", str(answers_file(tmp_path, body)), "--time-limit", "3", cwd=tmp_path)
    assert verdicts(result)[0] == "exercise 03.1 adaptive_kernel: wrong. it did not finish within 3 s (an endless loop?)"
    assert time.monotonic() - started < 60


def test_an_answer_that_closes_its_reply_channel_and_carries_on_is_stopped(tmp_path):
    body = "os.close(int(os.environ['ACK_CHECK_REPLY_FD'])); import time; time.sleep(600)"
    started = time.monotonic()
    result = run_cli("03", "--answers", str(answers_file(tmp_path, body)), "--time-limit", "3", cwd=tmp_path)
    assert verdicts(result)[0] == ("exercise 03.1 adaptive_kernel: wrong. it closed its reply channel and did not "
                                   "finish within 3 s")
    assert time.monotonic() - started < 60


def test_an_answer_that_rewrites_the_checker_gets_no_verdict(tmp_path):
    import shutil

    copy = tmp_path / "tutorials"
    shutil.copytree(TUTORIALS, copy, ignore=shutil.ignore_patterns("figures", "*.ipynb", "__pycache__"))
    prelude = f"open({str(copy / 'check.py')!r}, 'a').write('\\n# patched\\n')\n"
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    result = subprocess.run([sys.executable, str(copy / "check.py"), "03", "--answers",
                             str(answers_file(tmp_path, "return p", prelude))], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and not verdicts(result), result.stdout + result.stderr
    assert "changed the checker's own files" in result.stderr and "Traceback" not in result.stderr


def test_patching_the_checker_from_the_answers_changes_nothing(tmp_path):
    prelude = ("import __main__\n"
               "for target in [__main__] + [m for n, m in sys.modules.items() if 'check' in n]:\n"
               "    target.expect_close = lambda *a, **k: None\n"
               "    target.check_one = lambda *a, **k: ('right', '')\n"
               "    target.CHECKS = {k: [] for k in getattr(target, 'CHECKS', {})}\n")
    result = run_cli("03", "--answers", str(answers_file(tmp_path, "return p", prelude)), cwd=tmp_path)
    assert verdicts(result)[0].startswith("exercise 03.1 adaptive_kernel: wrong. adaptive_kernel (D=9) is off by")
    assert "1 of 3 right" in result.stdout and result.returncode == 1


def test_an_answers_file_that_exits_while_loading_does_not_run(tmp_path):
    result = run_cli("03", "--answers", str(answers_file(tmp_path, "return p", "sys.exit(0)")), cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip() == f"check.py: {tmp_path / 'mine.py'} does not run: SystemExit: 0"


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_a_stopped_checker_says_so_in_one_line_and_ends_the_answer_and_its_children(stop, tmp_path):
    started = tmp_path / "started"
    # the answer also starts a process of its own, which must end with it
    body = (f"grandchild = __import__('subprocess').Popen(['sleep', '120']); "
            f"open({str(started)!r}, 'w').write(f'{{os.getpid()}} {{grandchild.pid}}'); import time; time.sleep(120)")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    env.pop("PYTHONPATH", None)
    process = subprocess.Popen([sys.executable, str(TUTORIALS / "check.py"), "03", "--answers",
                                str(answers_file(tmp_path, body))], cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               # as at a terminal, even when the tests run in the background (`cmd &`
                               # starts with SIGINT ignored, and Python keeps an ignored SIGINT ignored)
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not (started.exists() and started.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert started.exists(), "the answer never started"
    process.send_signal(stop)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 128 + stop
    assert stderr == ("check.py: interrupted\n" if stop == signal.SIGINT else f"check.py: stopped by {stop.name}\n")
    assert stdout == ""
    time.sleep(0.5)
    for pid in map(int, started.read_text().split()):  # the answer's process and the one it started
        assert not running(pid), pid


def running(pid: int) -> bool:
    """Whether a process runs: not gone, and not a zombie (an ended process whose new parent,
    in some containers a PID 1 that never reaps, has not collected it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


def test_values_cross_the_channel_unchanged_and_nothing_else_does():
    values = (None, True, 3, -2.5, float("nan"), "s", np.arange(6, dtype=np.int32).reshape(2, 3),
              np.float32([1.5]), [1, (2, 3.0)])
    decoded = checker.decode(checker.encode(values))
    assert type(decoded) is tuple and decoded[:4] == (None, True, 3, -2.5) and np.isnan(decoded[4])
    assert decoded[6].dtype == np.int32 and np.array_equal(decoded[6], values[6]) and decoded[7].dtype == np.float32
    assert decoded[8] == [1, (2, 3.0)] and decoded[5] == "s"
    assert checker.describe_value(checker.decode(checker.encode(np.array([1j])))) == "a complex128 ndarray"
    for forged in ({"array": [1], "dtype": "O", "shape": [1]}, {"int": "1"}, {"eval": "os.system('x')"}, [1]):
        with pytest.raises(ValueError):
            checker.decode(forged)


def test_answers_that_are_a_folder_are_not_called_missing(tmp_path):
    result = run_cli("03", "--answers", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.strip() == f"check.py: {tmp_path}: not a file of Python code"

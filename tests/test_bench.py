"""The benchmark: its FLOP counts by hand, and one tiny run end to end (no timing is asserted)."""
import json
import subprocess
import sys

import numpy as np
import pytest

from ack_numpy import Tensor
from ack_numpy.lab import bench
from ack_numpy.lab.bench import flops, timing, training
from ack_numpy import functional as F

from conftest import PROJECT_ROOT


def test_conv2d_flops_by_hand():
    # N=2, C=1, 4x4, m=3, O=2: Ho = Wo = 2, so R = 2*2*2 = 8 locations, D = 9
    counts = flops.conv2d_flops(N=2, C=1, H=4, W=4, m=3, O=2)
    assert counts["forward"] == 2 * 8 * 2 * 9 == 288                  # Y = P Wf^T
    assert counts["backward"] == 288 + 288 == 576                     # dW = G^T P, dP = G Wf
    assert counts["forward_backward"] == 864
    # stride 2, padding 1 on 5x5: Ho = (5 + 2 - 3)//2 + 1 = 3, R = 9; C = 2 so D = 18
    assert flops.conv2d_flops(N=1, C=2, H=5, W=5, m=3, O=3, stride=2, padding=1)["forward"] == 2 * 9 * 3 * 18


def test_adaptive_conv2d_flops_by_hand():
    # the same shape: R = 8, O = 2, D = 9, D^2 = 81
    counts = flops.adaptive_conv2d_flops(N=2, C=1, H=4, W=4, m=3, O=2)
    quadratic, linear = 2 * 8 * 2 * 81, 2 * 8 * 2 * 9                 # 2592, 288
    assert counts["forward"] == quadratic + linear + linear == 3168   # Z = P Qs^T, rowsum, P w^T
    assert counts["backward"] == quadratic + (quadratic + linear) + linear == 5760  # dQ, dP, dw
    assert counts["forward_backward"] == 8928


def test_conv2d_flops_count_the_multiply_adds_of_the_literal_loops():
    # An independent count: conv2d_loops does one multiply-add per (n, o, i, j, c, u, v).
    n, c, h, w, o, m = 2, 3, 6, 5, 4, 3
    multiply_adds = n * o * (h - m + 1) * (w - m + 1) * (c * m * m)
    assert flops.conv2d_flops(N=n, C=c, H=h, W=w, m=m, O=o)["forward"] == 2 * multiply_adds


def test_summarize_and_round_robin():
    stats = timing.summarize([3.0, 1.0, 2.0, 10.0])
    assert (stats["median"], stats["min"], stats["max"], stats["repeats"]) == (2.5, 1.0, 10.0, 4)
    calls = []
    records = timing.time_round_robin({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                                      rounds=5, budget=0.0)
    # one warm-up round, then at least MIN_REPEATS rounds even with no time budget, interleaved
    assert calls[:4] == ["a", "b", "a", "b"]
    assert len(records["a"]["wall"]) == len(records["b"]["cpu"]) == timing.MIN_REPEATS


def test_timing_im2col_col2im_times_the_layers_own_calls_and_puts_them_back():
    import ack_numpy.functional.conv as conv_module
    original = conv_module.col2im_batch_last  # what conv2d calls (its (i, j, n) copy)
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((2, 1, 6, 6), dtype=np.float32), requires_grad=True)
    w = Tensor(rng.standard_normal((2, 1, 3, 3), dtype=np.float32), requires_grad=True)
    F.conv2d(x, w).sum().backward()
    expected, x.grad = x.grad, None

    before = dict(timing.PIECE_SECONDS)
    with timing.timing_im2col_col2im():
        assert conv_module.col2im_batch_last is not original
        F.conv2d(x, w).sum().backward()
    assert conv_module.col2im_batch_last is original
    assert all(timing.PIECE_SECONDS[p] > before[p] for p in ("im2col", "col2im"))
    np.testing.assert_array_equal(x.grad, expected)  # timing changes nothing computed


def test_layer_step_flops_by_hand():
    # lenet's second conv at batch 64: 20 -> 50 channels, 5x5, 12x12 -> 8x8: R = 64*8*8 = 4096, D = 500
    product = 2 * 4096 * 50 * 500
    assert flops.layer_step_flops("Conv2d", (64, 20, 12, 12), (64, 50, 8, 8), (50, 20, 5, 5)) == 3 * product
    # the first layer's input needs no gradient: no dx = col2im(G Wf), so two products, not three
    assert flops.layer_step_flops("Conv2d", (64, 1, 28, 28), (64, 20, 24, 24), (20, 1, 5, 5),
                                  input_grad=False) == 2 * (2 * 64 * 24 * 24 * 20 * 25)
    assert flops.layer_step_flops("Linear", (64, 800), (64, 500), (500, 800)) == 3 * 2 * 64 * 800 * 500
    # adaptive first layer of adaptive-lenet: O = 8, D = 9, R = 64*26*26; forward Z, rowsum, w;
    # backward dQ and dw only (no dP for the first layer)
    R, O, D = 64 * 26 * 26, 8, 9
    expected = (2 * R * O * D * D + 2 * R * O * D + 2 * R * O * D) + (2 * R * O * D * D + 2 * R * O * D)
    assert flops.layer_step_flops("AdaptiveConv2d", (64, 1, 28, 28), (64, 8, 26, 26), (8, 9, 9),
                                  input_grad=False) == expected
    # and it agrees with the layer benchmark's count when dx is needed
    full = flops.adaptive_conv2d_flops(N=64, C=1, H=28, W=28, m=3, O=8)["forward_backward"]
    assert flops.layer_step_flops("AdaptiveConv2d", (64, 1, 28, 28), (64, 8, 26, 26), (8, 9, 9)) == full


def test_step_worker_profiles_a_step_and_counts_its_flops():
    # in-process: the worker's profile covers every layer, forward and backward, and sums to the step
    import importlib.util
    spec = importlib.util.spec_from_file_location("step_worker", training.WORKER)
    worker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(worker)
    r = worker.measure("adaptive-lenet", batch=4, steps=3, warmup=1, budget=0.1, profile_steps=1, eval_images=10)
    layers = ["0 AdaptiveConv2d", "1 MaxPool2d", "2 Conv2d", "3 ReLU", "4 MaxPool2d", "5 Flatten", "6 Linear"]
    assert [k for k in r["by_op_seconds"] if k.startswith("fwd ")] == [f"fwd {n}" for n in layers] + ["fwd loss"]
    assert {f"bwd {n}" for n in layers} <= set(r["by_op_seconds"])
    timed = sum(v for k, v in r["by_op_seconds"].items() if k != "step (profiled)")
    assert abs(timed - r["by_op_seconds"]["step (profiled)"]) < 1e-9
    assert set(r["flops_by_layer"]) == {"0 AdaptiveConv2d", "2 Conv2d", "6 Linear"}
    assert r["flops_by_layer"]["6 Linear"] == 3 * 2 * 4 * 256 * 10
    assert r["flops"] == sum(r["flops_by_layer"].values()) and r["dtypes"] == ["float32"]
    assert r["eval_images"] == 10 and r["eval_images_per_second"] > 0


def test_compare_record_pairs_rounds_and_names_its_command(tmp_path):
    from ack_numpy.lab.bench import compare
    def fake(model, batch, threads, step, rss=100 * 2**20):
        return {"model": model, "batch_size": batch, "threads": threads, "step_seconds": {"median": step},
                "peak_rss_bytes": rss, "dtypes": ["float32"], "eval_images": 10, "eval_images_per_second": 1 / step}
    results = {("lenet", 64, "1"): {"before": [fake("lenet", 64, "1", 0.020), fake("lenet", 64, "1", 0.030)],
                                    "after": [fake("lenet", 64, "1", 0.010), fake("lenet", 64, "1", 0.010)]},
               ("lenet", 64, "all"): {"before": [fake("lenet", 64, "all", 0.010), fake("lenet", 64, "all", 0.010)],
                                      "after": [fake("lenet", 64, "all", 0.005), fake("lenet", 64, "all", 0.010)]}}
    record = compare.format_record({"results": results, "loads": [("0.1 0.1 0.1", "0.2 0.2 0.2")] * 2},
                                   tmp_path, "python -m ack_numpy.lab.bench.compare X", "now")
    assert "python -m ack_numpy.lab.bench.compare X" in record and "round 2: 0.1 0.1 0.1 -> 0.2 0.2 0.2" in record
    # per-round ratios 2.0 and 3.0: median 2.50, range 2.00-3.00; steps 25.00 ms (20.00-30.00)
    assert "25.00 (20.00-30.00)" in record and "2.50 (2.00-3.00)x" in record
    # one thread -> all cores, after: 0.010/0.005 = 2 and 0.010/0.010 = 1
    assert "after 1.50 (1.00-2.00)x" in record


def test_compare_refuses_a_folder_that_is_not_a_checkout(tmp_path, capsys):
    from ack_numpy.lab.bench import compare
    assert compare.main([str(tmp_path)]) == 1
    assert "not a checkout" in capsys.readouterr().err


def test_bench_cli_writes_all_figures_as_json(tmp_path):
    # --tiny: the same code paths on tiny shapes and batches. --threads 1 makes the command
    # rerun itself with OPENBLAS_NUM_THREADS=1, so that path is covered too.
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, "-m", "ack_numpy", "bench", "--quick", "--tiny", "--threads", "1",
                           "--json", str(out)], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "load average" in done.stdout and "GFLOP/s" in done.stdout and "images/s" in done.stdout
    result = json.loads(out.read_text())

    assert result["mode"] == "tiny"
    env = result["environment"]
    assert len(env["load_average"]) == 3 and "OPENBLAS_NUM_THREADS=1" in env["blas_threads"]
    assert result["ceiling"]["gflops"] > 0 and result["ceiling"]["seconds"]["median"] > 0

    layers = {(r["op"], r["shape"], r["pass"]) for r in result["layers"]}
    assert layers == {(op, shape, p) for op in ("conv2d", "adaptive_conv2d") for shape in ("A", "B")
                      for p in ("forward", "forward_backward")}
    for r in result["layers"]:
        assert r["flops"] == flops.FLOP_COUNTS[r["op"]](**r["dims"])[r["pass"]]
        assert r["seconds"]["min"] <= r["seconds"]["median"] <= r["seconds"]["max"]
        assert r["seconds"]["repeats"] >= timing.MIN_REPEATS
        assert r["gflops"] > 0 and r["fraction_of_ceiling"] > 0 and r["cpu_fraction_of_ceiling"] > 0

    assert len(result["breakdown"]) == 4
    for r in result["breakdown"]:
        assert set(r["share"]) == {"im2col", "col2im", "matmuls", "other"}
        assert all(r["seconds"][k] > 0 for k in ("im2col", "col2im", "matmuls"))
        assert 0 < r["im2col_col2im_share_min"] <= r["im2col_col2im_share"] <= r["im2col_col2im_share_max"] < 1
    assert isinstance(env["freed_memory_kept"], bool)

    assert "whole training steps" in done.stdout and "where a step of plain-small" in done.stdout
    assert {(r["model"], r["batch_size"], r["threads"]) for r in result["training"]} == {
        (m, b, t) for m in ("lenet", "adaptive-lenet", "plain-small") for b in bench.MODES["tiny"]["batches"]
        for t in ("1", "all")}
    for r in result["training"]:
        assert r["images_per_second"] > 0 and r["epoch_seconds"] > 0 and r["ceiling_gflops"] > 0
        assert r["peak_rss_bytes"] >= r["rss_at_start_bytes"] > 0 and r["tracemalloc_peak_bytes"] > 0
        assert r["dtypes"] == ["float32"]  # no silent float64 anywhere in the graph or Adam
        assert r["flops"] > 0 and ("eval_images_per_second" in r) == (r["batch_size"] == 2)
        # each worker ran with its own thread setting, whatever the parent's
        assert r["blas_threads"]["OPENBLAS_NUM_THREADS"] == (None if r["threads"] == "all" else "1")



def test_a_json_path_in_a_missing_folder_fails_before_any_timing(tmp_path, capsys):
    from ack_numpy.cli import main
    missing = tmp_path / "no-such-folder"
    assert main(["bench", "--tiny", "--json", str(missing / "bench.json")]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing was measured
    assert captured.err.startswith(f"error: {missing}: no such folder for the --json file")


def test_cores_report_names_its_command_and_every_case(tmp_path, capsys):
    from ack_numpy.lab.bench import cores

    out = tmp_path / "cores.txt"
    assert cores.main(["--repeats", "2", "--out", str(out)]) == 0
    text = out.read_text()
    assert text.startswith(f"# python -m ack_numpy.lab.bench.cores --repeats 2 --out {out}")
    assert text.count("   speedup ") == 4 and "all cores" in text and "2 threads" in text
    with pytest.raises(SystemExit):
        cores.main(["--repeats", "0"])
    assert "must be a whole number >= 1, got '0'" in capsys.readouterr().err


def test_layout_report_compares_both_orders_and_names_its_command(tmp_path, capsys):
    from ack_numpy.lab.bench import layout

    out = tmp_path / "layout.txt"
    assert layout.main(["--rounds", "1", "--out", str(out)]) == 0  # measure() also checks both give the same numbers
    text = out.read_text()
    assert text.startswith(f"# python -m ack_numpy.lab.bench.layout --rounds 1 --out {out}")
    assert text.count("batch first (n, i, j)") == text.count("batch last  (i, j, n)") == 2
    assert text.count("ratio ") == 2 and "lenet training step" in text and "of a step)" in text
    assert capsys.readouterr().out == text


def test_variability_line_reads_a_bench_result():
    from ack_numpy.lab.bench.variability import summary_line

    layer = {"pass": "forward_backward", "op": "adaptive_conv2d"}
    result = {"ceiling": {"gflops": 101.4},
              "layers": [dict(layer, shape="A", fraction_of_ceiling=0.48), dict(layer, shape="B", fraction_of_ceiling=0.75),
                         dict(layer, shape="B", op="conv2d", fraction_of_ceiling=0.5)],
              "breakdown": [{"op": "conv2d", "shape": "B", "im2col_col2im_share": 0.31}],
              "training": [{"model": "adaptive-lenet", "batch_size": 64, "step_seconds": {"median": 0.01234}},
                           {"model": "lenet", "batch_size": 64, "step_seconds": {"median": 0.0456}}]}
    line = summary_line(result, "1")
    assert "threads 1 " in line and "ceiling   101 GFLOP/s" in line and "adaptive A  48%  B  75%" in line
    assert "im2col+col2im  31%" in line and "b64 step 12.34 ms" in line and "lenet b64 45.60 ms" in line


def test_inplace_check_times_the_check_inside_each_step_and_puts_it_back(capsys):
    from ack_numpy import autograd
    from ack_numpy.lab.bench import inplace_check

    originals = autograd.saved_state, autograd.check_unchanged
    assert inplace_check.main(["--steps", "2", "--batch", "4"]) == 0
    assert (autograd.saved_state, autograd.check_unchanged) == originals
    rows = [line.split() for line in capsys.readouterr().out.splitlines() if line and not line.startswith("#")]
    assert [row[0] for row in rows] == list(inplace_check.TIMED_MODELS)
    for row in rows:
        step, check = float(row[2]), float(row[9])
        assert 0 < check < step     # some time in the check, less than the whole step

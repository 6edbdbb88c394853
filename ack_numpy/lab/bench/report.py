"""The printed report of a benchmark run: one section per part, medians with their (min-max) spread.

`format_report` reads only the result dict (what --json writes), so a saved run can be
printed again.
"""
from __future__ import annotations

from ...files import atomic_write
from .training import EPOCH_IMAGES, step_speedups


def print_and_save(text: str, out: str | None) -> None:
    """Print a record, and also write it to `out` when a file was asked for (--out)."""
    print(text, end="")
    if out:
        with atomic_write(out, "w") as f:
            f.write(text)


def _ms(seconds: dict) -> str:
    return f"{seconds['median'] * 1e3:.2f} ms ({seconds['min'] * 1e3:.2f}-{seconds['max'] * 1e3:.2f})"


def _dims(shape: dict) -> str:
    return f"N={shape['N']} C={shape['C']} {shape['H']}x{shape['W']} m={shape['m']} O={shape['O']}"


def format_report(result: dict) -> str:
    """The printed report: one section per part, medians with their (min-max) spread."""
    env, c = result["environment"], result["ceiling"]
    load = " ".join(f"{v:.2f}" for v in env["load_average"])
    load_end = " ".join(f"{v:.2f}" for v in env["load_average_end"])
    repeats = sorted({r["seconds"]["repeats"] for r in result["layers"]})
    lines = [
        f"ack_numpy {env['ack_numpy']} bench ({result['mode']}): numpy {env['numpy']}, Python {env['python']}, "
        f"{env['cpu_count']} CPUs",
        f"load average (1, 5, 15 min): {load} at start, {load_end} at end",
        f"BLAS threads: {env['blas_threads']}",
        "memory: " + ("freed blocks kept for reuse (runtime.keep_freed_memory)" if env["freed_memory_kept"]
                      else "the C library's defaults (ACK_KEEP_FREED_MEMORY=0, or not glibc)"),
        *([f"note: the load average is above the {env['cpu_count']} CPUs and BLAS may use them all; its threads"
           f" then wait for each other (rerun with --threads 1)"]
          if env["load_average"][0] > (env["cpu_count"] or 1) and not env["blas_threads_set"] else []),
        f"parts 1-3: {'/'.join(map(str, repeats))} timed rounds after a warm-up, round-robin; "
        f"figures are medians (min-max)",
        "",
        f"1. ceiling: float32 ({c['n']} x {c['n']}) @ ({c['n']} x {c['n']}) = {c['flops'] / 1e9:.2f} GFLOP",
        f"   {_ms(c['seconds'])}  ->  {c['gflops']:.1f} GFLOP/s ({c['gflops_min']:.1f}-{c['gflops_max']:.1f});"
        f"  per CPU-second: {c['gflops_per_cpu_second']:.1f}",
        "",
        "2. layers in float32; every input requires a gradient (forward+backward includes dx)",
    ]
    lines += [f"   shape {name}: {_dims(shape)}" for name, shape in result["shapes"].items()]
    lines.append(f"   {'op':16s} {'shape':5s} {'pass':8s} {'time, median (min-max)':>27s} {'MFLOP':>7s}"
                 f" {'GFLOP/s (range)':>16s} {'of ceiling':>10s} {'CPU basis':>9s}")
    for r in result["layers"]:
        rate = f"{r['gflops']:.1f} ({r['gflops_min']:.0f}-{r['gflops_max']:.0f})"
        lines.append(f"   {r['op']:16s} {r['shape']:5s} {'fwd' if r['pass'] == 'forward' else 'fwd+bwd':8s}"
                     f" {_ms(r['seconds']):>27s} {r['flops'] / 1e6:7.1f} {rate:>16s}"
                     f" {r['fraction_of_ceiling']:10.0%} {r['cpu_fraction_of_ceiling']:9.0%}")
    lines += [
        "   of ceiling = GFLOP/s / ceiling GFLOP/s (wall-clock medians); CPU basis = the same ratio",
        "   from CPU-time medians (all threads of this process), which leave out waiting for a core",
        "   held by another process but count BLAS threads that spin while waiting for work, so",
        "   either figure can be the lower one.",
        "   Useful FLOPs (a multiply-add = 2; R = N*Ho*Wo, D = C*m*m; for conv2d R*O*D is the same",
        "   on both shapes, hence the same MFLOP):",
        "     conv2d    fwd 2ROD (Y = P Wf^T); bwd 2ROD (dW = G^T P) + 2ROD (dP = G Wf)",
        "     adaptive  fwd 2ROD^2 (Z = P Qs^T) + 2ROD (rowsum Z*P) + 2ROD (P w^T);",
        "               bwd 2ROD^2 (dQ = GP^T P) + 2ROD^2 + 2ROD (dP = GP Ss + G w) + 2ROD (dw = G^T P)",
        "     not counted: bias, forming GP, Q + Q^T, im2col/col2im and other copies",
        "",
        "3. shares of forward+backward time. im2col and col2im: their median time inside the layer's",
        "   own calls / the median fwd+bwd time; matmuls: the products timed alone on the same shapes;",
        "   other = the rest (elementwise work such as the rowsum and forming GP, layout copies, graph",
        "   bookkeeping, mapping fresh memory). per call: (im2col + col2im) / fwd+bwd of the same call,",
        "   median (min-max), the figure the goal uses. faults: page faults per call, median",
        f"   {'op':16s} {'shape':5s} {'fwd+bwd':>9s} {'im2col':>7s} {'col2im':>7s} {'matmuls':>8s} {'other':>6s}"
        f"   {'per call':>15s} {'faults':>7s}",
    ]
    for r in result["breakdown"]:
        s = r["share"]
        per_call = (f"{r['im2col_col2im_share']:.0%} ({r['im2col_col2im_share_min']:.0%}"
                    f"-{r['im2col_col2im_share_max']:.0%})")
        lines.append(f"   {r['op']:16s} {r['shape']:5s} {r['forward_backward_seconds'] * 1e3:6.2f} ms"
                     f" {s['im2col']:7.0%} {s['col2im']:7.0%} {s['matmuls']:8.0%} {s['other']:6.0%}"
                     f"   {per_call:>15s} {r['page_faults']:7.0f}")
    lines += ["", *format_steps(result["training"])]
    lines += [f"total time {result['seconds']:.1f} s"]
    return "\n".join(lines)


def format_steps(steps: list[dict]) -> list[str]:
    """Part 4: the whole-step table, the evaluation pass, and where a step's time goes."""
    speedups = step_speedups(steps)
    lines = [
        "4. whole training steps (forward, cross-entropy, backward, Adam) on one synthetic batch, each",
        "   (model, batch, threads) in a fresh process; threads 1 = OPENBLAS_NUM_THREADS=1 (and OMP_, MKL_),",
        "   all = the library's default. MFLOP: useful FLOPs per step, counted from the layers' shapes",
        "   (products only: conv 2ROD each for Y, dW and dx; adaptive 2ROD^2 for Z, dQ and dP plus 2ROD",
        "   for the rowsum and w; linear 2*N*in*out for y, dW, dx; no dx for the first layer, whose input",
        "   needs no gradient; pooling, activations, loss and Adam count 0). of ceiling: GFLOP/s over the",
        "   matmul ceiling measured in the same process. 1->all: one-thread step time / all-cores step time.",
        f"   {'model':15s} {'batch':>5s} {'thr':>3s} {'step, median (min-max)':>28s} {'images/s':>9s} {'s/epoch':>8s}"
        f" {'MFLOP':>7s} {'GFLOP/s':>7s} {'of ceil.':>8s} {'1->all':>6s} {'peak RSS':>8s}  dtypes",
    ]
    for r in steps:
        gflops = r["flops"] / r["step_seconds"]["median"] / 1e9
        speedup = speedups.get((r["model"], r["batch_size"])) if r["threads"] == "all" else None
        lines.append(f"   {r['model']:15s} {r['batch_size']:5d} {r['threads']:>3s} {_ms(r['step_seconds']):>28s}"
                     f" {r['images_per_second']:9.0f} {r['epoch_seconds']:8.1f} {r['flops'] / 1e6:7.1f}"
                     f" {gflops:7.1f} {gflops / r['ceiling_gflops']:8.0%} "
                     f"{f'{speedup:.2f}x' if speedup else '':>6s} {r['peak_rss_bytes'] / 2**20:5.0f} MiB"
                     f"  {','.join(r['dtypes'])}")
    lines += [f"   s/epoch = {EPOCH_IMAGES:,} / (images per second): training steps only, without data "
              f"loading or evaluation", "",
              f"   evaluation (train.evaluate: no gradient, batches of "
              f"{next((r['eval_batch_size'] for r in steps if 'eval_batch_size' in r), '?')}) over synthetic images:"]
    for r in steps:
        if "eval_images_per_second" in r:
            lines.append(f"   {r['model']:15s} threads {r['threads']:>3s}: {r['eval_images']:,} images in "
                         f"{r['eval_seconds']:.2f} s = {r['eval_images_per_second']:,.0f} images/s")
    first_batch = steps[0]["batch_size"] if steps else None
    for model in dict.fromkeys(r["model"] for r in steps):
        rows = {r["threads"]: r for r in steps if r["model"] == model and r["batch_size"] == first_batch}
        lines += ["", f"   where a step of {model} at batch {first_batch} goes: median ms over the profiled "
                  f"steps (share of the profiled step); rest = graph walk, zero_grad, Python glue"]
        ops = list(next(iter(rows.values()))["by_op_seconds"])
        lines.append(f"   {'op':24s}" + "".join(f" {'threads ' + t:>17s}" for t in rows))
        for op in ops:
            cells = ""
            for r in rows.values():
                by_op = r["by_op_seconds"]
                seconds, total = by_op.get(op, 0.0), by_op["step (profiled)"]
                cells += f" {seconds * 1e3:9.2f} ({seconds / total:4.0%})" if op != "step (profiled)" \
                    else f" {seconds * 1e3:9.2f}       "
            lines.append(f"   {op:24s}{cells}")
    return lines

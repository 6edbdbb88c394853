#!/bin/bash
# How much the bench's figures move over an hour: every 3 minutes, `bench --quick` with both
# cores, then with one BLAS thread; one summary line each. Run from anywhere:
#   bash data/bench/variability.sh > variability.txt      (25 rounds, about 75 minutes)
cd "$(dirname "$0")/../.." || exit 1  # the project root
json="${TMPDIR:-/tmp}/ack-bench-quick.json"
for i in $(seq 1 25); do
  for threads in default 1; do
    if [ "$threads" = default ]; then python -m ack_numpy bench --quick --json "$json" > /dev/null || exit 1
    else python -m ack_numpy bench --quick --threads 1 --json "$json" > /dev/null || exit 1; fi
    python - "$threads" "$json" <<'PY'
import json, sys, time
r = json.load(open(sys.argv[2]))
f = {(x["op"], x["shape"]): x for x in r["layers"] if x["pass"] == "forward_backward"}
step = {(x["model"], x["batch_size"]): x["step_seconds"]["median"] for x in r["training"]}
conv_b = [b for b in r["breakdown"] if b["op"] == "conv2d" and b["shape"] == "B"][0]
print(f"{time.strftime('%H:%M', time.gmtime())} UTC  threads {sys.argv[1]:7s}  ceiling {r['ceiling']['gflops']:5.0f} GFLOP/s"
      f"  adaptive A {f[('adaptive_conv2d','A')]['fraction_of_ceiling']:4.0%}  B {f[('adaptive_conv2d','B')]['fraction_of_ceiling']:4.0%}"
      f"  conv2d B im2col+col2im {conv_b['im2col_col2im_share']:4.0%}"
      f"  adaptive-lenet b64 step {step[('adaptive-lenet', 64)] * 1e3:5.2f} ms  lenet b64 {step[('lenet', 64)] * 1e3:5.2f} ms",
      flush=True)
PY
  done
  sleep 170
done

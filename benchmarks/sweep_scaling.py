"""Aggregate training throughput of an N-member sweep against one model, per conv form and dtype.

  python -m benchmarks.sweep_scaling [--sizes 1,4,16,64] [--forms auto] [--dtypes float32]
                                     [--vectorize auto] [--work 20] [--feed]
                                     [--peak_tflops T --peak_gbps G] [--out FILE]

The dSprites beta-VAE (batch 64); members differ in beta. Per N, form (`model.conv_impl`:
auto, xla, matmul, batched, onednn) and dtype, a row of `benchmarks.sweep_cost.sweep_row`:
step time, member-steps/s, images/s, achieved TFLOP/s (the function's FLOPs), the FLOPs and
bytes XLA's cost analysis counts per member-step, and the roofline bound on this device kind
(benchmarks/roofline.py; a CPU needs --peak_tflops and --peak_gbps). `--feed` also times the
step fed as `train_sweep` feeds it (dSprites rendered in the step) and reports the input's
share of the step. `speedup_vs_first` compares images/s with the first size of the same form
and dtype.
"""

import argparse
import json

from benchmarks import roofline
from benchmarks.common import environment, write_results
from benchmarks.sweep_cost import function_flops, sweep_row, with_form_and_dtype
from experiments import beta_vae

SHAPE = (64, 64, 1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1,4,16,64")
    parser.add_argument("--forms", default="auto", help="comma-separated model.conv_impl values")
    parser.add_argument("--dtypes", default="float32", help="comma-separated: float32, bfloat16")
    parser.add_argument("--vectorize", default="auto", help="auto | vmap | map")
    parser.add_argument("--work", type=int, default=20, help="member-steps per timed block (>= 1 step)")
    parser.add_argument("--feed", action="store_true", help="also time the on-device input feed")
    parser.add_argument("--peak_tflops", type=float, default=None)
    parser.add_argument("--peak_gbps", type=float, default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    env = environment()  # first: it sets the benchmarks' allocator before XLA allocates
    peak = roofline.peak_of(roofline.device_kind(), args.peak_tflops, args.peak_gbps)
    base = beta_vae.get_config()
    base.sweep.vectorize = args.vectorize
    rows = []
    for dtype in args.dtypes.split(","):
        useful = function_flops(with_form_and_dtype(base, "xla", dtype), SHAPE)
        for form in args.forms.split(","):
            first = None
            for n in [int(s) for s in args.sizes.split(",")]:
                config = base.copy_and_resolve_references()
                config.sweep.spec = "loss.beta=" + ",".join(str(1.0 + i) for i in range(n))
                iters = max(1, args.work // n)
                row = sweep_row(config, SHAPE, form, dtype, useful_flops=useful, peak=peak, iters=iters,
                                feed=args.feed)  # fmt: skip
                row["images_per_sec"] = n * config.train.batch_size / row["step_seconds"]
                first = first or row["images_per_sec"]
                row["speedup_vs_first"] = row["images_per_sec"] / first
                rows.append(row)
                print(json.dumps(row), flush=True)
    result = {"environment": env, "model": "beta_vae_dsprites_64x64, batch 64", "rows": rows}
    write_results(result, args.out)


if __name__ == "__main__":
    main()

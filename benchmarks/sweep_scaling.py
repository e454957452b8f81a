"""Aggregate training throughput of an N-member vmapped sweep against one model.

  python -m benchmarks.sweep_scaling [--sizes 1,4,16,64] [--work 20] [--out FILE]

The dSprites beta-VAE (batch 64); members differ in beta. Reports, per N, the
sweep step's time, aggregate images/s (N x batch / step time) and the speed-up
over training the N members one after another with the single-model step.
"""

import argparse
import json

from benchmarks.common import environment, sweep_step_rate, write_results
from experiments import beta_vae
from vae_jax.train import sweep_step


def measure(n: int, repeats: int, iters: int, vectorize: str) -> dict:
    config = beta_vae.get_config()
    config.sweep.vectorize = vectorize
    config.sweep.spec = "loss.beta=" + ",".join(str(1.0 + i) for i in range(n))
    seconds = 1.0 / sweep_step_rate(config, (64, 64, 1), repeats=repeats, iters=iters)
    images = n * config.train.batch_size / seconds
    return {
        "members": n,
        "vectorize": sweep_step.vectorization(config),
        "step_seconds": seconds,
        "images_per_sec": images,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1,4,16,64")
    parser.add_argument("--out", default=None)
    parser.add_argument("--vectorize", default="auto", help="auto | vmap | map")
    parser.add_argument("--work", type=int, default=20, help="member-steps per timed block (>= 1 step)")
    args = parser.parse_args()
    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        iters = max(1, args.work // n)
        rows.append(measure(n, repeats=3, iters=iters, vectorize=args.vectorize))
        rows[-1]["speedup_vs_sequential"] = rows[-1]["images_per_sec"] / rows[0]["images_per_sec"]
        print(json.dumps(rows[-1]), flush=True)
    result = {"environment": environment(), "model": "beta_vae_dsprites_64x64, batch 64", "rows": rows}
    write_results(result, args.out)


if __name__ == "__main__":
    main()

"""Aggregate training throughput of an N-member vmapped sweep against one model.

  python -m benchmarks.sweep_scaling [--sizes 1,4,16,64] [--out benchmarks/results/sweep_scaling_cpu.json]

The dSprites beta-VAE (batch 64); members differ in beta. Reports, per N, the
sweep step's time, aggregate images/s (N x batch / step time) and the speed-up
over training the N members one after another with the single-model step.
"""

import argparse
import json

import jax
import numpy as np

from benchmarks.common import environment, median_time, write_results
from experiments import beta_vae
from vae_jax.models import build_model
from vae_jax.train import sharding, sweep_spec, sweep_step


def measure(n: int, repeats: int, iters: int, vectorize: str) -> dict:
    config = beta_vae.get_config()
    config.sweep.vectorize = vectorize
    config.sweep.spec = "loss.beta=" + ",".join(str(1.0 + i) for i in range(n))
    configs = [sweep_spec.member_config(config, a) for a in sweep_spec.parse_sweep(config.sweep.spec, config)]
    model = build_model(config, (64, 64, 1))
    mesh = sharding.make_mesh(num_sweep=sweep_step.sweep_axis(n))
    members = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("sweep"))
    states, rngs = sweep_step.create_sweep_state(model, configs, (64, 64, 1))
    box = [jax.device_put(states, members)]
    rngs = jax.device_put(rngs, members)
    step = sweep_step.make_sweep_step(config, mesh)
    batch = sharding.global_batch(
        (np.random.default_rng(0).random((64, 64, 64, 1)) > 0.9).astype(np.float32), mesh
    )

    def one():
        box[0], metrics = step(box[0], batch, rngs)
        jax.block_until_ready(metrics["loss"])

    seconds = median_time(one, repeats=repeats, iters=iters, warmup=2)
    mode = sweep_step.vectorization(config)
    return {"members": n, "vectorize": mode, "step_seconds": seconds, "images_per_sec": n * 64 / seconds}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1,4,16,64")
    parser.add_argument("--out", default=None)
    parser.add_argument("--vectorize", default="auto", help="auto | vmap | map")
    args = parser.parse_args()
    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        iters = max(1, 20 // n)
        rows.append(measure(n, repeats=3, iters=iters, vectorize=args.vectorize))
        rows[-1]["speedup_vs_sequential"] = rows[-1]["images_per_sec"] / rows[0]["images_per_sec"]
        print(json.dumps(rows[-1]), flush=True)
    result = {"environment": environment(), "model": "beta_vae_dsprites_64x64, batch 64", "rows": rows}
    write_results(result, args.out)


if __name__ == "__main__":
    main()

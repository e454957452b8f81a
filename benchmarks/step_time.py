"""Train-step time of every model config, the PyTorch peer, and the input pipeline's cost.

  python -m benchmarks.step_time [--out benchmarks/results/step_time_cpu.json] [--no-torch]
  python -m benchmarks.step_time --isa native,AVX2 --only beta_vae_dsprites_64x64   # one row per ISA

For each config: the jitted train step on a batch already on the device (median of
repeats after warm-up) -> steps/s and images/s; then the same step fed by the
real input pipeline (prefetch thread, host->device), whose steps/s should be
within 5% of the in-memory figure. The PyTorch version of the dSprites beta-VAE
(benchmarks/torch_peer.py) is timed in the same run, in a process of its own; the
ratio is reported.

`--isa` runs the whole benchmark once per instruction set, each in a process of its
own with XLA, oneDNN and PyTorch capped at that ISA (`native`: uncapped), so a
machine with AVX-512 also measures what an AVX2-only CPU runs, in the same run.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import jax
import numpy as np

from benchmarks.common import environment, median_time, write_results
from experiments import beta_vae, vae, vq_vae
from vae_jax import data as data_lib
from vae_jax.data import pipeline
from vae_jax.models import build_model, num_params
from vae_jax.train import sharding
from vae_jax.train.feed import make_feed
from vae_jax.train.state import create_train_state
from vae_jax.train.steps import make_train_step


def _configs():
    mlp = vae.get_config()
    mlp.train.batch_size = 64
    conv = vae.get_config()
    conv.model.encoder, conv.model.channels, conv.model.dense = "conv", (32, 64), 256
    conv.train.batch_size = 64
    vq = vq_vae.get_config()
    vq.train.batch_size = 64
    # The same beta-VAE with the matrix-product form of its conv layers (what 'auto' uses on a CPU
    # without the oneDNN kernels), so both CPU forms are tracked.
    matmul = beta_vae.get_config()
    matmul.model.conv_impl = "matmul"
    return {
        "mlp_vae_28x28": (mlp, (28, 28, 1)),
        "conv_vae_28x28": (conv, (28, 28, 1)),
        "beta_vae_dsprites_64x64": (beta_vae.get_config(), (64, 64, 1)),
        "beta_vae_dsprites_64x64_matmul": (matmul, (64, 64, 1)),
        "vq_vae_28x28": (vq, (28, 28, 1)),
    }


def pipeline_dataset(config, shape) -> data_lib.Dataset:
    """The training data a run of config reads: procedural dSprites, or 10,000 in-memory images."""
    batch_size = config.train.batch_size
    if config.data.name == "dsprites":
        gt = data_lib.get_ground_truth_data("dsprites")
        batch_at = data_lib.pipeline.ground_truth_batch_fn(gt, batch_size, seed=0)
        return data_lib.Dataset(
            "dsprites", shape, batch_at, np.zeros((1, *shape), np.float32), ground_truth=gt
        )
    images = np.random.default_rng(0).random((10_000, *shape), np.float32)
    batch_at = data_lib.pipeline.array_batch_fn(images, batch_size, seed=0)
    return data_lib.Dataset("memory", shape, batch_at, images[:64], train_images=images)


def time_config(config, shape) -> dict:
    model = build_model(config, shape)
    mesh = sharding.make_mesh()
    repl, data = sharding.replicated(mesh), sharding.data_sharding(mesh)
    state = jax.device_put(create_train_state(model, config, shape, jax.random.key(0)), repl)
    step = jax.jit(make_train_step(config.loss.likelihood, config.data.binarize),
                   in_shardings=(repl, data, repl), out_shardings=(repl, repl), donate_argnums=0)  # fmt: skip
    batch_size = config.train.batch_size
    rng = jax.random.key(1)
    batch = sharding.global_batch(np.random.default_rng(0).random((batch_size, *shape), np.float32), mesh)
    box = [state, None]

    def steps(get_batch, n):
        for _ in range(n):
            box[0], box[1] = step(box[0], get_batch(), rng)
        jax.block_until_ready(box[1]["loss"])

    def dispatch():
        box[0], box[1] = step(box[0], batch, rng)

    seconds = median_time(dispatch, sync=lambda: jax.block_until_ready(box[1]))
    result = {
        "params": num_params(box[0].params),
        "batch_size": batch_size,
        "steps_per_sec": 1 / seconds,
        "images_per_sec": batch_size / seconds,
    }
    # The same step fed as a run feeds it (`feed.make_feed`): procedural dSprites rendered in the
    # step and an in-memory array (as for MNIST-like data) gathered in the step (data.on_device),
    # and, for comparison, both made on the host by the prefetch thread. Alternating blocks with
    # the in-memory batch, so both see the same machine. The prefetch thread fills its queue while
    # an in-memory block runs; those batches are dropped before each timed block, which would
    # otherwise start with a few batches made for free (a short block's rate, not a run's).
    dataset = pipeline_dataset(config, shape)
    block = max(int(0.5 / seconds), 5)  # ~0.5 s per block
    for mode in ("pipeline", "host_pipeline"):
        config.data.on_device = mode == "pipeline"
        feed = make_feed(config, dataset, mesh)
        piped_step = feed.step
        piped_state = jax.device_put(create_train_state(model, config, shape, jax.random.key(0)), repl)
        batches = feed.batches(0)
        piped, in_memory = [], []
        for _ in range(10):
            if mode == "host_pipeline":
                for _ in range(pipeline.PREFETCH_DEPTH):
                    next(batches)
            t = time.perf_counter()
            for _ in range(block):
                piped_state, m = piped_step(piped_state, next(batches), rng)
            jax.block_until_ready(m["loss"])
            piped.append(block / (time.perf_counter() - t))
            t = time.perf_counter()
            steps(lambda: batch, block)
            in_memory.append(block / (time.perf_counter() - t))
        batches.close()
        # The first block includes the compilation of the piped step.
        result[f"{mode}_steps_per_sec"] = float(np.median(piped[1:]))
        result[f"{mode}_vs_in_memory"] = float(np.median(piped[1:]) / np.median(in_memory[1:]))
    return result


def time_torch(batch_size: int = 64, device: str = "cpu") -> dict:
    import torch

    from benchmarks.torch_peer import BetaVAE, make_step

    torch.manual_seed(0)
    model = BetaVAE().to(device)
    step = make_step(model)
    x = (torch.rand(batch_size, 1, 64, 64) > 0.9).float().to(device)

    seconds = median_time(lambda: step(x), sync=torch.cuda.synchronize if device == "cuda" else None)
    result = {
        "params": sum(p.numel() for p in model.parameters()),
        "steps_per_sec": 1 / seconds,
        "images_per_sec": batch_size / seconds,
        "torch": torch.__version__,
    }
    if device == "cuda":
        return {**result, "device": torch.cuda.get_device_name()}
    return {**result, "device": "cpu", "threads": torch.get_num_threads()}


def time_torch_in_subprocess(device: str) -> dict:
    """time_torch() in a fresh process (with vae_jax's allocator settings, which help PyTorch too).

    In the process that has just run the JAX steps, PyTorch measured ~25 % slower: the
    OpenMP threads of oneDNN's kernels (vae_jax.ops.native) and PyTorch's own compete. Each
    framework therefore gets a process of its own, one after the other. On a GPU both run on
    it (PyTorch eager, as its users write it; JAX's step jitted).
    """
    cmd = [sys.executable, "-m", "benchmarks.step_time", "--torch-only", device]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"timing PyTorch failed (pass --no-torch to skip it):\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# Environment that caps each framework at an instruction set: XLA's code generator, oneDNN's kernel
# dispatch (ours and PyTorch's) and PyTorch's own ATen kernels.
ISA_ENV = {
    "AVX2": {
        "XLA_FLAGS": "--xla_cpu_max_isa=AVX2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "ATEN_CPU_CAPABILITY": "avx2",
    },
    "AVX512": {
        "XLA_FLAGS": "--xla_cpu_max_isa=AVX512",
        "ONEDNN_MAX_CPU_ISA": "AVX512_CORE",
        "ATEN_CPU_CAPABILITY": "avx512",
    },
}


def run_per_isa(isas: list[str], argv: list[str]) -> dict:
    """The benchmark with `argv`, once per ISA, each in a fresh process with that ISA's caps."""
    results = {"environment": environment(), "isas": {}}
    for isa in isas:
        if isa != "native" and isa not in ISA_ENV:
            raise SystemExit(f"--isa {isa!r}: valid: native, {', '.join(ISA_ENV)}")
        env = dict(os.environ, **ISA_ENV.get(isa, {}))
        cmd = [sys.executable, "-m", "benchmarks.step_time", "--json-only", *argv]
        child = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if child.returncode:
            raise RuntimeError(f"the benchmark under --isa {isa} failed:\n{child.stderr[-3000:]}")
        results["isas"][isa] = json.loads(child.stdout.strip().splitlines()[-1])
        print(isa, json.dumps(results["isas"][isa].get("jax_over_torch")), flush=True)
    return results


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=None)
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--torch-only", metavar="DEVICE", help="print time_torch(device) as JSON, exit")
    parser.add_argument("--only", default=None, help="comma-separated config names")
    parser.add_argument("--isa", default=None, help="comma-separated: native, " + ", ".join(ISA_ENV))
    parser.add_argument("--json-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.torch_only:
        print(json.dumps(time_torch(device=args.torch_only)))
        return
    if args.isa:
        argv = [*(["--only", args.only] if args.only else []), *(["--no-torch"] if args.no_torch else [])]
        write_results(run_per_isa(args.isa.split(","), argv), args.out)
        return
    results = {"environment": environment(), "configs": {}}
    for name, (config, shape) in _configs().items():
        if args.only and name not in args.only.split(","):
            continue
        results["configs"][name] = time_config(config, shape)
        if not args.json_only:
            print(name, json.dumps(results["configs"][name]), flush=True)
    if not args.no_torch:
        device = "cuda" if jax.default_backend() == "gpu" else "cpu"
        results["torch_beta_vae_dsprites"] = time_torch_in_subprocess(device)
        jax_rate = results["configs"].get("beta_vae_dsprites_64x64", {}).get("steps_per_sec")
        if jax_rate:
            results["jax_over_torch"] = jax_rate / results["torch_beta_vae_dsprites"]["steps_per_sec"]
        if not args.json_only:
            print("torch", json.dumps(results["torch_beta_vae_dsprites"]), flush=True)
    if args.json_only:
        print(json.dumps(results))
        return
    write_results(results, args.out)


if __name__ == "__main__":
    main()

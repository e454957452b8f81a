"""Timing helpers and the environment record shared by the benchmarks."""

import json
import os
import platform
import statistics
import time
from pathlib import Path

import jax


def environment() -> dict:
    """Device and versions, recorded with every result."""
    import flax
    import optax

    from vae_jax.ops import allocator, resolve_impl

    return {
        "device": str(jax.devices()[0].device_kind),
        "platform": jax.default_backend(),
        "num_devices": jax.device_count(),
        "cpu": cpu_model(),
        "cpu_isa": cpu_isa(),
        # Caps in force (benchmarks.step_time --isa sets them): XLA, oneDNN, PyTorch's ATen.
        "isa_caps": {
            k: os.environ[k]
            for k in ("XLA_FLAGS", "ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")
            if k in os.environ
        },
        "jax": jax.__version__,
        "flax": flax.__version__,
        "optax": optax.__version__,
        "python": platform.python_version(),
        "malloc_kept": allocator.keep_freed_memory(),  # see vae_jax/ops/allocator.py
        "conv_impl_auto": resolve_impl("auto"),  # the 4x4 stride-2 layers' form (vae_jax/ops)
    }


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo ({} where there is none)."""
    try:
        block = open("/proc/cpuinfo").read().split("\n\n")[0]
    except OSError:
        return {}
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in block.splitlines())}


def cpu_model() -> str:
    return _cpuinfo().get("model name") or platform.processor() or platform.machine()


def cpu_isa() -> str:
    """The widest x86 vector ISA the CPU has: 'AVX512', 'AVX2', 'AVX', 'SSE4.1' (or the machine)."""
    flags = set(_cpuinfo().get("flags", "").split())
    for isa, flag in (("AVX512", "avx512f"), ("AVX2", "avx2"), ("AVX", "avx"), ("SSE4.1", "sse4_1")):
        if flag in flags:
            return isa
    return platform.machine()


def median_time(fn, repeats: int = 5, iters: int = 20, warmup: int = 3, sync=None) -> float:
    """Median over `repeats` of the mean seconds per call of fn() over `iters` calls (after warm-up).

    sync() waits for the work of the calls before it; it is called once after each block of
    `iters` calls, as a training loop waits only when it reads a result (JAX dispatches
    asynchronously: waiting after every step adds the device's round trip to each, ~1 ms on a
    GPU). Without sync, fn must block until its work is done.
    """
    wait = sync or (lambda: None)
    for _ in range(warmup):
        fn()
    wait()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(iters):
            fn()
        wait()
        times.append((time.perf_counter() - start) / iters)
    return statistics.median(times)


def save_results(result: dict, out: str | None) -> None:
    """Writes the result as JSON to out (nothing without out); a benchmark that saves as it goes
    keeps what it finished if it is stopped."""
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=2))


def write_results(result: dict, out: str | None) -> None:
    """Prints the result as JSON and, with out, writes it there."""
    print(json.dumps(result, indent=2))
    save_results(result, out)


def train_step_rate(step, state, batch, iters: int = 10) -> float:
    """Median steps per second of a jitted (state, batch, rng) -> (state, metrics) train step."""
    box = [state, None]
    rng = jax.random.key(1)

    def one():
        box[0], box[1] = step(box[0], batch, rng)

    return 1.0 / median_time(one, repeats=3, iters=iters, sync=lambda: jax.block_until_ready(box[1]))


def train_step_and_inputs(config, shape):
    """(jitted train step, initial state, a uniform batch) of config's model on inputs of shape."""
    import numpy as np

    from vae_jax.models import build_model
    from vae_jax.train.state import create_train_state
    from vae_jax.train.steps import make_train_step

    model = build_model(config, shape)
    state = create_train_state(model, config, shape, jax.random.key(0))
    step = jax.jit(
        make_train_step(config.loss.likelihood, config.data.binarize),
        donate_argnums=0,
    )
    batch = np.random.default_rng(0).random((config.train.batch_size, *shape), np.float32)
    return step, state, batch

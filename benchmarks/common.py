"""Timing helpers and the environment record shared by the benchmarks."""

import json
import platform
import statistics
import time
from pathlib import Path

import jax


def environment() -> dict:
    """Device and versions, recorded with every result."""
    import flax
    import optax

    from vae_jax import _malloc
    from vae_jax.models.strided import resolve_impl

    return {
        "device": str(jax.devices()[0].device_kind),
        "platform": jax.default_backend(),
        "num_devices": jax.device_count(),
        "cpu": platform.processor() or platform.machine(),
        "jax": jax.__version__,
        "flax": flax.__version__,
        "optax": optax.__version__,
        "python": platform.python_version(),
        "malloc_kept": _malloc.keep_freed_memory(),  # see vae_jax/_malloc.py
        "conv_impl_auto": resolve_impl("auto"),  # the 4x4 stride-2 layers' form (vae_jax/models/strided.py)
    }


def median_time(fn, repeats: int = 5, iters: int = 20, warmup: int = 3) -> float:
    """Median over `repeats` of the mean seconds per call of fn() over `iters` calls (after warm-up).

    fn must block until its work is done (e.g. jax.block_until_ready).
    """
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(iters):
            fn()
        times.append((time.perf_counter() - start) / iters)
    return statistics.median(times)


def write_results(result: dict, out: str | None) -> None:
    """Prints the result as JSON and, with out, writes it there."""
    text = json.dumps(result, indent=2)
    print(text)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text)

"""One sweep program measured: its step time, XLA's count of its FLOPs and bytes, the share of
its on-device input feed, and the roofline bound of the chip it runs on.

`sweep_row(config, shape, form, dtype)` trains `config.sweep.spec` as one program
(`sweep_step.make_sweep_step`, members sharded over the devices) with the conv layers in
`form` (`model.conv_impl`; 'auto' resolves as in a sweep) and computation in `dtype`, all
members on one batch of train.batch_size, and reports:
  - member-steps/s and the step time (median of blocks, one wait per block);
  - `useful_gflops_per_member_step`: the function's FLOPs, XLA's count of one member's step with
    XLA's convolutions compiled for the CPU (what `study_cost` counts; the same for every form:
    products over padding taps are not in it); `achieved_tflops` divides it by the step time;
  - `executed_gflops_per_member_step` and `bytes_per_member_step`: XLA's cost analysis of the
    program that ran, on this device (a GPU's analysis may leave library calls' FLOPs out);
  - with `feed`, the step fed as `train_sweep` feeds it (procedural dSprites rendered in the
    step from chunks of host draws, `feed.make_sweep_feed`) in blocks alternating with the
    fixed batch: `feed_share` = 1 - (fixed-batch time / fed time);
  - `roofline` (benchmarks/roofline.py) from the larger of the two FLOP counts and the bytes.
"""

import time

import jax
import numpy as np

from benchmarks import roofline
from benchmarks.common import train_step_and_inputs
from vae_jax import data as data_lib
from vae_jax import ops
from vae_jax.models import build_model
from vae_jax.train import feed as feed_lib
from vae_jax.train import sharding, sweep_spec, sweep_step


def with_form_and_dtype(config, form: str, dtype: str):
    """A copy of config with its conv layers in `form` and its computation in `dtype`."""
    config = config.copy_and_resolve_references()
    config.model.conv_impl = form
    if "dtype" in config.model:
        config.model.dtype = dtype
    elif dtype != "float32":
        raise SystemExit(f"dtype {dtype!r}: this checkout's configs have no model.dtype (float32 only)")
    return config


def function_flops(config, shape) -> float:
    """One member's train-step FLOPs as XLA counts them with its own convolutions, on the CPU (the
    GPU's analysis leaves cuDNN's convolutions out)."""
    config = config.copy_and_resolve_references()
    config.model.conv_impl = "xla"
    with jax.default_device(jax.devices("cpu")[0]):
        step, state, batch = train_step_and_inputs(config, shape)
        return roofline.cost_of(step.lower(state, batch, jax.random.key(1)).compile())["flops"]


def _program(config, shape):
    """(the sweep's jitted step, its stacked states and rngs, the mesh, the number of members)."""
    configs = [sweep_spec.member_config(config, a) for a in sweep_spec.parse_sweep(config.sweep.spec, config)]
    model = build_model(configs[0], shape)
    mesh = sharding.make_mesh(num_sweep=sweep_step.sweep_axis(len(configs)))
    members = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("sweep"))
    states, rngs = sweep_step.create_sweep_state(model, configs, shape)
    return jax.device_put(states, members), jax.device_put(rngs, members), mesh, len(configs)


def _blocks(run_block, repeats: int) -> list[float]:
    """Seconds of `repeats` calls of run_block (each ends waiting for its work)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run_block()
        times.append(time.perf_counter() - start)
    return times


def compiled_program(config, shape):
    """(the sweep's compiled step, its states, one fixed batch, the rngs, the mesh, the members):
    all of config's members on one binary batch of train.batch_size, as `measure` times them."""
    states, rngs, mesh, n = _program(config, shape)
    images = (np.random.default_rng(0).random((config.train.batch_size, *shape)) > 0.9).astype(np.float32)
    batch = sharding.global_batch(images, mesh)
    compiled = sweep_step.make_sweep_step(config, mesh).lower(states, batch, rngs).compile()
    return compiled, states, batch, rngs, mesh, n


def measure(config, shape, repeats: int = 3, iters: int = 5, feed: bool = False) -> dict:
    """Step seconds and XLA's cost of the sweep program of config (see the module docstring)."""
    compiled, states, batch, rngs, mesh, n = compiled_program(config, shape)
    box = {"fixed": states}

    def fixed_block():
        for _ in range(iters):
            box["fixed"], metrics = compiled(box["fixed"], batch, rngs)
        jax.block_until_ready(metrics)

    fixed_block()  # warm-up
    result = {"members": n, **roofline.cost_of(compiled)}
    if not feed:
        result["step_seconds"] = float(np.median(_blocks(fixed_block, repeats))) / iters
        return result
    gt = data_lib.get_ground_truth_data(config.data.name)
    dataset = data_lib.Dataset(
        config.data.name, shape, data_lib.pipeline.ground_truth_batch_fn(gt, config.train.batch_size, 0),
        None, ground_truth=gt,
    )  # fmt: skip
    config = config.copy_and_resolve_references()
    config.data.on_device = True
    fed = feed_lib.make_sweep_feed(config, dataset, mesh)
    box["fed"], stream = _program(config, shape)[0], fed.batches(0)

    def fed_block():
        for _ in range(iters):
            box["fed"], metrics = fed.step(box["fed"], next(stream), rngs)
        jax.block_until_ready(metrics)

    fed_block()  # compiles
    fixed, fed_times = [], []
    for _ in range(repeats):  # alternating, so both see the same machine
        fixed += _blocks(fixed_block, 1)
        fed_times += _blocks(fed_block, 1)
    stream.close()
    result["step_seconds"] = float(np.median(fixed)) / iters
    result["fed_step_seconds"] = float(np.median(fed_times)) / iters
    result["feed_share"] = 1.0 - result["step_seconds"] / result["fed_step_seconds"]
    return result


def sweep_row(config, shape, form: str, dtype: str, *, useful_flops: float, peak, repeats=3, iters=5,
              feed=False) -> dict:  # fmt: skip
    """The measured row of config's sweep with its conv layers in `form`, computing in `dtype`."""
    config = with_form_and_dtype(config, form, dtype)
    vmapped = sweep_step.vectorization(config) == "vmap"
    m = measure(config, shape, repeats, iters, feed)
    n, seconds = m["members"], m["step_seconds"]
    flops = max(m["flops"], n * useful_flops)  # a GPU's analysis may leave library calls out
    row = {
        "members": n,
        "form": form,
        "resolves_to": ops.resolve_impl(form, vmapped=vmapped) if form == "auto" else form,
        "dtype": dtype,
        "vectorize": sweep_step.vectorization(config),
        "step_seconds": seconds,
        "member_steps_per_sec": n / seconds,
        "useful_gflops_per_member_step": useful_flops / 1e9,
        "achieved_tflops": n * useful_flops / seconds / 1e12,
        "executed_gflops_per_member_step": m["flops"] / n / 1e9,
        "bytes_per_member_step": m["bytes"] / n,
        "roofline": roofline.roofline(flops, m["bytes"], seconds, peak, dtype),
    }
    if feed:
        row.update(fed_step_seconds=m["fed_step_seconds"], feed_share=m["feed_share"])
    return row

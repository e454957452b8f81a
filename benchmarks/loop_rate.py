"""The training loop's own rate against its step's pipeline rate, interleaved in one process.

  python -m benchmarks.loop_rate [--config experiments/beta_vae.py:quick] [--steps 3000]
                                 [--segment 300] [--variants full,no_checkpoints,...] [--out FILE]

The real loop (`engine.train_loop` with a real `Run`: workdir writer, metrics.jsonl and
TensorBoard records every train.log_every steps, Orbax checkpoints every
train.checkpoint_every, the feed a single run uses) trains the config from scratch with
evaluation off. Every `--segment` steps the loop's evaluation hook, which the benchmark owns,
first waits for the loop's work and then times, for `--segment` steps each on a state of its
own, the same jitted step fed by a stream of its own (the "pipeline" rate of
`benchmarks.step_time`) and the plain step on one batch already on the device (its "in-memory"
rate), each a block with one wait at its end. So the loop and the blocks alternate every few
seconds and share the machine's load; the first segment and block of each kind (compilation)
are left out, and the loop's time excludes the hook's. loop / pipeline should be near 1.

`--variants` reruns the loop without one of its parts, each a fresh run in the same process,
to attribute a gap: `no_checkpoints` (no Orbax saves), `no_records` (no metrics.jsonl or
TensorBoard writes; the non-finite check stays), `host_feed` (data.on_device off: batches from
the host's prefetch thread). Each variant's ratio is against its own interleaved pipeline.
"""

import argparse
import dataclasses
import importlib.util
import itertools
import math
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import jax

from benchmarks.common import environment, write_results
from vae_jax.train import engine, evaluation, sharding
from vae_jax.train.feed import make_feed
from vae_jax.train.steps import make_train_step
from vae_jax.train.validate import validate_config
from vae_jax.train.workdir import Workdir

VARIANTS = ("full", "no_checkpoints", "no_records", "host_feed")


def load_config(spec: str):
    """A config from 'path/to/file.py[:preset]'."""
    path, _, preset = spec.partition(":")
    module_spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.get_config(preset or None)


@dataclasses.dataclass
class _Block:
    """A timed block's step, its inputs and its own state; (steps, seconds, CPU seconds) per block."""

    step: Callable
    inputs: Iterator
    state: object
    times: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class _Interleaved:
    """The evaluation hook: ends a loop segment, times one block of each kind, starts the next."""

    blocks: dict[str, _Block]
    rng: jax.Array
    steps: int
    loop: list = dataclasses.field(default_factory=list)  # (steps, seconds, CPU seconds) per segment
    mark: tuple = (0.0, 0.0)  # when the current segment or block started: wall and CPU time
    last_step: int = 0

    def start(self) -> None:
        self.mark = (time.perf_counter(), time.process_time())

    def _elapsed(self, steps: int) -> tuple[int, float, float]:
        return steps, time.perf_counter() - self.mark[0], time.process_time() - self.mark[1]

    def __call__(self, loop_state) -> None:
        jax.block_until_ready(loop_state)
        step = int(jax.device_get(loop_state.step))
        self.end(step)
        for block in self.blocks.values():
            self.start()
            for _ in range(self.steps):
                block.state, metrics = block.step(block.state, next(block.inputs), self.rng)
            jax.block_until_ready(metrics)
            block.times.append(self._elapsed(self.steps))
        self.start()
        self.last_step = step

    def end(self, step: int) -> None:
        """A loop segment ends at `step`, whose work is done."""
        self.loop.append(self._elapsed(step - self.last_step))


def _blocks(config, run, feed) -> dict[str, _Block]:
    """The pipeline block (the loop's own jitted step and a stream of its own) and the in-memory
    block (`step_time`'s: one batch already on the device, the step without a feed)."""
    repl, data = sharding.replicated(run.mesh), sharding.data_sharding(run.mesh)
    plain = jax.jit(
        make_train_step(config.loss.likelihood, config.data.binarize),
        in_shardings=(repl, data, repl), out_shardings=(repl, repl), donate_argnums=0,
    )  # fmt: skip
    batch = sharding.global_batch(run.dataset.batch_at(0), run.mesh)
    return {
        "pipeline": _Block(feed.step, feed.batches(0), engine.init_state(run)),
        "in_memory": _Block(plain, itertools.repeat(batch), engine.init_state(run)),
    }


def run_variant(config, variant: str, workdir: Path) -> dict:
    """The loop's, the interleaved pipeline's and the in-memory step's steps/s for one variant."""
    config = config.copy_and_resolve_references()
    if variant == "host_feed":
        config.data.on_device = False
    writer = Workdir(workdir)
    run = engine.build_run(config, writer, None if variant == "no_checkpoints" else workdir)
    try:
        feed = make_feed(config, run.dataset, run.mesh)
        rng = jax.random.fold_in(jax.random.key(config.seed), 1)
        hook = _Interleaved(_blocks(config, run, feed), rng, config.eval.every)
        num_steps = config.train.num_steps

        def log(step, metrics):
            if variant != "no_records":
                writer.log(step, "train", evaluation.train_record(metrics))
            if step == num_steps:
                hook.end(step)

        hooks = engine.Hooks(log=log, evaluate=hook, epoch_sums=evaluation.EPOCH_SUMS)
        hook.start()
        engine.train_loop(run, engine.init_state(run), lambda s, b: feed.step(s, b, rng), feed.batches, hooks)
        hook.blocks["pipeline"].inputs.close()
    finally:
        run.close()
        writer.close()
    loop = hook.loop[1:]  # the loop's first segment compiles (the blocks compile before timing)
    rates = {"loop": _rate(loop), **{k: _rate(b.times[1:]) for k, b in hook.blocks.items()}}
    return {
        "loop_steps_per_sec": rates["loop"],
        "pipeline_steps_per_sec": rates["pipeline"],
        "in_memory_steps_per_sec": rates["in_memory"],
        "loop_vs_pipeline": rates["loop"] / rates["pipeline"],
        "loop_vs_in_memory": rates["loop"] / rates["in_memory"],
        # The process's CPU time (all its threads) per step: what a loaded machine's wall time hides.
        "loop_cpu_ms_per_step": _cpu_ms(loop),
        "pipeline_cpu_ms_per_step": _cpu_ms(hook.blocks["pipeline"].times[1:]),
        "loop_segments_steps_per_sec": [n / t for n, t, _ in loop],
        "pipeline_blocks_steps_per_sec": [n / t for n, t, _ in hook.blocks["pipeline"].times],
    }


def _cpu_ms(parts: list) -> float:
    return 1e3 * sum(c for _, _, c in parts) / sum(n for n, _, _ in parts)


def _rate(parts: list) -> float:
    """Steps per second over (steps, seconds, CPU seconds) parts."""
    return sum(n for n, _, _ in parts) / sum(t for _, t, _ in parts)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="experiments/beta_vae.py:quick")
    parser.add_argument("--steps", type=int, default=None, help="default: the config's train.num_steps")
    parser.add_argument("--segment", type=int, default=300, help="steps per loop segment and pipeline block")
    parser.add_argument("--variants", default="full", help=f"comma-separated: {', '.join(VARIANTS)}")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    variants = args.variants.split(",")
    if unknown := set(variants) - set(VARIANTS):
        parser.error(f"--variants: {sorted(unknown)} unknown; valid: {list(VARIANTS)}")
    config = load_config(args.config)
    config.train.num_steps = args.steps or config.train.num_steps
    config.eval.every = args.segment  # the benchmark's hook; the run's evaluation is off
    if math.lcm(args.segment, config.train.checkpoint_every) < config.train.num_steps:
        parser.error("--segment: a pipeline block would start at a checkpoint step (and overlap its save)")
    validate_config(config)
    env = environment()
    results = {"environment": env, "config": args.config, "steps": config.train.num_steps, "variants": {}}
    for variant in variants:
        with tempfile.TemporaryDirectory() as workdir:
            results["variants"][variant] = run_variant(config, variant, Path(workdir))
        row = results["variants"][variant]
        print(variant, {k: round(v, 3) for k, v in row.items() if not isinstance(v, list)}, flush=True)
    write_results(results, args.out)


if __name__ == "__main__":
    main()

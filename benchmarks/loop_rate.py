"""The training loop's own rate against its step's pipeline rate, interleaved in one process.

  python -m benchmarks.loop_rate [--config experiments/beta_vae.py:quick] [--steps 3000]
                                 [--segment 300] [--variants full,no_checkpoints,...] [--out FILE]

The real loop (`engine.train_loop` with a real `Run`: workdir writer, metrics.jsonl and
TensorBoard records every train.log_every steps, Orbax checkpoints every
train.checkpoint_every, the feed a single run uses) trains the config from scratch with
evaluation off. Every `--segment` steps the loop's evaluation hook, which the benchmark owns,
first waits for the loop's work and then times the same jitted step fed by the same kind of
stream for `--segment` steps on a state of its own, the way `benchmarks.step_time` times its
"pipeline" rate (a block of steps, one wait at its end). So loop and pipeline alternate every
few seconds and share the machine's load; the first segment (compilation) is left out, and the
loop's time excludes the hook's. The ratio loop / pipeline should be near 1.

`--variants` reruns the loop without one of its parts, each a fresh run in the same process,
to attribute a gap: `no_checkpoints` (no Orbax saves), `no_records` (no metrics.jsonl or
TensorBoard writes; the non-finite check stays), `host_feed` (data.on_device off: batches from
the host's prefetch thread). Each variant's ratio is against its own interleaved pipeline.
"""

import argparse
import dataclasses
import importlib.util
import math
import tempfile
import time
from pathlib import Path

import jax

from benchmarks.common import environment, write_results
from vae_jax.train import engine, evaluation
from vae_jax.train.feed import make_feed
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
class _Interleaved:
    """The evaluation hook: ends a loop segment, times a pipeline block, starts the next segment."""

    step: object  # the feed's jitted step (shared with the loop: compiled once)
    stream: object  # the pipeline's own step inputs
    state: object  # the pipeline's own state
    rng: jax.Array
    steps: int
    loop: list = dataclasses.field(default_factory=list)  # (steps, seconds, CPU seconds) per segment
    pipeline: list = dataclasses.field(default_factory=list)  # (steps, seconds, CPU seconds) per block
    mark: tuple = (0.0, 0.0)  # when the current loop segment started: wall and CPU time
    last_step: int = 0

    def start(self) -> None:
        self.mark = (time.perf_counter(), time.process_time())

    def __call__(self, loop_state) -> None:
        jax.block_until_ready(loop_state)
        step = int(jax.device_get(loop_state.step))
        self.end(step)
        self.start()
        for _ in range(self.steps):
            self.state, metrics = self.step(self.state, next(self.stream), self.rng)
        jax.block_until_ready(metrics)
        self.pipeline.append(
            (self.steps, time.perf_counter() - self.mark[0], time.process_time() - self.mark[1])
        )
        self.start()
        self.last_step = step

    def end(self, step: int) -> None:
        """A loop segment ends at `step`, whose work is done."""
        wall, cpu = time.perf_counter() - self.mark[0], time.process_time() - self.mark[1]
        self.loop.append((step - self.last_step, wall, cpu))


def run_variant(config, variant: str, workdir: Path) -> dict:
    """The loop's and the interleaved pipeline's steps/s for one variant."""
    config = config.copy_and_resolve_references()
    if variant == "host_feed":
        config.data.on_device = False
    writer = Workdir(workdir)
    run = engine.build_run(config, writer, None if variant == "no_checkpoints" else workdir)
    try:
        feed = make_feed(config, run.dataset, run.mesh)
        rng = jax.random.fold_in(jax.random.key(config.seed), 1)
        hook = _Interleaved(feed.step, feed.batches(0), engine.init_state(run), rng, config.eval.every)
        num_steps = config.train.num_steps

        def log(step, metrics):
            if variant != "no_records":
                writer.log(step, "train", evaluation.train_record(metrics))
            if step == num_steps:
                hook.end(step)

        hooks = engine.Hooks(log=log, evaluate=hook, epoch_sums=evaluation.EPOCH_SUMS)
        hook.start()
        engine.train_loop(run, engine.init_state(run), lambda s, b: feed.step(s, b, rng), feed.batches, hooks)
        hook.stream.close()
    finally:
        run.close()
        writer.close()
    loop, pipeline = hook.loop[1:], hook.pipeline  # the loop's first segment compiles
    loop_rate, pipeline_rate = _rate(loop), _rate(pipeline)
    return {
        "loop_steps_per_sec": loop_rate,
        "pipeline_steps_per_sec": pipeline_rate,
        "loop_vs_pipeline": loop_rate / pipeline_rate,
        # The process's CPU time (all its threads) per step: what a loaded machine's wall time hides.
        "loop_cpu_ms_per_step": 1e3 * sum(c for _, _, c in loop) / sum(n for n, _, _ in loop),
        "pipeline_cpu_ms_per_step": 1e3 * sum(c for _, _, c in pipeline) / sum(n for n, _, _ in pipeline),
        "loop_segments_steps_per_sec": [n / t for n, t, _ in loop],
        "pipeline_blocks_steps_per_sec": [n / t for n, t, _ in pipeline],
    }


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

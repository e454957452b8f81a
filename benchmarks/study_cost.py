"""What the whole Locatello et al. 2019 study costs: members, steps, and time from measured step costs.

For each of the six methods (`experiments/ablations/locatello2019_study.py`), the study's network
(the conv VAE of `beta_vae.py`, batch 64; FactorVAE with its 6 x 1000 discriminator) is measured
on this machine's default device:
  - FLOPs per step, from XLA's cost analysis of the step lowered with `conv_impl='xla'` for the
    CPU (the same function as every other form; oneDNN's and cuDNN's custom calls are opaque to
    the analysis);
  - steps per second of one member's step, with `conv_impl='auto'`;
  - with `--sweep_seeds=K`, steps per second of the method's grid trained as one program of
    (grid values) x K members (`vae_jax.train.sweep_step`, 'auto' vectorization: vmap off the CPU), which is
    how the study runs on an accelerator: one member's batch of 64 leaves a GPU mostly idle.
The study's total (members x 300k steps) is then given in device time at the measured rates (the
sweep's where measured, else one member's, members one after another), and, for comparison, at a
stated sustained throughput from the FLOP count.

  python -m benchmarks.study_cost [--seeds=50] [--sweep_seeds=0] [--sustained_tflops=15] [--methods=...]
                                 [--out=FILE]
"""

import argparse
import time

import jax

from benchmarks.common import (
    environment,
    sweep_step_rate,
    train_step_and_inputs,
    train_step_rate,
    write_results,
)
from experiments.ablations import locatello2019_study
from vae_jax.train.sweep_spec import member_config, parse_sweep

SHAPE = (64, 64, 1)
STEPS_PER_MEMBER = 300_000  # unsupervised_study_v1


def method_config(method: str, conv_impl: str):
    """The config of the first member of method's grid in the study."""
    study = locatello2019_study.get_config(method)
    config = member_config(study, parse_sweep(study.sweep.spec, study)[0])
    config.model.conv_impl = conv_impl
    return config


def step_flops(method: str) -> float:
    """XLA's FLOP count of one member's train step, the conv layers as XLA convolutions, compiled
    for the CPU: on a GPU the analysis leaves out cuDNN's convolutions (custom calls; an H200
    counted 0.25 GFLOP of the beta-VAE step's 5.66)."""
    with jax.default_device(jax.devices("cpu")[0]):
        step, state, batch = train_step_and_inputs(method_config(method, "xla"), SHAPE)
        analysis = step.lower(state, batch, jax.random.key(1)).compile().cost_analysis()
    analysis = analysis[0] if isinstance(analysis, list) else analysis
    return float(analysis["flops"])


def steps_per_second(method: str) -> float:
    """Median steps per second of one member's step on the default device (conv_impl='auto')."""
    return train_step_rate(*train_step_and_inputs(method_config(method, "auto"), SHAPE))


def grid_size(method: str) -> int:
    """Members of method's grid with one seed."""
    config = locatello2019_study.get_config(method)
    return len(parse_sweep(locatello2019_study.study_spec([method], num_seeds=1), config))


def sweep_member_steps_per_second(method: str, seeds: int) -> float:
    """Member-steps per second of method's grid x `seeds` seeds trained as one program."""
    config = locatello2019_study.get_config(method)
    config.sweep.spec = locatello2019_study.study_spec([method], num_seeds=seeds)
    return grid_size(method) * seeds * sweep_step_rate(config, SHAPE)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=50, help="seeds per grid point (the paper: 50)")
    parser.add_argument(
        "--sweep_seeds", type=int, default=0, help="also time each grid x this many seeds as one program"
    )
    parser.add_argument("--sustained_tflops", type=float, default=15.0, help="assumed accelerator rate")
    parser.add_argument("--methods", default=",".join(locatello2019_study.GRIDS), help="comma-separated")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    started = time.perf_counter()
    methods = args.methods.split(",")
    if unknown := set(methods) - set(locatello2019_study.GRIDS):
        parser.error(f"--methods: {sorted(unknown)} unknown; valid: {list(locatello2019_study.GRIDS)}")
    per_method = {}
    for m in methods:
        row = {"gflops_per_step": step_flops(m) / 1e9, "steps_per_sec": steps_per_second(m)}
        if args.sweep_seeds:
            row["sweep_members"] = grid_size(m) * args.sweep_seeds
            row["sweep_member_steps_per_sec"] = sweep_member_steps_per_second(m, args.sweep_seeds)
        per_method[m] = row
        print(m, row, flush=True)
    member_steps = {m: grid_size(m) * args.seeds * STEPS_PER_MEMBER for m in methods}
    seconds_one_by_one = sum(member_steps[m] / r["steps_per_sec"] for m, r in per_method.items())
    flops = sum(member_steps[m] * r["gflops_per_step"] * 1e9 for m, r in per_method.items())
    result = {
        "environment": environment(),
        "per_method": per_method,
        "members": sum(grid_size(m) for m in methods) * args.seeds,
        "steps_per_member": STEPS_PER_MEMBER,
        "total_pflop": flops / 1e15,
        "device_days_one_member_at_a_time": seconds_one_by_one / 86400,
        "sustained_tflops_assumed": args.sustained_tflops,
        "hours_at_assumed_tflops": flops / (args.sustained_tflops * 1e12) / 3600,
        "benchmark_seconds": time.perf_counter() - started,
    }
    if args.sweep_seeds:
        swept = sum(member_steps[m] / r["sweep_member_steps_per_sec"] for m, r in per_method.items())
        result["device_hours_as_sweeps"] = swept / 3600
        result["sustained_tflops_as_sweeps"] = flops / swept / 1e12
    write_results(result, args.out)


if __name__ == "__main__":
    main()

"""What the whole Locatello et al. 2019 study costs: members, steps, and time from measured step costs.

For each of the six methods (`experiments/ablations/locatello2019_study.py`), one train step of
the study's network (the conv VAE of `beta_vae.py`, batch 64; FactorVAE with its 6 x 1000
discriminator) is measured twice on this machine:
  - FLOPs per step, from XLA's cost analysis of the step lowered with `conv_impl='xla'` (the same
    function as every other form; the CPU's oneDNN custom calls are opaque to the analysis);
  - steps per second on this CPU, with `conv_impl='auto'`.
The study's total (members x 300k steps) is then given in CPU time at the measured rate and in
accelerator time at a stated sustained throughput: an estimate from FLOPs, not a measurement
on an accelerator.

  python -m benchmarks.study_cost [--seeds=50] [--sustained_tflops=15] [--out=FILE]
"""

import argparse

import jax

from benchmarks.common import environment, train_step_and_inputs, train_step_rate, write_results
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
    """XLA's FLOP count of one train step (the conv layers as XLA convolutions)."""
    step, state, batch = train_step_and_inputs(method_config(method, "xla"), SHAPE)
    analysis = step.lower(state, batch, jax.random.key(1)).compile().cost_analysis()
    analysis = analysis[0] if isinstance(analysis, list) else analysis
    return float(analysis["flops"])


def steps_per_second(method: str) -> float:
    """Median steps per second of one member's step on this machine."""
    return train_step_rate(*train_step_and_inputs(method_config(method, "auto"), SHAPE))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=50, help="seeds per grid point (the paper: 50)")
    parser.add_argument("--sustained_tflops", type=float, default=15.0, help="assumed accelerator rate")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    methods = list(locatello2019_study.GRIDS)
    per_method = {
        m: {"gflops_per_step": step_flops(m) / 1e9, "cpu_steps_per_sec": steps_per_second(m)} for m in methods
    }
    members_per_method = 6 * args.seeds
    total_steps = members_per_method * STEPS_PER_MEMBER
    cpu_seconds = sum(total_steps / r["cpu_steps_per_sec"] for r in per_method.values())
    flops = sum(total_steps * r["gflops_per_step"] * 1e9 for r in per_method.values())
    write_results(
        {
            "environment": environment(),
            "per_method": per_method,
            "members": len(methods) * members_per_method,
            "steps_per_member": STEPS_PER_MEMBER,
            "total_pflop": flops / 1e15,
            "cpu_days_at_measured_rate": cpu_seconds / 86400,
            "sustained_tflops_assumed": args.sustained_tflops,
            "accelerator_hours_estimate": flops / (args.sustained_tflops * 1e12) / 3600,
        },
        args.out,
    )


if __name__ == "__main__":
    main()

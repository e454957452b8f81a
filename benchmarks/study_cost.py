"""What the whole Locatello et al. 2019 study costs: members, steps, and device time from measured
step costs and a measured final evaluation.

For each of the six methods (`experiments/ablations/locatello2019_study.py`), the study's network
(the conv VAE of `beta_vae.py`, batch 64; FactorVAE with its 6 x 1000 discriminator) is measured
on this machine's default device:
  - FLOPs per step, from XLA's cost analysis of the step lowered with `conv_impl='xla'` for the
    CPU (the function's FLOPs, the same whichever form runs; oneDNN's and cuDNN's custom calls
    are opaque to the analysis);
  - steps per second of one member's step, with `conv_impl='auto'`;
  - with `--sweep_seeds=K`, per conv form (`--forms`) and dtype (`--dtypes`), the method's grid
    trained as one program of (grid values) x K members (`benchmarks.sweep_cost.sweep_row`:
    member-steps/s, achieved TFLOP/s, the FLOPs and bytes XLA counts per member-step, the
    roofline bound on this device kind), which is how the study runs on an accelerator;
  - with `--eval_members=1` (the default), one member's final evaluation at the study's metric
    protocol: the public `vae_jax.compute_metrics` with every metric of the study
    (`locatello2019_study.ALL_METRICS`, each at its default protocol) on a freshly initialized
    beta-VAE, timed once (the metrics' work does not depend on the method).
The study's total (members x 300k steps, then every member's evaluation) is given in device time
at the measured rates (the sweeps' where measured, else one member's, members one after another),
and, for comparison, at a stated sustained throughput from the FLOP count.

  python -m benchmarks.study_cost [--seeds=50] [--sweep_seeds=0] [--forms=auto] [--dtypes=float32]
                                 [--eval_members=1] [--sustained_tflops=15] [--methods=...]
                                 [--peak_tflops=T --peak_gbps=G] [--out=FILE]
"""

import argparse
import time

import vae_jax
from benchmarks import roofline
from benchmarks.common import environment, save_results, train_step_and_inputs, train_step_rate, write_results
from benchmarks.sweep_cost import function_flops, sweep_row
from experiments.ablations import locatello2019_study
from vae_jax.evaluate.ground_truth import Representation
from vae_jax.evaluate.inference import Inference
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
    return function_flops(method_config(method, "xla"), SHAPE)


def steps_per_second(method: str) -> float:
    """Median steps per second of one member's step on the default device (conv_impl='auto')."""
    return train_step_rate(*train_step_and_inputs(method_config(method, "auto"), SHAPE))


def grid_size(method: str) -> int:
    """Members of method's grid with one seed."""
    config = locatello2019_study.get_config(method)
    return len(parse_sweep(locatello2019_study.study_spec([method], num_seeds=1), config))


def study_program(method: str, seeds: int):
    """The config of method's grid in the study x `seeds` seeds, trained as one program."""
    config = locatello2019_study.get_config(method)
    config.sweep.spec = locatello2019_study.study_spec([method], num_seeds=seeds)
    return config


def sweep_rows(method: str, seeds: int, forms, dtypes, useful_flops: float, peak) -> dict:
    """Per 'form/dtype', the row of method's grid x `seeds` seeds trained as one program."""
    config = study_program(method, seeds)
    return {
        f"{form}/{dtype}": sweep_row(config, SHAPE, form, dtype, useful_flops=useful_flops, peak=peak)
        for dtype in dtypes
        for form in forms
    }


def final_evaluation_seconds(metrics=locatello2019_study.ALL_METRICS, seed: int = 0) -> dict:
    """Wall seconds of one member's disentanglement metrics at the study's protocol, and their names."""
    config = method_config("beta_vae", "auto")
    step, state, _ = train_step_and_inputs(config, SHAPE)
    del step
    inference = Inference(
        vae_jax.build_model(config, SHAPE), state.variables, config.loss.likelihood, config.eval.batch_size
    )
    data = vae_jax.get_ground_truth_data(config.data.name)
    start = time.perf_counter()
    scores = vae_jax.compute_metrics(list(metrics), data, Representation(inference), seed=seed)
    return {"seconds": time.perf_counter() - start, "metrics": list(metrics), "scores": sorted(scores)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=50, help="seeds per grid point (the paper: 50)")
    parser.add_argument(
        "--sweep_seeds", type=int, default=0, help="also time each grid x this many seeds as one program"
    )
    parser.add_argument("--forms", default="auto", help="conv forms of the sweeps, comma-separated")
    parser.add_argument("--dtypes", default="float32", help="dtypes of the sweeps, comma-separated")
    parser.add_argument("--eval_members", type=int, default=1, help="time one member's evaluation (0: skip)")
    parser.add_argument("--sustained_tflops", type=float, default=15.0, help="assumed accelerator rate")
    parser.add_argument("--methods", default=",".join(locatello2019_study.GRIDS), help="comma-separated")
    parser.add_argument("--peak_tflops", type=float, default=None)
    parser.add_argument("--peak_gbps", type=float, default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    env = environment()  # first: it sets the benchmarks' allocator before XLA allocates
    started = time.perf_counter()
    methods, forms, dtypes = args.methods.split(","), args.forms.split(","), args.dtypes.split(",")
    if unknown := set(methods) - set(locatello2019_study.GRIDS):
        parser.error(f"--methods: {sorted(unknown)} unknown; valid: {list(locatello2019_study.GRIDS)}")
    peak = roofline.peak_of(roofline.device_kind(), args.peak_tflops, args.peak_gbps)
    per_method = {}
    for m in methods:
        flops = step_flops(m)
        row = {"gflops_per_step": flops / 1e9, "steps_per_sec": steps_per_second(m)}
        if args.sweep_seeds:
            row["sweep_members"] = grid_size(m) * args.sweep_seeds
            row["sweeps"] = sweep_rows(m, args.sweep_seeds, forms, dtypes, flops, peak)
        per_method[m] = row
        print(m, row, flush=True)
        save_results({"environment": env, "per_method": per_method}, args.out)  # each method as it is done
    member_steps = {m: grid_size(m) * args.seeds * STEPS_PER_MEMBER for m in methods}
    members = sum(grid_size(m) for m in methods) * args.seeds
    seconds_one_by_one = sum(member_steps[m] / r["steps_per_sec"] for m, r in per_method.items())
    flops = sum(member_steps[m] * r["gflops_per_step"] * 1e9 for m, r in per_method.items())
    result = {
        "environment": env,
        "per_method": per_method,
        "members": members,
        "steps_per_member": STEPS_PER_MEMBER,
        "total_pflop": flops / 1e15,
        "device_days_one_member_at_a_time": seconds_one_by_one / 86400,
        "sustained_tflops_assumed": args.sustained_tflops,
        "hours_at_assumed_tflops": flops / (args.sustained_tflops * 1e12) / 3600,
    }
    if args.sweep_seeds:
        hours = {}
        for key in per_method[methods[0]]["sweeps"]:
            swept = sum(
                member_steps[m] / r["sweeps"][key]["member_steps_per_sec"] for m, r in per_method.items()
            )
            hours[key] = swept / 3600
        result["device_hours_as_sweeps"] = hours
        result["sustained_tflops_as_sweeps"] = {k: flops / (h * 3600) / 1e12 for k, h in hours.items()}
    if args.eval_members:
        evaluation = final_evaluation_seconds()
        print("final evaluation of one member", evaluation, flush=True)
        result["final_evaluation_per_member"] = evaluation
        result["evaluation_hours"] = members * evaluation["seconds"] / 3600
        if args.sweep_seeds:
            result["device_hours_with_evaluation"] = {
                k: h + result["evaluation_hours"] for k, h in result["device_hours_as_sweeps"].items()
            }
    result["benchmark_seconds"] = time.perf_counter() - started
    write_results(result, args.out)


if __name__ == "__main__":
    main()

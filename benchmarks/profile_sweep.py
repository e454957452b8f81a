"""Where a sweep program's step spends its time: a trace of a few steps, summed per XLA op.

  python -m benchmarks.profile_sweep [--method=beta_vae] [--seeds=50]
      [--programs=auto/bfloat16,xla/float32,auto/float32,xla/bfloat16] [--steps=5] [--top=8] [--out=FILE]

For each program (a conv form, `model.conv_impl`, and a dtype, `model.dtype`; in the order given,
so that a run stopped early has the first), the method's grid in the Locatello et al. 2019 study times `seeds`
seeds (the beta-VAE's 6 values x 50 = its 300-member study program) is compiled as one program
(`benchmarks.sweep_cost.compiled_program`: all members on one fixed batch), run twice to warm up,
and `steps` steps are traced with `jax.profiler`. From the trace (`summarize`), per program:
  - `compile_seconds`: building the members' states and compiling the program;
  - `wall_seconds_per_step`: the traced steps' wall time, one wait at the end;
  - `op_seconds_per_step`: the summed durations of the events XLA tags with an HLO op, taken from
    the device's plane where there is one (a GPU's kernels), else from the host's (a CPU's
    thunks, which run on several threads at once, so the sum can exceed the wall time);
  - `busy_seconds_per_step`: the union of those events' intervals; on a GPU, wall minus busy is
    the time the device sat idle (launch gaps, host work between steps);
  - `by_kind`: seconds per step and share of the op time per kind of op (the HLO op's name
    without its number: 'fusion', 'convolution', 'custom-call', 'copy', ...);
  - `top`: the `top` ops by time, each with its events per step (on a GPU, kernels: one op
    can launch several) and the first kernel or thunk name it ran as (on a GPU, cuDNN's and
    cuBLAS's kernel names say which algorithm ran).
"""

import argparse
import collections
import glob
import re
import shutil
import tempfile
import time

import jax
from jax.profiler import ProfileData

from benchmarks.common import environment, save_results, write_results
from benchmarks.study_cost import SHAPE, study_program
from benchmarks.sweep_cost import compiled_program, with_form_and_dtype
from experiments.ablations import locatello2019_study
from vae_jax.ops import IMPLS

DTYPES = ("float32", "bfloat16")


def _hlo_op(event) -> str | None:
    for name, value in event.stats:
        if name == "hlo_op":
            return str(value)
    return None


def _union_ns(intervals: list[tuple[int, int]]) -> int:
    """Total length of the union of [start, end) intervals."""
    total, reach = 0, None
    for start, end in sorted(intervals):
        if reach is None or start > reach:
            total += end - start
            reach = end
        elif end > reach:
            total += end - reach
            reach = end
    return total


def op_events(data: ProfileData) -> tuple[str, list[tuple[str, str, int, int]]]:
    """(the planes read, [(hlo op, event name, start ns, end ns)]) of the events tagged with an HLO
    op: the device planes' where any has them (a GPU's kernels; the host's CUPTI plane repeats
    them as launches), else the host's."""
    found: dict[str, list] = collections.defaultdict(list)
    for plane in data.planes:
        for line in plane.lines:
            for event in line.events:
                op = _hlo_op(event)
                if op is not None:
                    # duration_ns is exact; start_ns, an epoch time in a double, is rounded to ~256 ns
                    start = int(event.start_ns)
                    found[plane.name].append((op, event.name, start, start + int(event.duration_ns)))
    devices = [name for name in found if name.startswith("/device:")]
    names = devices or [name for name in found]
    return ",".join(names), [e for name in names for e in found[name]]


def kind_of(op: str) -> str:
    """'fusion.12' -> 'fusion', 'cudnn-conv-bw-filter.3' -> 'cudnn-conv-bw-filter'."""
    return re.sub(r"(\.\d+)+$", "", op)


def summarize(data: ProfileData, steps: int, wall_seconds: float, top: int = 8) -> dict:
    """The per-step profile of `steps` traced steps (see the module docstring)."""
    plane, events = op_events(data)
    if not events:
        raise RuntimeError("the trace holds no event tagged with an HLO op")
    per_op = collections.defaultdict(lambda: [0, 0, None])  # ns, count, first event name
    for op, name, start, end in events:
        entry = per_op[op]
        entry[0] += end - start
        entry[1] += 1
        entry[2] = entry[2] or name
    op_ns = sum(ns for ns, _, _ in per_op.values())
    by_kind = collections.Counter()
    for op, (ns, _, _) in per_op.items():
        by_kind[kind_of(op)] += ns
    return {
        "plane": plane,
        "steps": steps,
        "wall_seconds_per_step": wall_seconds / steps,
        "op_seconds_per_step": op_ns / 1e9 / steps,
        "busy_seconds_per_step": _union_ns([(s, e) for _, _, s, e in events]) / 1e9 / steps,
        "ops_per_step": len(events) / steps,
        "by_kind": {
            kind: {"seconds_per_step": ns / 1e9 / steps, "share": ns / op_ns}
            for kind, ns in by_kind.most_common()
        },
        "top": [
            {
                "op": op,
                "seconds_per_step": ns / 1e9 / steps,
                "share": ns / op_ns,
                "count_per_step": count / steps,
                "ran_as": name,
            }
            for op, (ns, count, name) in sorted(per_op.items(), key=lambda kv: -kv[1][0])[:top]
        ],
    }


def profile(config, steps: int, top: int) -> dict:
    """Compile config's sweep program, warm it up, trace `steps` steps and summarize the trace."""
    start = time.perf_counter()
    compiled, states, batch, rngs, _, members = compiled_program(config, SHAPE)
    compile_seconds = time.perf_counter() - start
    for _ in range(2):
        states, metrics = compiled(states, batch, rngs)
    jax.block_until_ready(metrics)
    log_dir = tempfile.mkdtemp(prefix="profile_sweep_")
    try:
        with jax.profiler.trace(log_dir):
            start = time.perf_counter()
            for _ in range(steps):
                states, metrics = compiled(states, batch, rngs)
            jax.block_until_ready(metrics)
            wall = time.perf_counter() - start
        (path,) = glob.glob(f"{log_dir}/**/*.xplane.pb", recursive=True)
        summary = summarize(ProfileData.from_file(path), steps, wall, top)
    finally:
        shutil.rmtree(log_dir, ignore_errors=True)
    rate = members / summary["wall_seconds_per_step"]
    return {"members": members, "compile_seconds": compile_seconds, "member_steps_per_sec": rate, **summary}


def table(rows: dict) -> str:
    """One line per profiled program: its rate, step, device busy share, compile time, top op kinds."""
    lines = [
        "program             members  step ms  busy  member-steps/s  compile s  top kinds (share of op time)"
    ]
    for key, r in rows.items():
        kinds = ", ".join(f"{k} {v['share']:.0%}" for k, v in list(r["by_kind"].items())[:3])
        busy = r["busy_seconds_per_step"] / r["wall_seconds_per_step"]
        lines.append(
            f"{key:<19} {r['members']:>7} {r['wall_seconds_per_step'] * 1e3:>8.2f} {busy:>5.0%}"
            f" {r['member_steps_per_sec']:>15,.0f} {r['compile_seconds']:>10.0f}  {kinds}"
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--method", default="beta_vae", choices=list(locatello2019_study.GRIDS))
    parser.add_argument("--seeds", type=int, default=50, help="seeds per grid value (50: the study)")
    parser.add_argument(
        "--programs",
        default="auto/bfloat16,xla/float32,auto/float32,xla/bfloat16",
        help="FORM/DTYPE pairs, comma-separated, profiled in this order",
    )
    parser.add_argument("--steps", type=int, default=5, help="traced steps per program")
    parser.add_argument("--top", type=int, default=8, help="ops listed per program")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.seeds < 1 or args.steps < 1:
        parser.error("--seeds and --steps must be at least 1")
    programs = [p.split("/") for p in args.programs.split(",")]
    if bad := [p for p in programs if len(p) != 2 or p[0] not in IMPLS or p[1] not in DTYPES]:
        parser.error(f"--programs: {'/'.join(bad[0])!r} is not FORM/DTYPE; forms {IMPLS}, dtypes {DTYPES}")
    result = {"environment": environment(), "method": args.method, "seeds": args.seeds}
    rows = {}
    for form, dtype in programs:
        config = with_form_and_dtype(study_program(args.method, args.seeds), form, dtype)
        rows[f"{form}/{dtype}"] = row = profile(config, args.steps, args.top)
        print(f"{form}/{dtype}: {row['wall_seconds_per_step'] * 1e3:.2f} ms a step", flush=True)
        save_results({**result, "programs": rows}, args.out)  # each program as it is done
    write_results({**result, "programs": rows}, args.out)
    print(table(rows))


if __name__ == "__main__":
    main()

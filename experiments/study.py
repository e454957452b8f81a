"""Command-line entry point: sweep workdirs -> one study table and its plots (vae_jax.evaluate.study).

  python -m experiments.study runs/locatello2019_beta runs/burgess2018_capacity_sweep --out runs/study
  python -m experiments.study beta_vae=runs/a annealed_vae=runs/b --out runs/study --metrics mig,sap

A directory may be written METHOD=DIR to name its method (else read from its config.json).
The workdirs of a sweep's slices (`experiments.run --sweep_slice=I/N`) are joined into the
table one process would have written; members that no finished slice holds are named, and stop
the study unless --allow_incomplete.
Writes OUT/study_results.csv, OUT/study_summary.csv (mean, min, max over seeds per method and
value), OUT/study_<metric>.png and OUT/study_rank_correlation.png.
Errors the user can fix end in one line and exit code 2.
"""

import argparse
import sys

from vae_jax.errors import UserError
from vae_jax.evaluate import study


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m experiments.study", description=__doc__.split("\n")[0])
    parser.add_argument(
        "dirs", nargs="+", metavar="[METHOD=]DIR", help="sweep (or slice) workdirs (with sweep_results.csv)"
    )
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument(
        "--metrics", default="", help="comma-separated metric columns (default: all that vary)"
    )
    parser.add_argument(
        "--allow_incomplete",
        action="store_true",
        help="study the members present when slices of a sweep are missing or unfinished",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    dirs, methods = [], {}
    for arg in args.dirs:
        method, sep, path = arg.partition("=")
        dirs.append(path if sep else arg)
        if sep:
            methods[path] = method
    metrics = [m for m in args.metrics.split(",") if m] or None
    try:
        result = study.write_study(dirs, args.out, metrics, methods, args.allow_incomplete)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{len(result['rows'])} members, {len(result['metrics'])} metrics -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

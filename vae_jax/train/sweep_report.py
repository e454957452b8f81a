"""A sweep's report: sweep_results.csv (one row per member) and plots of metric vs swept value."""

import csv
from pathlib import Path

from vae_jax import viz


def write_sweep_results(workdir: Path, rows: list[dict], swept: list[str]) -> None:
    """sweep_results.csv (one row per member) and plots of each metric against the swept value."""
    keys = list(dict.fromkeys(k for row in rows for k in row))
    with open(workdir / "sweep_results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    x_key = next((k for k in swept if k != "seed" and isinstance(rows[0].get(k), int | float)), None)
    if x_key is None:
        return
    rows = [row for row in rows if x_key in row]  # of a union ('+'), the members that swept x_key
    metrics = [k for k in keys if k not in (*swept, "member", "step", "diverged") and k in rows[0]]
    for metric in metrics:
        xs = sorted({row[x_key] for row in rows})
        values = [
            [row[metric] for row in rows if row[x_key] == x and row.get(metric) is not None] for x in xs
        ]
        viz.save_metric_curve(workdir / f"sweep_{metric}.png", xs, values, x_key, metric)
    if "kl" in keys and "rec" in keys:
        viz.save_rate_distortion(
            workdir / "sweep_rate_distortion.png",
            [r["kl"] for r in rows], [r["rec"] for r in rows], [r[x_key] for r in rows], x_key,
        )  # fmt: skip

"""A study over sweeps: one table of every member of every method, its plots, and the rank
correlation between metrics (the analysis of Locatello et al. 2019, Fig. 2/3 and 7/13).

Each sweep workdir holds `config.json` (the sweep's base config) and `sweep_results.csv`
(one row per member: `member`, the swept fields, `diverged`, the final metrics, `step`;
see vae_jax.train.sweep), or, for a sweep run as slices, each slice's workdir holds its
members' (`sweep_rows`). `read_study` joins any number of them into one table with a
`method` column (named by `method_of`), the member's `hparam` (the swept field that is not
the seed) and its `hparam_value`, and the `sweep` it came from. `write_study` writes the
table as CSV, one box plot per metric by method and hyperparameter value, and the Spearman
rank-correlation matrix between metrics. The command line is experiments/study.py.
"""

import csv
import json
import math
import re
from pathlib import Path

import numpy as np
from scipy import stats

from vae_jax import viz
from vae_jax.config_text import lookup
from vae_jax.errors import UserError
from vae_jax.evaluate import sweep_rows

ID_COLUMNS = ("method", "hparam", "hparam_value", "seed", "sweep", "member", "step", "diverged")
# The hyperparameter of each method's grid: named when a sweep varies only the seed, and chosen
# among a member's swept fields in a union of methods (DIP-VAE also sweeps lambda_d's factor).
METHOD_HPARAM = {
    "beta_vae": "loss.beta",
    "annealed_vae": "loss.c_max",
    "factor_vae": "loss.factor_gamma",
    "dip_vae_i": "loss.dip_lambda_od",
    "dip_vae_ii": "loss.dip_lambda_od",
    "beta_tcvae": "loss.tc_beta",
}


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def method_of(config: dict, swept: list[str]) -> str:
    """The method a sweep trains, from its config's model and loss fields.

    An explicit string field `loss.method` (other than 'vae'), `loss.objective` (other than
    'elbo') or `loss.name` wins; else a non-VAE `model.name`; else 'annealed_vae' (capacity:
    gamma > 0 or C_max swept), 'beta_vae' (beta != 1 or beta swept) or 'vae'.
    """
    loss = config.get("loss", {})
    for key, default in (("method", "vae"), ("objective", "elbo"), ("name", "")):
        # The defaults (the one-sample ELBO of loss.method='vae') are beta-VAE or AnnealedVAE:
        # told apart below.
        if isinstance(loss.get(key), str) and loss[key] and loss[key] != default:
            return loss[key]
    model = lookup(config, "model.name", None) or "vae"
    if model != "vae":
        return model
    if (loss.get("gamma") or 0) > 0 or "loss.gamma" in swept or "loss.c_max" in swept:
        return "annealed_vae"
    if loss.get("beta", 1.0) != 1.0 or "loss.beta" in swept:
        return "beta_vae"
    return "vae"


def read_sweep(workdir: str | Path, method: str | None = None) -> list[dict]:
    """The member rows of one sweep workdir, each with method, hparam, hparam_value, seed and sweep."""
    return read_study([workdir], {str(workdir): method} if method else None)


def _with_ids(config: dict, rows: list[dict], method: str | None) -> list[dict]:
    """rows (of one sweep, each with its `sweep`) with method, hparam, hparam_value and seed."""
    columns = list(dict.fromkeys(c for row in rows for c in row if c != "sweep"))
    if "diverged" in columns:  # the sweep writes member, the swept fields, diverged, the metrics, step
        end = columns.index("diverged")
        # A union's later programs add their fields after the first member's metrics: config
        # fields are dotted, metric names are not.
        swept = [c for c in columns[:end] if c != "member"] + [c for c in columns[end:] if "." in c]
    else:
        swept = [c for c in columns if c == "seed" or "." in c]
    present = [frozenset(c for c in swept if _present(row.get(c))) for row in rows]
    if len(set(present)) > 1:  # a union of sweeps (`a + b`): each member names its own method
        members = [_member_ids(config, row, sorted(p), method) for row, p in zip(rows, present, strict=True)]
    else:
        member_method = method or method_of(config, swept)
        hparam = next((c for c in swept if c != "seed" and all(_is_number(r.get(c)) for r in rows)), None)
        members = [(member_method, hparam or METHOD_HPARAM.get(member_method))] * len(rows)
    out = []
    for row, (member_method, hparam) in zip(rows, members, strict=True):
        value = row.get(hparam, lookup(config, hparam, None) if hparam else None)
        seed = row.get("seed", config.get("seed", math.nan))
        ids = {"method": member_method, "hparam": hparam or "", "hparam_value": value, "seed": seed}
        out.append({**ids, "sweep": row["sweep"], **{k: v for k, v in row.items() if k != "sweep"}})
    return out


def _present(value) -> bool:
    """A member's cell holds a value (a union's CSV leaves the other methods' fields empty)."""
    return value is not None and value != "" and not (isinstance(value, float) and math.isnan(value))


def _member_ids(config: dict, row: dict, swept: list[str], method: str | None) -> tuple[str, str | None]:
    """(method, hparam) of one member of a union: its method from the base config with the member's
    own swept values; its hyperparameter the method's (METHOD_HPARAM) or else its first swept number."""
    member_config = json.loads(json.dumps(config))
    for key in swept:
        node = member_config
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = row[key]
    member_method = method or method_of(member_config, swept)
    numbers = [c for c in swept if c != "seed" and _is_number(row[c])]
    hparam = METHOD_HPARAM.get(member_method)
    return member_method, hparam if hparam in numbers or not numbers else numbers[0]


def read_study(workdirs, methods: dict | None = None, allow_incomplete: bool = False) -> list[dict]:
    """The rows of every member of every sweep in workdirs, the slices of one sweep joined
    (`sweep_rows.read_sweeps`); methods maps a workdir to a method name."""
    methods = {str(Path(k)): v for k, v in (methods or {}).items()}
    out = []
    for config, rows in sweep_rows.read_sweeps(workdirs, allow_incomplete):
        method = next((methods[r["sweep"]] for r in rows if r["sweep"] in methods), None)
        out += _with_ids(config, rows, method)
    return out


def metric_columns(rows: list[dict]) -> list[str]:
    """Numeric columns that are results (not ids or swept fields) and vary across the rows."""
    swept = {r["hparam"] for r in rows} | {c for r in rows for c in r if "." in c}
    out = []
    for column in dict.fromkeys(c for r in rows for c in r):
        if column in ID_COLUMNS or column in swept:
            continue
        values = [r.get(column, math.nan) for r in rows]
        if all(_is_number(v) for v in values):
            finite = np.asarray(values, np.float64)[np.isfinite(values)]
            if finite.size > 1 and np.ptp(finite) > 0:
                out.append(column)
    return out


def rank_correlation(rows: list[dict], metrics: list[str]) -> np.ndarray:
    """Spearman rank correlation [m, m] between metrics over the rows where both are finite.

    rho = Pearson correlation of the ranks (ties get their average rank); nan where fewer
    than 3 rows are complete or a metric is constant on them.
    """
    x = np.array([[r.get(m, math.nan) for m in metrics] for r in rows], np.float64)  # [N, m]
    out = np.full((len(metrics), len(metrics)), np.nan)
    for i in range(len(metrics)):
        for j in range(i, len(metrics)):
            both = np.isfinite(x[:, i]) & np.isfinite(x[:, j])
            if both.sum() < 3:
                continue
            a, b = stats.rankdata(x[both, i]), stats.rankdata(x[both, j])
            if np.ptp(a) == 0 or np.ptp(b) == 0:
                continue
            out[i, j] = out[j, i] = np.corrcoef(a, b)[0, 1]
    return out


def write_table(rows: list[dict], path: str | Path, id_columns=ID_COLUMNS) -> None:
    """The study table as CSV: id columns first, then every other column in first-seen order."""
    columns = list(dict.fromkeys([*id_columns, *(c for r in rows for c in r)]))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()})


def summarize(rows: list[dict], metrics: list[str]) -> list[dict]:
    """One row per (method, hparam, hparam_value) in table order: the number of members and, per
    metric, the mean, min and max over the members (seeds) with a finite value."""
    out = []
    for key in dict.fromkeys((r["method"], r["hparam"], r["hparam_value"]) for r in rows):
        members = [r for r in rows if (r["method"], r["hparam"], r["hparam_value"]) == key]
        summary = dict(zip(("method", "hparam", "hparam_value"), key, strict=True)) | {"n": len(members)}
        for metric in metrics:
            values = [float(v) for r in members if _is_number(v := r.get(metric)) and np.isfinite(v)]
            for stat, fn in (("mean", np.mean), ("min", np.min), ("max", np.max)):
                summary[f"{metric}_{stat}"] = float(fn(values)) if values else math.nan
        out.append(summary)
    return out


def _groups(rows: list[dict], metric: str) -> tuple[list[str], list[list[float]]]:
    """Labels 'method\\nhparam=value' and the finite values of metric, per (method, value), in table order."""
    labels, cells = [], []
    for method, hparam in dict.fromkeys((r["method"], r["hparam"]) for r in rows):
        members = [r for r in rows if r["method"] == method and r["hparam"] == hparam]
        values = list(dict.fromkeys(r["hparam_value"] for r in members)) if hparam else [None]
        for v in sorted(values, key=lambda v: (not _is_number(v), v if _is_number(v) else str(v))):
            labels.append(f"{method}\n{hparam.split('.')[-1]}={v:g}" if _is_number(v) else method)
            cells.append([r.get(metric, math.nan) for r in members if not hparam or r["hparam_value"] == v])
    return labels, [[float(c) for c in cell if _is_number(c) and np.isfinite(c)] for cell in cells]


def write_study(
    workdirs, out: str | Path, metrics: list[str] | None = None, methods=None, allow_incomplete=False
) -> dict:
    """Writes out/study_results.csv, out/study_summary.csv (mean, min and max over seeds per method and
    hyperparameter value), out/study_<metric>.png per metric and out/study_rank_correlation.png.

    A sweep can call it on its own workdir after writing sweep_results.csv; the slices of a sweep
    are joined (`read_study`). Returns {"rows", "metrics", "rank_correlation"}; metrics default to
    `metric_columns(rows)`.
    """
    out = Path(out)
    rows = read_study(workdirs, methods, allow_incomplete)
    out.mkdir(parents=True, exist_ok=True)
    metrics = metric_columns(rows) if metrics is None else list(metrics)
    unknown = [m for m in metrics if not any(m in r for r in rows)]
    if unknown:
        raise UserError(f"metrics {unknown} are in no sweep_results.csv; valid: {metric_columns(rows)}")
    write_table(rows, out / "study_results.csv")
    write_table(summarize(rows, metrics), out / "study_summary.csv", id_columns=())
    for metric in metrics:
        labels, values = _groups(rows, metric)
        viz.save_grouped_boxes(out / f"study_{_file_name(metric)}.png", labels, values, metric)
    corr = rank_correlation(rows, metrics)
    if len(metrics) > 1:
        viz.save_correlation_matrix(
            out / "study_rank_correlation.png", corr, metrics, "Spearman rank correlation"
        )
    return {"rows": rows, "metrics": metrics, "rank_correlation": corr}


def _file_name(metric: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", metric)

"""A sweep's member rows read back from its workdir, or joined from the workdirs of its slices.

A sweep's workdir holds `config.json` and `sweep_results.csv`, one row per member
(`vae_jax.train.sweep`). A slice's (`config.sweep.slice = 'I/N'`, members I, I+N, ...) holds
the same for its members, under their indices in the whole sweep. Slices of one sweep have the
same config.json but for the slice; `read_sweeps` joins them into the rows that one process
would have written, in the members' order, each row's `sweep` the workdir it came from. A
slice that has not yet written its sweep_results.csv gives the members whose results.json it
has written; members that no given slice holds are named, in an error unless allowed.
"""

import csv
import json
import logging
import math
from pathlib import Path

from vae_jax.config_text import lookup, parse_value
from vae_jax.errors import UserError
from vae_jax.train.sweep_spec import parse_slice, parse_sweep


def cell_value(text: str):
    """A CSV cell as the value it writes (`parse_value`); empty -> nan."""
    return math.nan if text == "" else parse_value(text)


def read_sweeps(workdirs, allow_incomplete: bool = False) -> list[tuple[dict, list[dict]]]:
    """(config, rows) of each sweep in workdirs, slices of one sweep joined, in the order given.

    Raises UserError for a workdir that holds no sweep's results, slices that disagree or repeat,
    and (unless allow_incomplete: then a warning) for slices that miss members.
    """
    groups: dict[str, list] = {}
    for workdir in map(Path, workdirs):
        config = _read_config(workdir)
        part = parse_slice(lookup(config, "sweep.slice", None) or "")
        if part is None:  # a whole sweep joins nothing
            groups[f"dir:{workdir}"] = [(workdir, config, None)]
            continue
        whole = json.loads(json.dumps(config))
        whole["sweep"]["slice"] = None
        groups.setdefault(json.dumps(whole, sort_keys=True), []).append((workdir, config, part))
    return [_join(entries, allow_incomplete) for entries in groups.values()]


def _read_config(workdir: Path) -> dict:
    path = workdir / "config.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _read_rows(workdir: Path) -> list[dict] | None:
    """workdir's member rows (blank cells left out, other cells parsed), each with its `sweep`;
    without sweep_results.csv its members' results.json; None when there is neither."""
    path = workdir / "sweep_results.csv"
    if path.is_file():
        with open(path, newline="") as f:
            rows = [{k: cell_value(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]
    else:
        found = [*workdir.glob("members/*/results.json"), *workdir.glob("program_*/members/*/results.json")]
        rows = [json.loads(p.read_text()) for p in found] or None
    return rows and [{**row, "sweep": str(workdir)} for row in rows]


def _join(entries: list, allow_incomplete: bool) -> tuple[dict, list[dict]]:
    """(config, rows in the members' order) of one sweep's workdir or slices."""
    first, config, part = entries[0]
    if part is None:
        rows = _read_rows(first) if (first / "sweep_results.csv").is_file() else None
        if rows is None:
            raise UserError(f"{first}: no sweep_results.csv; pass the workdir of a finished sweep")
        return config, rows
    count, by_index = part[1], {}
    for workdir, _, (index, n) in entries:
        if n != count:
            raise UserError(
                f"{workdir} is slice {index}/{n} but {first} is one of {count}: give the slices of one sweep"
            )
        if index in by_index:
            raise UserError(f"{by_index[index]} and {workdir} both hold slice {index}/{count} of one sweep")
        by_index[index] = workdir
    num_members = len(parse_sweep(config["sweep"]["spec"], config))
    rows, missing = [], []
    for index in range(min(count, num_members)):
        workdir = by_index.get(index)
        held = (_read_rows(workdir) or []) if workdir else []
        rows += held
        lost = sorted(set(range(index, num_members, count)) - {row["member"] for row in held})
        if lost:
            where = f"in {workdir}, unfinished" if workdir else "no workdir given"
            missing.append(f"{', '.join(map(str, lost))} (slice {index}/{count}, {where})")
    if missing:
        message = f"the sweep of {', '.join(str(e[0]) for e in entries)} misses members {'; '.join(missing)}"
        if not allow_incomplete:
            raise UserError(f"{message}; finish those slices (rerun them), or pass --allow_incomplete")
        logging.warning("%s: studying the %d members present", message, len(rows))
    return config, sorted(rows, key=lambda row: row["member"])

"""The sweep spec: which members a sweep has, and which of them can train as one program.

`config.sweep.spec` lists the members: `field=v1,v2,...` terms joined by `*`
(product) or `|` (zip, equal lengths), e.g. `loss.beta=1,4,16 * seed=0,1,2`
(9 members) or `loss.gamma=100,1000 | loss.c_max=10,25` (2 members); sub-specs joined by `+`
are a union, their members one after another (`loss.beta=1,4 + loss.c_max=5,25`: 4 members).
Numeric hyperparameters (SWEEPABLE) enter the train step as arrays, so members
that differ only in them form one program; any other difference (latent size,
architecture, dataset) makes separate programs.

A member slice `config.sweep.slice = 'I/N'` (`--sweep_slice=I/N`) trains members I, I+N,
I+2N, ... in the spec's order, for processes that train apart (a job array, one process per
GPU); each program keeps its members of the slice, so every slice runs the same programs.
"""

import itertools
import json
import re
from typing import Any

import ml_collections

from vae_jax.config_text import lookup, parse_value
from vae_jax.errors import ConfigError
from vae_jax.train.losses import LOSS_HPARAMS

SWEEPABLE = ("seed", "optim.learning_rate", *(f"loss.{k}" for k in LOSS_HPARAMS))


def parse_sweep(spec: str, config: ml_collections.ConfigDict) -> list[dict[str, Any]]:
    """The member assignments {field: value} of a sweep spec; ConfigError if malformed."""
    if len(parts := re.split(r"(?<![eE])\+", spec)) > 1:  # a union; '1e+3' is a number
        return [member for part in parts for member in parse_sweep(part, config)]
    factors = []
    for factor in spec.split("*"):
        columns: dict[str, list] = {}
        for term in factor.split("|"):
            key, sep, values = term.partition("=")
            key = key.strip()
            if not sep or not key or not values.strip():
                raise ConfigError(
                    f"config.sweep.spec={spec!r} is invalid: term {term.strip()!r} is not 'field=v1,v2,...' "
                    "(join terms with '*' for a product or '|' to zip them)"
                )
            try:
                lookup(config, key)
            except KeyError:
                raise ConfigError(
                    f"config.sweep.spec={spec!r} is invalid: config has no field {key!r}"
                ) from None
            columns[key] = [parse_value(v) for v in values.split(",")]
        if len({len(v) for v in columns.values()}) != 1:
            raise ConfigError(f"config.sweep.spec={spec!r} is invalid: zipped ('|') terms need equal lengths")
        factors.append(
            [dict(zip(columns, combo, strict=True)) for combo in zip(*columns.values(), strict=True)]
        )
    return [{k: v for part in combo for k, v in part.items()} for combo in itertools.product(*factors)]


def member_config(config: ml_collections.ConfigDict, assignment: dict) -> ml_collections.ConfigDict:
    """A copy of config with the assignment applied and the sweep removed."""
    c = ml_collections.ConfigDict(config.to_dict())
    c.sweep.spec = ""
    for key, value in assignment.items():
        *parents, leaf = key.split(".")
        node = c
        for p in parents:
            node = node[p]
        try:
            node[leaf] = type(node[leaf])(value) if isinstance(node[leaf], float) else value
        except (TypeError, ValueError) as e:
            raise ConfigError(f"config.sweep.spec: {key}={value!r} does not fit the field ({e})") from None
    return c


def programs(assignments: list[dict]) -> list[list[int]]:
    """The members' indices grouped by their structural (non-SWEEPABLE) values, in first-seen order.
    Members of different sub-specs of a union ('+': other swept fields) never share a program."""
    groups: dict[str, list[int]] = {}
    for i, a in enumerate(assignments):
        structural = json.dumps(
            [sorted(a), {k: v for k, v in a.items() if k not in SWEEPABLE}], sort_keys=True
        )
        groups.setdefault(structural, []).append(i)
    return list(groups.values())


def parse_slice(text: str) -> tuple[int, int] | None:
    """(I, N) of a member slice 'I/N' (`config.sweep.slice`, `--sweep_slice`); None for ''.
    ConfigError unless I and N are integers with 0 <= I < N."""
    if not text:
        return None
    index, sep, count = text.partition("/")
    try:
        index, count = int(index), int(count)
    except ValueError:
        index = count = -1
    if not sep or not 0 <= index < count:
        raise ConfigError(
            f"sweep slice {text!r} (--sweep_slice, config.sweep.slice) is invalid: write I/N with "
            "integers 0 <= I < N, e.g. 0/4 for the first of 4 slices"
        )
    return index, count


def slice_members(config: ml_collections.ConfigDict, num_members: int) -> list[int]:
    """The members (indices into the spec's members) that config's slice trains: members I, I+N,
    I+2N, ... of slice 'I/N'; all of them without a slice. ConfigError for a slice that would be
    empty or a slice of no sweep."""
    text = config.sweep.get("slice", "")
    parsed = parse_slice(text)
    if parsed is None:
        return list(range(num_members))
    if not config.sweep.spec:
        raise ConfigError(f"sweep slice {text!r} needs a sweep: set config.sweep.spec (or a :sweep preset)")
    index, count = parsed
    if index >= num_members:
        raise ConfigError(
            f"sweep slice {text!r} would be empty: the sweep has {num_members} members, so at most "
            f"{num_members} slices (slice {index} of {count} has none)"
        )
    return list(range(index, num_members, count))

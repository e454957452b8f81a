"""The sweep spec: which members a sweep has, and which of them can train as one program.

`config.sweep.spec` lists the members: `field=v1,v2,...` terms joined by `*`
(product) or `|` (zip, equal lengths), e.g. `loss.beta=1,4,16 * seed=0,1,2`
(9 members) or `loss.gamma=100,1000 | loss.c_max=10,25` (2 members); sub-specs joined by `+`
are a union, their members one after another (`loss.beta=1,4 + loss.c_max=5,25`: 4 members).
Numeric hyperparameters (SWEEPABLE) enter the train step as arrays, so members
that differ only in them form one program; any other difference (latent size,
architecture, dataset) makes separate programs.
"""

import itertools
import json
import re
from typing import Any

import ml_collections

from vae_jax.errors import ConfigError
from vae_jax.train.losses import LOSS_HPARAMS

SWEEPABLE = ("seed", "optim.learning_rate", *(f"loss.{k}" for k in LOSS_HPARAMS))


def _parse_value(text: str) -> Any:
    text = text.strip()
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


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
                _get(config, key)
            except (KeyError, AttributeError):
                raise ConfigError(
                    f"config.sweep.spec={spec!r} is invalid: config has no field {key!r}"
                ) from None
            columns[key] = [_parse_value(v) for v in values.split(",")]
        if len({len(v) for v in columns.values()}) != 1:
            raise ConfigError(f"config.sweep.spec={spec!r} is invalid: zipped ('|') terms need equal lengths")
        factors.append(
            [dict(zip(columns, combo, strict=True)) for combo in zip(*columns.values(), strict=True)]
        )
    return [{k: v for part in combo for k, v in part.items()} for combo in itertools.product(*factors)]


def _get(config, key: str):
    node = config
    for part in key.split("."):
        node = node[part]
    return node


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

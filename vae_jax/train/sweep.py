"""Sweeps: many hyperparameter values as one vmapped, sharded program.

`config.sweep.spec` lists the members: `field=v1,v2,...` terms joined by `*`
(product) or `|` (zip, equal lengths), e.g. `loss.beta=1,4,16 * seed=0,1,2`
(9 members) or `loss.gamma=100,1000 | loss.c_max=10,25` (2 members); sub-specs joined by `+`
are a union, their members one after another (`loss.beta=1,4 + loss.c_max=5,25`: 4 members).
Numeric hyperparameters (SWEEPABLE) enter the train step as arrays, so all
members that differ only in them train as one jitted program: the step is
vmapped (or, on CPU, unrolled member by member; see `vectorization`) over a member axis that
is sharded on the mesh's `sweep` axis, with the batch sharded on `data`.
Members that differ in anything else (latent size, architecture, dataset) form
separate programs, run one after another.

All members of a program see the same batches (the base `config.seed` fixes the
data order); a member's `seed` sets its initialization and sampling noise.
"""

import csv
import itertools
import json
import logging
import re
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from vae_jax import data as data_lib
from vae_jax import viz
from vae_jax.models import build_model
from vae_jax.train import checkpoint, loop, sharding
from vae_jax.train.state import LOSS_HPARAMS, create_train_state
from vae_jax.train.steps import make_eval_step, make_train_step
from vae_jax.train.validate import ConfigError, check_resume_compatible, validate_config
from vae_jax.train.workdir import Workdir

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


def _sweep_axis(num_members: int) -> int:
    """The largest device count that divides both the members and the devices."""
    return max(
        d for d in range(1, jax.device_count() + 1) if jax.device_count() % d == 0 and num_members % d == 0
    )


def create_sweep_state(model, configs, data_shape):
    """The members' train states stacked on a leading axis, and their train rngs."""
    base = configs[0]
    hparams = {k: jnp.asarray([float(c.loss[k]) for c in configs], jnp.float32) for k in LOSS_HPARAMS}
    lrs = jnp.asarray([float(c.optim.learning_rate) for c in configs], jnp.float32)
    keys = [jax.random.key(c.seed) for c in configs]
    init_rngs = jnp.stack([jax.random.fold_in(k, 0) for k in keys])
    train_rngs = jnp.stack([jax.random.fold_in(k, 1) for k in keys])
    init = jax.vmap(lambda r, h, lr: create_train_state(model, base, data_shape, r, h, lr))
    return jax.jit(init)(init_rngs, hparams, lrs), train_rngs


def vectorization(config) -> str:
    """'vmap' (one batched program: what fills a GPU/TPU) or 'map' (the members' steps unrolled
    one after another inside one program). 'auto' picks 'map' on CPU: with XLA's own
    convolutions a vmapped step becomes a grouped convolution (~16x slower than 4 separate
    steps), and with the matrix-product conv layers (the CPU default) a 16-member vmap ran at
    0.23x the images/s of one model (batched products of 16 members' activations) while 4
    members ran at 0.97x (benchmarks/sweep_scaling.py). A 2-core CPU is already busy with one
    model, so unrolling loses nothing."""
    mode = config.sweep.vectorize
    if mode == "auto":
        return "map" if jax.default_backend() == "cpu" else "vmap"
    return mode


def make_sweep_step(config, mesh):
    """The jitted train step of a sweep: (states[N], batch, rngs[N]) -> (states, metrics[N])."""
    members, data = NamedSharding(mesh, P("sweep")), sharding.data_sharding(mesh)
    inner = make_train_step(config.loss.likelihood, config.data.binarize)
    if vectorization(config) == "vmap":
        step = jax.vmap(inner, in_axes=(0, None, 0))
    else:

        def step(states, batch, rngs):
            outs = [
                inner(jax.tree.map(lambda x, i=i: x[i], states), batch, rngs[i]) for i in range(len(rngs))
            ]
            return jax.tree.map(lambda *xs: jnp.stack(xs), *outs)

    return jax.jit(
        step, in_shardings=(members, data, members), out_shardings=(members, members), donate_argnums=0
    )


def train_sweep(
    config: ml_collections.ConfigDict, workdir: str | Path, allow_config_change=False
) -> list[dict]:
    """Trains every member of config.sweep.spec; returns the members' rows.

    Writes config.json, metrics.jsonl (each record with the member's index and values),
    sweep_results.csv and results.json (the rows), plots of each metric against the swept
    value, and per member members/<i>/ (its results.json, pictures and TensorBoard events).
    """
    workdir = Path(workdir)
    assignments = parse_sweep(config.sweep.spec, config)
    configs = [member_config(config, a) for a in assignments]
    for c in configs:
        validate_config(c)
    check_resume_compatible(workdir, config, allow_config_change)
    writer = Workdir(workdir, tensorboard=False)  # members write their own events: one curve each
    writer.write_config(config)
    programs = group_programs(assignments)
    rows: list[dict] = []
    try:
        for p, members in enumerate(programs):
            program_dir = workdir if len(programs) == 1 else workdir / f"program_{p}"
            logging.info(
                "Sweep program %d/%d: %d members in one vmapped step", p + 1, len(programs), len(members)
            )
            rows += _train_program([configs[i] for i in members], members, assignments, program_dir, writer)
        if writer.enabled:
            write_sweep_results(workdir, rows, [k for k in assignments[0]])
        writer.write_results({"members": rows})
    finally:
        writer.close()
    return rows


def group_programs(assignments: list[dict]) -> list[list[int]]:
    """The members' indices by program: members that differ only in SWEEPABLE values share one.
    Members of different sub-specs of a union ('+': other swept fields) never share a program."""
    programs: dict[str, list[int]] = {}
    for i, a in enumerate(assignments):
        structural = json.dumps(
            [sorted(a), {k: v for k, v in a.items() if k not in SWEEPABLE}], sort_keys=True
        )
        programs.setdefault(structural, []).append(i)
    return list(programs.values())


def _train_program(configs, members, assignments, workdir: Path, writer: Workdir) -> list[dict]:
    base = configs[0]
    dataset = data_lib.load_dataset(base)
    model = build_model(base, dataset.data_shape)
    mesh = sharding.make_mesh(num_sweep=_sweep_axis(len(configs)))
    sharding.check_batch_divides(base.train.batch_size, mesh)
    member_sh = NamedSharding(mesh, P("sweep"))
    state, rngs = create_sweep_state(model, configs, dataset.data_shape)
    state, rngs = jax.device_put(state, member_sh), jax.device_put(rngs, member_sh)
    manager = checkpoint.make_manager(workdir, base.train.keep_checkpoints)
    restored = checkpoint.restore_latest(manager, state)
    if restored is not None:
        state = restored
        logging.info("Resumed sweep from step %d", checkpoint.state_step(state))
    diverged: set[int] = set()
    member_writers = {
        m: writer.member(workdir / "members" / str(m), member=m, **assignments[m]) for m in members
    }

    def log(step, metrics):
        for j, member in enumerate(members):
            record = {k: v[j] for k, v in metrics.items()}
            if record["finite"] < 1 and member not in diverged:
                diverged.add(member)
                logging.warning("Sweep member %d %s diverged at step %d; it stays frozen.",
                                member, assignments[member], int(state_box[0].step[j]) + 1)  # fmt: skip
            member_writers[member].log(step, "train", record)

    state_box = [state]
    step_fn = make_sweep_step(base, mesh)
    try:
        state = loop.run_steps(base, state_box, step_fn, rngs, dataset, mesh, manager, log, lambda s: None)
        checkpoint.save(manager, state, force=True)
        manager.wait_until_finished()
        return _evaluate_members(
            configs, members, assignments, state, dataset, model, member_writers, diverged
        )
    finally:
        manager.close()
        for w in member_writers.values():
            w.close()


def _evaluate_members(configs, members, assignments, state, dataset, model, writers, diverged):
    mesh = sharding.make_mesh()
    repl = sharding.replicated(mesh)
    eval_step = jax.jit(
        make_eval_step(configs[0].loss.likelihood),
        in_shardings=(repl, sharding.data_sharding(mesh), repl),
    )
    rows = []
    for j, (c, member) in enumerate(zip(configs, members, strict=True)):
        member_state = jax.device_put(jax.tree.map(lambda x, j=j: x[j], state), repl)
        results = loop.evaluate(c, writers[member], dataset, model, member_state, mesh, eval_step, True)
        row = {"member": member, **assignments[member], "diverged": int(member in diverged), **results}
        row["step"] = int(jax.device_get(member_state.step))
        writers[member].write_results(row)
        rows.append(row)
    return rows


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

"""Sweeps: many hyperparameter values as one vmapped, sharded program.

The members come from `config.sweep.spec` (`vae_jax.train.sweep_spec`). Numeric
hyperparameters enter the train step as arrays, so all members that differ only in them
train as one jitted program: the step is vmapped (or, on CPU, unrolled member by member;
see `vectorization`) over a member axis that is sharded on the mesh's `sweep` axis, with
the batch sharded on `data`. Members that differ in anything else form separate programs,
run one after another, each through the engine's loop.

All members of a sweep see the same batches (the sweep's own `config.seed` fixes the data
order, in every program and slice); a member's `seed` sets its initialization and sampling
noise.
"""

import dataclasses
import json
import logging
from pathlib import Path

import jax
import ml_collections
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from vae_jax.evaluate import study
from vae_jax.train import engine, evaluation, multihost, sharding
from vae_jax.train.feed import make_sweep_feed
from vae_jax.train.sweep_report import write_sweep_results
from vae_jax.train.sweep_spec import member_config, parse_sweep, programs, slice_members
from vae_jax.train.sweep_step import create_sweep_state, sweep_axis
from vae_jax.train.validate import check_resume_compatible, validate_config
from vae_jax.train.workdir import Workdir, atomic_write


def train_sweep(
    config: ml_collections.ConfigDict, workdir: str | Path, allow_config_change: bool = False
) -> dict:
    """Trains every member of config.sweep.spec (of its slice, config.sweep.slice); returns
    results.json: {"members": rows}, in the members' order.

    Writes config.json, metrics.jsonl (each record with the member's index and values),
    sweep_results.csv and results.json (the rows), plots of each metric against the swept
    value, study/ (the rows as a study table with box plots per metric and the metrics' rank
    correlation, `vae_jax.evaluate.study`; not for a slice: `experiments.study` joins the
    slices), and per member members/<i>/ (its results.json, pictures and TensorBoard events),
    under program_<p>/ when the sweep has several programs. A member's index is its index in
    the whole sweep, in a slice too.
    """
    workdir = Path(workdir)
    assignments = parse_sweep(config.sweep.spec, config)
    configs = {m: member_config(config, assignments[m]) for m in slice_members(config, len(assignments))}
    for c in configs.values():
        validate_config(c)
    check_resume_compatible(workdir, config, allow_config_change)
    writer = Workdir(workdir, tensorboard=False)  # members write their own events: one curve each
    writer.write_config(config)
    groups = programs(assignments)
    program_dirs = ["." if len(groups) == 1 else f"program_{p}" for p in range(len(groups))]
    parts = [[m for m in group if m in configs] for group in groups]  # a slice's part of each program
    writer.write_run_info(
        programs=[{"dir": d, "members": m} for d, m in zip(program_dirs, parts, strict=True) if m]
    )
    rows: list[dict] = []
    try:
        for p, members in enumerate(parts):
            if not members:
                continue
            logging.info("Sweep program %d/%d: %d members in one step", p + 1, len(groups), len(members))
            program = _Program([configs[m] for m in members], members, assignments, writer, config.seed)
            rows += program.train(workdir / program_dirs[p])
        rows.sort(key=lambda row: row["member"])
        if writer.enabled:
            write_sweep_results(workdir, rows, list(assignments[0]))
            if config.sweep.get("slice"):
                logging.info("Slice %s done: experiments.study joins the slices", config.sweep.slice)
            else:
                study.write_study([workdir], workdir / "study")  # the members as one study table, plots
        results = {"members": rows}
        writer.write_results(results)
    finally:
        writer.close()
    return results


@dataclasses.dataclass
class _Program:
    """Members of a sweep that train as one step, and the top-level writer they log through."""

    configs: list[ml_collections.ConfigDict]
    members: list[int]
    assignments: list[dict]
    writer: Workdir
    data_seed: int  # the sweep's own config.seed: every program's (and slice's) data order

    def _run_config(self) -> ml_collections.ConfigDict:
        """The program's config (its first member's) with the sweep's seed, which orders the data."""
        run_config = ml_collections.ConfigDict(self.configs[0].to_dict())
        run_config.seed = self.data_seed
        return run_config

    def train(self, program_dir: Path) -> list[dict]:
        """Trains the members to train.num_steps (resuming), evaluates each; returns their rows."""
        num_sweep = sweep_axis(len(self.members))
        run = engine.build_run(self._run_config(), self.writer, program_dir, num_sweep=num_sweep)
        self.writer.write_run_info(data_shape=list(run.dataset.data_shape))
        writers = {}
        try:
            member_sh = NamedSharding(run.mesh, P("sweep"))
            state, rngs = create_sweep_state(run.model, self.configs, run.dataset.data_shape)
            if jax.process_count() == 1:
                state, rngs = jax.device_put((state, rngs), member_sh)
            else:  # device_put refuses this sharding across processes; a jitted identity builds it
                state, rngs = jax.jit(lambda tree: tree, out_shardings=member_sh)((state, rngs))
            owners = sharding.member_owners(state)
            writers = {
                m: self.writer.member(
                    program_dir / "members" / str(m),
                    owner=owners[j] == jax.process_index(),
                    member=m,
                    **self.assignments[m],
                )
                for j, m in enumerate(self.members)
            }
            state = engine.resume(run, state)
            hooks = engine.Hooks(
                log=lambda step, m: self._log(writers, step, m),
                members=self._labels(),
                epoch_sums=evaluation.EPOCH_SUMS,
            )
            feed = make_sweep_feed(run.config, run.dataset, run.mesh)  # on the device where it can be
            state = engine.train_loop(run, state, lambda s, b: feed.step(s, b, rngs), feed.batches, hooks)
            return self._evaluate(run, state, writers, hooks.diverged, owners)
        finally:
            run.close()
            for w in writers.values():
                w.close()

    def _labels(self) -> list[str]:
        return [f"{m} {self.assignments[m]}" for m in self.members]

    def _log(self, writers, step: int, metrics: dict) -> None:
        for j, member in enumerate(self.members):
            writers[member].log(step, "train", evaluation.train_record({k: v[j] for k, v in metrics.items()}))

    def _evaluate(self, run: engine.Run, state, writers, diverged: set[int], owners: list[int]) -> list[dict]:
        """Each member's final evaluation on a data-parallel mesh, by the process that holds it
        (its pictures and events); the numbers, gathered once, make the rows, which process 0
        writes (with each member's results.json and its metrics.jsonl record)."""
        mesh = sharding.make_mesh()
        eval_step = evaluation.jitted_eval_step(dataclasses.replace(run, mesh=mesh))
        here = jax.process_index()

        def member_state(j: int):
            if jax.process_count() == 1:
                return jax.device_put(jax.tree.map(lambda x: x[j], state), sharding.replicated(mesh))
            return sharding.local_member(state, j)  # evaluated on this process alone (`evaluate`)

        evaluated = []
        for j, (c, member) in enumerate(zip(self.configs, self.members, strict=True)):
            if owners[j] == here:
                member_run = dataclasses.replace(run, config=c, writer=writers[member], mesh=mesh)
                held = member_state(j)
                results = evaluation.evaluate(member_run, held, eval_step, final=True)
                evaluated.append([member, int(jax.device_get(held.step)), results])
        gathered = {member: (step, results) for part in multihost.allgather_json(evaluated)
                    for member, step, results in part}  # fmt: skip
        rows, epochs = [], evaluation.epoch_records(run)  # metrics.jsonl read once for all members
        for j, member in enumerate(self.members):
            step, results = gathered[member]
            if owners[j] != here:  # evaluated by another process: its record, from process 0
                writers[member].log(step, "eval", results)
            row = {"member": member, **self.assignments[member], "diverged": int(j in diverged), **results}
            row["step"] = step
            row.update(evaluation.last_epoch_health(epochs, step, member=member))
            if self.writer.enabled:  # the member's directory may be another process's
                writers[member].path.mkdir(parents=True, exist_ok=True)
                atomic_write(writers[member].path / "results.json", json.dumps(row, indent=2))
            rows.append(row)
        return rows

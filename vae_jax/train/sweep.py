"""Sweeps: many hyperparameter values as one vmapped, sharded program.

The members come from `config.sweep.spec` (`vae_jax.train.sweep_spec`). Numeric
hyperparameters enter the train step as arrays, so all members that differ only in them
train as one jitted program: the step is vmapped (or, on CPU, unrolled member by member;
see `vectorization`) over a member axis that is sharded on the mesh's `sweep` axis, with
the batch sharded on `data`. Members that differ in anything else form separate programs,
run one after another, each through the engine's loop.

All members of a program see the same batches (the base `config.seed` fixes the
data order); a member's `seed` sets its initialization and sampling noise.
"""

import dataclasses
import logging
from pathlib import Path

import jax
import ml_collections
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from vae_jax.evaluate import study
from vae_jax.train import engine, evaluation, sharding
from vae_jax.train.feed import host_batches
from vae_jax.train.sweep_report import write_sweep_results
from vae_jax.train.sweep_spec import member_config, parse_sweep, programs
from vae_jax.train.sweep_step import create_sweep_state, make_sweep_step, sweep_axis
from vae_jax.train.validate import check_resume_compatible, validate_config
from vae_jax.train.workdir import Workdir


def train_sweep(
    config: ml_collections.ConfigDict, workdir: str | Path, allow_config_change: bool = False
) -> dict:
    """Trains every member of config.sweep.spec; returns results.json: {"members": rows}.

    Writes config.json, metrics.jsonl (each record with the member's index and values),
    sweep_results.csv and results.json (the rows), plots of each metric against the swept
    value, study/ (the rows as a study table with box plots per metric and the metrics' rank
    correlation, `vae_jax.evaluate.study`), and per member members/<i>/ (its results.json,
    pictures and TensorBoard events).
    """
    workdir = Path(workdir)
    assignments = parse_sweep(config.sweep.spec, config)
    configs = [member_config(config, a) for a in assignments]
    for c in configs:
        validate_config(c)
    check_resume_compatible(workdir, config, allow_config_change)
    writer = Workdir(workdir, tensorboard=False)  # members write their own events: one curve each
    writer.write_config(config)
    groups = programs(assignments)
    program_dirs = ["." if len(groups) == 1 else f"program_{p}" for p in range(len(groups))]
    writer.write_run_info(
        programs=[{"dir": d, "members": m} for d, m in zip(program_dirs, groups, strict=True)]
    )
    rows: list[dict] = []
    try:
        for p, members in enumerate(groups):
            logging.info("Sweep program %d/%d: %d members in one step", p + 1, len(groups), len(members))
            program = _Program([configs[i] for i in members], members, assignments, writer)
            rows += program.train(workdir / program_dirs[p])
        if writer.enabled:
            write_sweep_results(workdir, rows, list(assignments[0]))
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

    def train(self, program_dir: Path) -> list[dict]:
        """Trains the members to train.num_steps (resuming), evaluates each; returns their rows."""
        writers = {
            m: self.writer.member(program_dir / "members" / str(m), member=m, **self.assignments[m])
            for m in self.members
        }
        num_sweep = sweep_axis(len(self.members))
        run = engine.build_run(self.configs[0], self.writer, program_dir, num_sweep=num_sweep)
        self.writer.write_run_info(data_shape=list(run.dataset.data_shape))
        try:
            member_sh = NamedSharding(run.mesh, P("sweep"))
            state, rngs = create_sweep_state(run.model, self.configs, run.dataset.data_shape)
            if jax.process_count() == 1:
                state, rngs = jax.device_put((state, rngs), member_sh)
            else:  # device_put refuses this sharding across processes; a jitted identity builds it
                state, rngs = jax.jit(lambda tree: tree, out_shardings=member_sh)((state, rngs))
            state = engine.resume(run, state)
            hooks = engine.Hooks(
                log=lambda step, m: self._log(writers, step, m),
                members=self._labels(),
                epoch_sums=evaluation.EPOCH_SUMS,
            )
            step = make_sweep_step(run.config, run.mesh)
            batches = host_batches(run.dataset, run.mesh)
            state = engine.train_loop(run, state, lambda s, b: step(s, b, rngs), batches, hooks)
            return self._evaluate(run, state, writers, hooks.diverged)
        finally:
            run.close()
            for w in writers.values():
                w.close()

    def _labels(self) -> list[str]:
        return [f"{m} {self.assignments[m]}" for m in self.members]

    def _log(self, writers, step: int, metrics: dict) -> None:
        for j, member in enumerate(self.members):
            writers[member].log(step, "train", evaluation.train_record({k: v[j] for k, v in metrics.items()}))

    def _evaluate(self, run: engine.Run, state, writers, diverged: set[int]) -> list[dict]:
        """Each member's final evaluation on a data-parallel mesh; its row also in its results.json."""
        mesh = sharding.make_mesh()
        repl = sharding.replicated(mesh)
        eval_step = evaluation.jitted_eval_step(dataclasses.replace(run, mesh=mesh))
        rows, epochs = [], evaluation.epoch_records(run)  # metrics.jsonl read once for all members
        if jax.process_count() > 1:  # every process evaluates every member on its own (`evaluate`)
            state, repl = sharding.process_local(state), jax.local_devices()[0]
        for j, (c, member) in enumerate(zip(self.configs, self.members, strict=True)):
            member_run = dataclasses.replace(run, config=c, writer=writers[member], mesh=mesh)
            member_state = jax.device_put(jax.tree.map(lambda x, j=j: x[j], state), repl)
            results = evaluation.evaluate(member_run, member_state, eval_step, final=True)
            row = {"member": member, **self.assignments[member], "diverged": int(j in diverged), **results}
            row["step"] = int(jax.device_get(member_state.step))
            row.update(evaluation.last_epoch_health(epochs, row["step"], member=member))
            writers[member].write_results(row)
            rows.append(row)
        return rows

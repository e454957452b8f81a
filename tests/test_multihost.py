"""Multi-process runs through the command line, two processes on loopback: a run and a sweep train
like one process, a sweep's members spread over the processes' devices, a signal to one process
saves every process at one step, a rerun resumes across processes, and a process that never
joins ends the others in one line."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from tests.helpers import ROOT, config_and_flags, device_count_flags, final_params
from vae_jax.train import evaluation, train_and_evaluate
from vae_jax.train.workdir import read_metrics

TIMEOUT = 600  # seconds a round of processes may take on a loaded two-core machine


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Processes:
    """The processes of one multi-process command, started together; their output is appended to
    tmp_path/<name>.<i>.log (one log per process over all rounds). With slurm, they start as a
    SLURM job step would (its variables set here), with `--distributed` and no other flag: JAX
    detects the cluster."""

    def __init__(self, tmp_path: Path, name: str, args: list[str], devices: int = 1, slurm: bool = False):
        env = dict(
            os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu", XLA_FLAGS=device_count_flags(devices)
        )
        port = _free_port()
        self.logs = [tmp_path / f"{name}.{i}.log" for i in range(2)]
        self.procs = []
        for i, log_path in enumerate(self.logs):
            if slurm:
                flags = ["--distributed"]
                slurm_env = {"SLURM_JOB_ID": "1", "SLURM_STEP_NODELIST": "localhost", "SLURM_NTASKS": "2"}
                env.update(
                    slurm_env, SLURM_PROCID=f"{i}", SLURM_LOCALID=f"{i}", JAX_COORDINATOR_PORT=f"{port}"
                )
            else:
                flags = ["--num_processes=2", f"--process_id={i}", f"--coordinator_address=127.0.0.1:{port}"]
            with open(log_path, "a") as log:
                self.procs.append(subprocess.Popen(
                    [sys.executable, "-m", "experiments.run", *args, *flags],
                    cwd=tmp_path, env=dict(env), stdout=log, stderr=subprocess.STDOUT,
                ))  # fmt: skip

    def wait(self, timeout: float = TIMEOUT) -> list[int]:
        deadline = time.time() + timeout
        try:
            return [p.wait(timeout=max(1.0, deadline - time.time())) for p in self.procs]
        finally:
            self.kill()

    def kill(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    def text(self, i: int) -> str:
        return self.logs[i].read_text()

    def output(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for log in self.logs)


def _steps(workdir: Path) -> list[int]:
    """The finished checkpoints' steps (Orbax renames a step's directory to its number when done)."""
    directory = workdir / "checkpoints"
    return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit()) if directory.is_dir() else []


def _signal_mid_run(processes: _Processes, workdir: Path, step: int, process: int) -> list[int]:
    """SIGTERM to one process once checkpoint `step` exists; the processes' exit codes."""
    try:
        _wait_for_step(workdir, processes, step)
        processes.procs[process].send_signal(signal.SIGTERM)
        return processes.wait()
    finally:
        processes.kill()


def _kill_mid_run(processes: _Processes, workdir: Path, step: int) -> None:
    """SIGKILL to every process once checkpoint `step` exists."""
    try:
        _wait_for_step(workdir, processes, step)
        for p in processes.procs:
            p.send_signal(signal.SIGKILL)
        assert processes.wait() == [-signal.SIGKILL] * 2
    finally:
        processes.kill()


def _wait_for_step(workdir: Path, processes: _Processes, step: int, timeout: float = TIMEOUT) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if any(s >= step for s in _steps(workdir)):
            return
        assert all(p.poll() is None for p in processes.procs), processes.output()
        time.sleep(0.05)
    raise TimeoutError(f"no checkpoint {step} after {timeout} s\n{processes.output()}")


@pytest.fixture
def vae_config():
    """The smoke VAE, small, on procedural dSprites (what is under test is the processes, not the
    net or the data: no TFDS to prepare or import), with enough steps after its first checkpoint
    for a signal to land mid-run, and the same config as command-line flags."""
    overrides = {
        "data.name": "dsprites", "model.hidden": (16,), "model.latent_dim": 4, "train.num_steps": 200,
        "train.checkpoint_every": 10, "train.log_every": 50, "eval.iwae_k": 0, "eval.num_examples": 64,
    }  # fmt: skip
    return config_and_flags("vae", "smoke", overrides)


def _assert_close_params(a: dict, b: dict):
    """Parameters of two device layouts: the batch's sums run in another order, and Adam turns
    last-bit differences of near-zero gradients into ~1e-7 on a few weights."""
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6, err_msg=k)


def _saved_step(log: str) -> int:
    """The step a process saved on a signal ('Signal 15: saving step S and exiting.')."""
    (line,) = [line for line in log.splitlines() if "saving step" in line]
    return int(line.split("saving step ")[1].split()[0])


@pytest.mark.slow
def test_a_signal_to_one_process_saves_all_at_one_step_and_reruns_resume(tmp_path, vae_config):
    """A run of two processes: SIGTERM to process 1 mid-run ends both with 128 + 15 after saving one
    checkpoint at one step; the rerun, killed with SIGKILL mid-run, leaves its last complete
    checkpoint; the third run resumes from it to the end. The parameters and results are those of
    the run trained uninterrupted in one process; process 0 alone writes records, none twice."""
    config, args = vae_config
    workdir = tmp_path / "run"
    args = [*args, f"--workdir={workdir}"]
    first = _Processes(tmp_path, "run", args)
    codes = _signal_mid_run(first, workdir, config.train.checkpoint_every, process=1)
    # 0: the run ended before the signal's step (then this machine ran 190 steps within the ~1 s
    # JAX's notifier takes to see a SIGTERM: give the run more steps).
    assert codes == [128 + signal.SIGTERM] * 2, first.output()
    saved = {_saved_step(first.text(i)) for i in range(2)}
    assert len(saved) == 1 and max(_steps(workdir)) == saved.pop() < config.train.num_steps
    stopped = max(_steps(workdir))
    assert "Another process received a stop signal" in first.text(0)
    _kill_mid_run(_Processes(tmp_path, "run", args), workdir, stopped + config.train.checkpoint_every)
    killed = max(_steps(workdir))
    assert stopped < killed < config.train.num_steps
    alone = config.copy_and_resolve_references()
    alone.train.checkpoint_every = config.train.num_steps  # saving changes no parameter
    single = train_and_evaluate(alone, tmp_path / "one")  # the uninterrupted run, in this process
    third = _Processes(tmp_path, "run", args)
    assert third.wait() == [0, 0], third.output()
    for i in range(2):
        log = third.text(i)
        assert f"Resumed from step {killed} " in log and f"process {i + 1} of 2" in log, log[-3000:]
    two = json.loads((workdir / "results.json").read_text())
    assert two.keys() == single.keys() and two["step"] == config.train.num_steps
    for key in single:
        np.testing.assert_allclose(two[key], single[key], rtol=1e-5, err_msg=key)
    _assert_close_params(final_params(config, workdir), final_params(config, tmp_path / "one"))
    records = [(r["step"], r["split"]) for r in read_metrics(workdir / "metrics.jsonl")]
    assert len(records) == len(set(records)), "a record written twice"


@pytest.mark.slow
def test_a_process_that_never_joins_ends_the_others_in_one_line(tmp_path):
    """Process 0 of 2, alone: within --distributed_timeout (and the start-up) it ends in one line."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
    address = f"127.0.0.1:{_free_port()}"
    args = [f"--config={ROOT / 'experiments/vae.py'}:smoke", f"--workdir={tmp_path}/w", "--num_processes=2",
            "--process_id=0", f"--coordinator_address={address}", "--distributed_timeout=2"]  # fmt: skip
    start = time.time()
    result = subprocess.run(
        [sys.executable, "-m", "experiments.run", *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2 and time.time() - start < 60
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert lines == [
        f"error: not all processes joined the run at {address} within --distributed_timeout=2 s; "
        "start every process with the same --coordinator_address and --num_processes"
    ]
    assert "Traceback" not in result.stderr and not (tmp_path / "w").exists()


def _member_params(config, workdir: Path) -> list[dict]:
    """Each member's parameters (and step) in the latest checkpoint of a sweep's workdir."""
    from vae_jax.models import build_model
    from vae_jax.train import checkpoint, sweep_spec, sweep_step

    configs = [sweep_spec.member_config(config, a) for a in sweep_spec.parse_sweep(config.sweep.spec, config)]
    model = build_model(config, (64, 64, 1))
    state, _ = sweep_step.create_sweep_state(model, configs, (64, 64, 1))
    manager = checkpoint.make_manager(workdir)
    restored = checkpoint.restore_latest(manager, state)
    manager.close()
    tree = {"params": restored.params, "model_state": restored.model_state, "step": restored.step}
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    return [{jax.tree_util.keystr(p): np.asarray(v)[j] for p, v in leaves} for j in range(len(configs))]


@pytest.mark.slow
def test_a_sweep_spreads_its_members_over_the_processes_and_resumes_after_a_signal(
    tmp_path, vae_config, monkeypatch
):
    """A 4-member sweep as two processes of two devices each: the members are sharded over all four
    devices (two per process, each member's batch on its device); SIGTERM to process 0 mid-sweep
    ends both after saving one step; the rerun, killed with SIGKILL mid-sweep, leaves its last
    complete checkpoint; the third run resumes from it and finishes. Each member ends with the parameters of
    its config trained alone in one process; its evaluation, pictures and events come from the
    process that holds it, its row and records once."""
    config, args = vae_config
    workdir = tmp_path / "sweep"
    config.sweep.spec = "loss.beta=1,2,4,8"  # seed 0 for all: the sweep's data order is its solo runs'
    # The CPU's default form, 'map': each process steps only the members it holds
    # (test_sweep.py counts the collectives that would move members between devices).
    args = [*args, f"--workdir={workdir}", f"--config.sweep.spec={config.sweep.spec}"]
    first = _Processes(tmp_path, "sweep", args, devices=2)
    codes = _signal_mid_run(first, workdir, config.train.checkpoint_every, process=0)
    assert codes == [128 + signal.SIGTERM] * 2, first.output()
    stopped = max(_steps(workdir))
    assert {_saved_step(first.text(i)) for i in range(2)} == {stopped} and stopped < config.train.num_steps
    # The rerun, as a SLURM job step, killed with SIGKILL mid-sweep; the third run resumes from the
    # last complete checkpoint to the end.
    second = _Processes(tmp_path, "sweep", args, devices=2, slurm=True)
    _kill_mid_run(second, workdir, stopped + config.train.checkpoint_every)
    assert all(f"Resumed from step {stopped} " in second.text(i) for i in range(2))
    killed = max(_steps(workdir))
    assert stopped < killed < config.train.num_steps
    third = _Processes(tmp_path, "sweep", args, devices=2, slurm=True)
    assert third.wait() == [0, 0], third.output()
    assert all(f"Resumed from step {killed} " in third.text(i) for i in range(2))
    rows = json.loads((workdir / "results.json").read_text())["members"]
    assert [(r["member"], r["loss.beta"], r["step"]) for r in rows] == [
        (j, beta, config.train.num_steps) for j, beta in enumerate((1, 2, 4, 8))
    ]
    assert all(np.isfinite(r["neg_elbo"]) for r in rows)
    assert all(
        json.loads((workdir / "members" / str(j) / "results.json").read_text()) == rows[j] for j in range(4)
    )
    members = _member_params(config, workdir)
    # Each member alone: the single run's path in this process, without its evaluation (pictures
    # take seconds per run here; evaluation across processes is the run test's).
    monkeypatch.setattr(evaluation, "final_evaluation", lambda *args: {})
    for j, beta in enumerate((1.0, 2.0, 4.0, 8.0)):
        alone = config.copy_and_resolve_references()
        alone.sweep.spec, alone.loss.beta, alone.train.checkpoint_every = "", beta, config.train.num_steps
        train_and_evaluate(alone, tmp_path / f"solo{j}")
        _assert_close_params(members[j], final_params(alone, tmp_path / f"solo{j}"))
    # Members 0, 1 on process 0's devices, 2, 3 on process 1's: in each run, each process wrote
    # the events of its members (the event file's name ends with .<pid>.<n>).
    pids = [{p.name.split(".")[-2] for p in (workdir / "members" / str(j)).glob("events.out.tfevents.*")}
            for j in range(4)]  # fmt: skip
    assert len(pids[0]) >= 2 and pids[0] == pids[1] and pids[2] == pids[3] and not pids[0] & pids[2], pids
    records = [(r["step"], r["split"], r["member"]) for r in read_metrics(workdir / "metrics.jsonl")]
    assert len(records) == len(set(records)) and {m for _, s, m in records if s == "eval"} == {0, 1, 2, 3}


def test_a_sweep_axis_keeps_each_member_within_a_process_or_over_whole_ones():
    """(sweep axis, devices, devices per process) -> whether each member's devices (a row of the
    mesh) lie in one process or span whole processes: then every process feeds whole rows."""
    from vae_jax.train import sharding

    aligned = [(4, 4, 2), (2, 4, 2), (1, 4, 2), (8, 8, 2), (2, 8, 2), (1, 8, 4), (2, 8, 4)]
    for num_sweep, devices, local in aligned:
        assert sharding.processes_aligned(num_sweep, devices, local), (num_sweep, devices, local)
    # 12 devices in 4 processes of 3, sweep axis 4: a member's 3 devices are one process's; with
    # a sweep axis of 6 members have 2 devices each, and the second straddles two processes.
    assert sharding.processes_aligned(4, 12, 3) and not sharding.processes_aligned(6, 12, 3)

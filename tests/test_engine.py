"""The training engine: the step loop's hooks, the workdir writer, the dispatcher, the module graph."""

import ast
import importlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from tests.helpers import batches_from, toy_config, toy_state, toy_step
from vae_jax.train import checkpoint, dispatch, engine
from vae_jax.train.workdir import Workdir, read_metrics

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT / "vae_jax" / "train"
TRAINERS = ("single", "sweep", "prior_training", "closed_form")


def toy_run(tmp_path, config, with_checkpoints=True):
    manager = checkpoint.make_manager(tmp_path, async_save=False) if with_checkpoints else None
    return engine.Run(config, Workdir(tmp_path, tensorboard=False), None, None, None, manager)


def test_loop_calls_hooks_on_their_steps_and_checkpoints(tmp_path):
    run = toy_run(tmp_path, toy_config())
    logged, evaluated = [], []
    hooks = engine.Hooks(
        log=lambda step, m: logged.append(step), evaluate=lambda s: evaluated.append(int(s.step))
    )
    state = engine.train_loop(run, toy_state(), toy_step, batches_from(np.ones(10)), hooks)
    assert int(state.step) == 10 and float(state.params["w"]) == 10.0
    assert logged == [3, 6, 9, 10]  # every log_every, and the last step
    assert evaluated == [5]  # every eval.every, not at the last step (the trainer's final eval follows)
    assert sorted(run.manager.all_steps()) == [4, 8, 10]  # every checkpoint_every, and the final state
    run.close()


def test_loop_resumes_where_the_state_is(tmp_path):
    run = toy_run(tmp_path, toy_config(), with_checkpoints=False)
    logged = []
    start = toy_state().replace(step=jnp.asarray(7, jnp.int32))
    values = np.arange(1, 11, dtype=np.float32)  # step t adds t
    state = engine.train_loop(
        run, start, toy_step, batches_from(values), engine.Hooks(log=lambda t, m: logged.append(t))
    )
    assert int(state.step) == 10 and float(state.params["w"]) == 8 + 9 + 10
    assert logged == [9, 10]


def test_a_run_stopped_after_its_last_checkpoint_resumes_to_evaluate(tmp_path):
    """A run killed during its final evaluation restores the last step's checkpoint: the loop
    trains nothing, logs nothing and saves nothing again (saving the same step again raised)."""
    run = toy_run(tmp_path, toy_config())
    hooks = engine.Hooks(log=lambda *a: None)
    first = engine.train_loop(run, toy_state(), toy_step, batches_from(np.ones(10)), hooks)
    logged = []
    hooks = engine.Hooks(log=lambda t, m: logged.append(t))
    state = engine.train_loop(run, first, toy_step, batches_from(np.ones(10)), hooks)
    assert int(state.step) == 10 and float(state.params["w"]) == 10.0 and logged == []
    assert sorted(run.manager.all_steps()) == [4, 8, 10]
    run.close()


def test_non_finite_step_stops_a_single_run_keeping_the_last_good_state(tmp_path):
    run = toy_run(tmp_path, toy_config(log_every=1), with_checkpoints=False)
    values = [1.0, 1.0, np.nan, 1.0]
    with pytest.raises(engine.NonFiniteError, match="at step 3 .*kept from step 2"):
        engine.train_loop(run, toy_state(), toy_step, batches_from(values), engine.Hooks(log=lambda *a: None))


def test_non_finite_member_of_a_sweep_is_frozen_and_reported_once(tmp_path, caplog):
    run = toy_run(tmp_path, toy_config(num_steps=4, log_every=1), with_checkpoints=False)
    values = [[1.0, 1.0], [1.0, np.nan], [1.0, np.nan], [1.0, 1.0]]
    hooks = engine.Hooks(log=lambda *a: None, members=["a", "b"])
    state = engine.train_loop(run, toy_state(members=2), toy_step, batches_from(values), hooks)
    assert hooks.diverged == {1}
    np.testing.assert_array_equal(state.params["w"], [4.0, 2.0])  # b kept its steps 1 and 4 only
    assert sum("Sweep member b diverged" in r.message for r in caplog.records) == 1


def test_signal_saves_a_checkpoint_and_exits_with_128_plus_signal(tmp_path):
    run = toy_run(tmp_path, toy_config(checkpoint_every=100))

    def log(step, metrics):
        if step == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(SystemExit) as exit_info:
        engine.train_loop(run, toy_state(), toy_step, batches_from(np.ones(10)), engine.Hooks(log=log))
    assert exit_info.value.code == 128 + signal.SIGTERM
    assert run.manager.all_steps() == [3]  # saved at the step where the signal was seen
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is put back
    run.close()


def test_workdir_writer_records_and_atomic_files(tmp_path):
    writer = Workdir(tmp_path)
    writer.write_config(ml_collections.ConfigDict({"a": 1}))
    writer.log(5, "train", {"loss": np.float32(2.5), "vector": np.ones(3), "n": 4})
    member = writer.member(tmp_path / "members" / "0", member=0, beta=4.0)
    member.log(5, "eval", {"loss": 1.0})
    member.close()
    writer.write_results({"loss": 1.0})
    writer.close()
    assert json.loads((tmp_path / "config.json").read_text()) == {"a": 1}
    assert json.loads((tmp_path / "results.json").read_text()) == {"loss": 1.0}
    assert read_metrics(tmp_path / "metrics.jsonl") == [
        {"step": 5, "split": "train", "loss": 2.5, "n": 4.0},  # scalars only
        {"step": 5, "split": "eval", "member": 0, "beta": 4.0, "loss": 1.0},
    ]
    assert list(tmp_path.glob("events.out.tfevents.*")) and list((tmp_path / "members/0").glob("events.*"))
    assert not list(tmp_path.rglob("*.tmp"))


@pytest.mark.parametrize(
    ("name", "expected"),
    [("beta_vae", "single"), ("beta_vae:sweep", "sweep"), ("vq_prior", "vq_prior"), ("ppca", "ppca")],
)
def test_dispatcher_names_the_trainer(name, expected):
    module, _, preset = name.partition(":")
    config = importlib.import_module(f"experiments.{module}").get_config(preset or None)
    assert dispatch.trainer_name(config) == expected
    assert expected in dispatch.TRAINERS


def _imports(path: Path) -> set[str]:
    """The vae_jax.train modules path imports, at any depth (inside functions too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("vae_jax.train"):
            if node.module == "vae_jax.train":
                found |= {alias.name for alias in node.names if (TRAIN / f"{alias.name}.py").exists()}
            else:
                found.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[2] for a in node.names if a.name.startswith("vae_jax.train.")}
    return found - {path.stem}


def test_train_modules_import_no_circle_and_no_trainer_imports_another():
    graph = {p.stem: _imports(p) for p in TRAIN.glob("*.py") if p.stem != "__init__"}
    assert {"engine", "dispatch", *TRAINERS} <= graph.keys()

    def reaches(start, target, seen=()):
        return any(n == target or (n not in seen and reaches(n, target, (*seen, n))) for n in graph[start])

    circles = [m for m in graph if reaches(m, m)]
    assert not circles, f"import circles through {circles}: {graph}"
    for trainer in TRAINERS:
        assert not graph[trainer] & {"dispatch", *TRAINERS}, (trainer, graph[trainer])


def test_train_functions_are_short_with_few_positional_parameters():
    long, wide = [], []
    for path in TRAIN.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                where = f"{path.name}:{node.lineno} {node.name}"
                if node.end_lineno - node.lineno + 1 > 60:
                    long.append(where)
                positional = [a.arg for a in (*node.args.posonlyargs, *node.args.args) if a.arg != "self"]
                if len(positional) > 5:
                    wide.append(where)
    assert not long, f"functions over 60 lines: {long}"
    assert not wide, f"more than 5 positional parameters: {wide}"


def _fresh_python(code: str) -> str:
    """What `python -c code` prints in a new process (which fails the test if it fails)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_worker_parts_import_no_trainer_dependencies():
    """A worker process (the sweep-parity and per-ISA workers, benchmarks) imports the step, the
    sweep step and the mesh without the data pipeline, checkpoints, scikit-learn, matplotlib or
    TensorFlow: each of those costs a process seconds of start-up."""
    code = (
        "import sys; import vae_jax.train; from vae_jax.train import sharding, steps, sweep_step, state; "
        "print(sorted(m for m in ('tensorflow', 'tensorflow_datasets', 'sklearn', 'matplotlib', "
        "'orbax.checkpoint') if m in sys.modules))"
    )
    assert _fresh_python(code) == "[]"


@pytest.mark.slow
def test_a_run_imports_tfds_and_sklearn_only_when_it_needs_them():
    """TFDS (and TensorFlow) load only with an image dataset, scikit-learn only with a metric that
    fits a classifier: the main job and the study's sweeps (procedural dSprites) start seconds
    sooner, and run where TensorFlow is not installed (accelerator images often lack it)."""
    code = (
        "import sys; import experiments.run; from experiments import beta_vae; "
        "from vae_jax import data; from vae_jax.train import single, sweep; "
        "data.load_dataset(beta_vae.get_config('smoke')); "
        "print([m for m in ('tensorflow', 'tensorflow_datasets', 'sklearn') if m in sys.modules])"
    )
    assert _fresh_python(code) == "[]"


@pytest.mark.slow
def test_tensorboard_reads_what_a_workdir_writes_without_tensorflow(tmp_path):
    """A run's writer (metrics.jsonl, the TensorBoard event file, a PNG grid) never imports
    TensorFlow, and TensorBoard's own loader reads back its scalars and images."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    code = (
        "import sys; import numpy as np; from vae_jax.train.workdir import Workdir; "
        f"w = Workdir({str(tmp_path)!r}); w.log(5, 'train', {{'loss': 2.5, 'kl': 0.25}}); "
        "w.write_grid('samples', 5, np.linspace(0, 1, 4 * 7 * 7).reshape(4, 7, 7, 1), 2); "
        "w.log(9, 'eval', {'loss': 1.5}); w.close(); print('tensorflow' in sys.modules)"
    )
    assert _fresh_python(code) == "False"
    (events,) = tmp_path.glob("events.out.tfevents.*")
    loaded = EventAccumulator(str(events), size_guidance={"scalars": 0, "images": 0}).Reload()
    assert sorted(loaded.Tags()["scalars"]) == ["eval/loss", "train/kl", "train/loss"]
    assert [(e.step, e.value) for e in loaded.Scalars("train/loss")] == [(5, 2.5)]
    assert [(e.step, e.value) for e in loaded.Scalars("eval/loss")] == [(9, 1.5)]
    (image,) = loaded.Images("samples")
    assert image.step == 5 and (image.height, image.width) == (17, 17)  # 2 x 2 tiles of 7, 1 px borders
    assert image.encoded_image_string.startswith(b"\x89PNG")

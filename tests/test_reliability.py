"""Faults provoked for real: bad configs, corrupt checkpoints, NaNs, torn logs (across processes:
tests/test_multihost.py)."""

import json
import re
from pathlib import Path

import jax
import numpy as np
import pytest

from tests.helpers import ROOT, cli, load_config
from vae_jax import data as data_lib
from vae_jax.train import ConfigError, NonFiniteError, checkpoint, engine, train_and_evaluate, validate_config
from vae_jax.train.workdir import Workdir, read_metrics


@pytest.mark.parametrize(
    "field,value,expect",
    [
        ("loss.beta", -1.0, "config.loss.beta=-1.0 is invalid: must be >= 0"),
        ("loss.c_max", -5.0, "config.loss.c_max=-5.0"),
        ("model.latent_dim", 0, "config.model.latent_dim=0 is invalid: must be > 0"),
        ("train.batch_size", -8, "config.train.batch_size=-8"),
        ("model.name", "vaee", "must be one of ['ae', 'ppca', 'vae', 'vae2', 'vq_prior', 'vqvae']"),
        ("data.name", "mnsit", "config.data.name='mnsit'"),
        ("optim.name", "adamm", "config.optim.name='adamm'"),
        ("eval.disentanglement", ("mig", "mgi"), "config.eval.disentanglement='mgi'"),
        ("model.vq.decay", 1.5, "config.model.vq.decay=1.5 is invalid: must be in (0, 1)"),
        ("model.conv_impl", "cudnn", "config.model.conv_impl='cudnn' is invalid: must be one of"),
        ("loss.beta_warmup", -10.0, "config.loss.beta_warmup=-10.0 is invalid: must be >= 0"),
        (
            "loss.method",
            "tcvae",
            "must be one of ['vae', 'beta_tcvae', 'dip_vae_i', 'dip_vae_ii', 'factor_vae']",
        ),
        ("loss.factor_gamma", -1.0, "config.loss.factor_gamma=-1.0 is invalid: must be >= 0"),
        (
            "data.texture",
            "/nonexistent/scream.jpg",
            "config.data.texture='/nonexistent/scream.jpg' is invalid",
        ),
    ],
)
def test_invalid_config_values_name_field_value_and_rule(field, value, expect):
    config = load_config("beta_vae", "smoke")
    group, name = field.rsplit(".", 1)
    node = config
    for part in group.split("."):
        node = node[part]
    node[name] = value
    with pytest.raises(ConfigError) as e:
        validate_config(config)
    assert expect in str(e.value)


@pytest.mark.parametrize(
    "name,fields,expect",
    [
        ("factor_vae", {"loss.beta": 4.0}, "config.loss.beta=4.0 is invalid: loss.method='factor_vae' keeps"),
        ("dip_vae", {"loss.gamma": 1000.0}, "config.loss.gamma=1000.0 is invalid"),
        (
            "beta_tcvae",
            {"loss.tc_estimator": "mss", "loss.tc_dataset_size": 0},
            "needs the training set's size",
        ),
        ("beta_tcvae", {"loss.tc_estimator": "exact"}, "config.loss.tc_estimator='exact' is invalid"),
        ("factor_vae", {"optim.discriminator.learning_rate": 0.0}, "optim.discriminator.learning_rate=0.0"),
        ("factor_vae", {"model.disc_hidden": (64, 0)}, "config.model.disc_hidden=(64, 0)"),
    ],
)
def test_disentangling_method_fields_are_validated(name, fields, expect):
    config = load_config(name, "smoke")
    validate_config(config)
    for field, value in fields.items():
        group, leaf = field.rsplit(".", 1)
        node = config
        for part in group.split("."):
            node = node[part]
        node[leaf] = value
    with pytest.raises(ConfigError, match=re.escape(expect)):
        validate_config(config)


@pytest.mark.slow
def test_cli_reports_a_bad_value_in_one_line_and_exits_nonzero(tmp_path):
    config = f"--config={ROOT / 'experiments/beta_vae.py'}:smoke"
    result = cli(config, f"--workdir={tmp_path}/w", "--config.loss.beta=-2.0", check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == "error: config.loss.beta=-2.0 is invalid: must be >= 0"
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "w").exists()  # nothing was created
    result = cli(f"--config={ROOT / 'experiments/beta_vae.py'}:quik", check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: ValueError: unknown preset 'quik'")


BETA_VAE_SMOKE = f"--config={ROOT / 'experiments/beta_vae.py'}:smoke"


@pytest.fixture
def run_module():
    """experiments.run with its flags parsed in this process (reset afterwards)."""
    from absl import flags

    from experiments import run

    yield run
    flags.FLAGS.unparse_flags()


def test_cli_keeps_compiled_programs_in_a_cache_it_can_be_told_about(run_module, tmp_path):
    """Default on an accelerator ~/.cache/vae_jax/jax (reruns, resumes and --mode=eval skip the
    compile), off on a CPU; the flag moves it or turns it off anywhere; JAX_COMPILATION_CACHE_DIR,
    where set (as by these tests), is kept."""
    pick = run_module.compilation_cache_dir
    assert pick(None, {"XDG_CACHE_HOME": "/xdg"}, "gpu") == "/xdg/vae_jax/jax"
    assert pick(None, {"XDG_CACHE_HOME": ""}, "tpu") == str(Path.home() / ".cache/vae_jax/jax")  # "" = unset
    assert pick(None, {"XDG_CACHE_HOME": "/xdg"}, "cpu") is None
    assert pick(None, {"JAX_COMPILATION_CACHE_DIR": "/env"}, "gpu") is None
    assert pick("/mine", {"JAX_COMPILATION_CACHE_DIR": "/env"}, "cpu") == "/mine"
    assert pick("", {}, "gpu") == ""
    before = jax.config.jax_compilation_cache_dir, jax.config.jax_compilation_cache_max_size
    try:
        run_module.parse_flags(["run", BETA_VAE_SMOKE, f"--compilation_cache={tmp_path / 'cache'}"])
        run_module._use_compilation_cache()
        assert jax.config.jax_compilation_cache_dir == str(tmp_path / "cache")
        assert jax.config.jax_compilation_cache_max_size == run_module.CACHE_MAX_BYTES
        assert (tmp_path / "cache").is_dir()
    finally:
        jax.config.update("jax_compilation_cache_dir", before[0])
        jax.config.update("jax_compilation_cache_max_size", before[1])


def _cli_in_process(run_module, capsys, *args) -> str:
    """The stderr of experiments.run ARGS run in this process, which must exit with code 2: the
    same parse_flags and main as the command line, without a new process's imports (~6 s each).
    Only for arguments without `--config.*` overrides (see the misspelled-field test)."""
    with pytest.raises(SystemExit) as e:
        run_module.parse_flags(["run", *args])
        run_module.main([])
    assert e.value.code == 2
    return capsys.readouterr().err


def _assert_one_line(stderr: str, expect: str):
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == expect


@pytest.mark.slow
def test_cli_reports_a_misspelled_override_field_in_one_line(tmp_path):
    # In its own process: ml_collections defines the `--config.*` override flags while absl parses
    # `--config`, which a second parse in one process does not repeat.
    result = cli(BETA_VAE_SMOKE, f"--workdir={tmp_path}/w", "--config.loss.bta=1", check=False)
    assert result.returncode == 2, result.stderr[-2000:]
    _assert_one_line(
        result.stderr,
        """error: --config.loss.bta: the config has no field 'bta'. Did you mean "beta" instead of "bta"?""",
    )
    assert not (tmp_path / "w").exists()


def test_cli_reports_a_missing_config_file_in_one_line(tmp_path, capsys, run_module):
    stderr = _cli_in_process(
        run_module, capsys, f"--config={tmp_path}/nope.py:smoke", f"--workdir={tmp_path}/w"
    )
    _assert_one_line(stderr, f"error: --config={tmp_path}/nope.py: no such config file")


def test_cli_reports_a_workdir_that_is_a_file_in_one_line(tmp_path, capsys, run_module):
    (tmp_path / "file").write_text("not a directory")
    stderr = _cli_in_process(run_module, capsys, BETA_VAE_SMOKE, f"--workdir={tmp_path}/file")
    _assert_one_line(
        stderr, f"error: --workdir={tmp_path}/file is invalid: {tmp_path}/file is a file, not a directory; "
        "pick another",
    )  # fmt: skip


def test_cli_reports_an_incomplete_multi_host_setup_in_one_line(capsys, run_module):
    stderr = _cli_in_process(run_module, capsys, BETA_VAE_SMOKE, "--num_processes=2", "--process_id=1")
    _assert_one_line(
        stderr, "error: multi-host needs --coordinator_address, --num_processes and --process_id together "
        "(missing --coordinator_address), or --distributed alone on a cluster JAX detects",
    )  # fmt: skip


def test_cli_reports_eval_without_checkpoints_in_one_line(tmp_path, capsys, run_module):
    stderr = _cli_in_process(run_module, capsys, BETA_VAE_SMOKE, f"--workdir={tmp_path}/w", "--mode=eval")
    _assert_one_line(stderr, f"error: no checkpoints/ in {tmp_path}/w: train first (--mode=train)")


@pytest.mark.slow
def test_cli_reports_a_missing_local_dir_before_looking_for_data(tmp_path):
    args = (
        "--config.data.name=mnist",
        "--config.data.source=auto",
        f"--config.data.local_dir={tmp_path}/nope",
    )
    config = f"--config={ROOT / 'experiments/vae.py'}:smoke"
    result = cli(config, f"--workdir={tmp_path}/w", *args, check=False)  # overrides: own process
    assert result.returncode == 2, result.stderr[-2000:]
    _assert_one_line(
        result.stderr, f"error: config.data.local_dir='{tmp_path}/nope' is invalid: no such directory; "
        "point it at the directory that holds the dataset's files",
    )  # fmt: skip
    assert not (tmp_path / "w").exists()  # stopped before the workdir, the data and TFDS's download


@pytest.mark.parametrize("bug", [ValueError("a bug of ours"), TypeError("a bug of ours")])
def test_cli_keeps_the_traceback_of_a_bug(bug, tmp_path, monkeypatch, run_module):
    import vae_jax.train

    def broken(*args, **kwargs):
        raise bug

    monkeypatch.setattr(vae_jax.train, "train_and_evaluate", broken)
    run_module.parse_flags(["run", BETA_VAE_SMOKE, f"--workdir={tmp_path}/w"])
    with pytest.raises(type(bug), match="a bug of ours"):  # not SystemExit: app.run prints its traceback
        run_module.main([])


def test_cli_ends_a_user_error_in_one_line_in_process(tmp_path, monkeypatch, capsys, run_module):
    import vae_jax.train

    def broken(*args, **kwargs):
        raise ConfigError("config.loss.beta=-1.0 is invalid: must be >= 0")

    monkeypatch.setattr(vae_jax.train, "train_and_evaluate", broken)
    run_module.parse_flags(["run", BETA_VAE_SMOKE, f"--workdir={tmp_path}/w"])
    with pytest.raises(SystemExit) as e:
        run_module.main([])
    assert e.value.code == 2
    assert capsys.readouterr().err == "error: config.loss.beta=-1.0 is invalid: must be >= 0\n"


def test_batch_that_does_not_divide_over_devices(monkeypatch):
    import types

    from vae_jax.train import sharding, validate

    monkeypatch.setattr(validate.jax, "device_count", lambda: 8)  # eight devices, without starting them
    config = load_config("beta_vae", "smoke")
    config.train.batch_size = 12
    with pytest.raises(
        ConfigError, match="config.train.batch_size=12 is invalid: must be a multiple of the 8 devices"
    ):
        validate.validate_config(config)
    config.train.batch_size, config.eval.batch_size = 16, 20
    with pytest.raises(
        ConfigError, match="config.eval.batch_size=20 is invalid: must be a multiple of the 8"
    ):
        validate.validate_config(config)
    mesh = types.SimpleNamespace(shape={"sweep": 2, "data": 4})  # the mesh's data axis, as the engine checks
    with pytest.raises(
        ConfigError, match="batch_size=6 does not divide over the 4 devices of the 'data' axis"
    ):
        sharding.check_batch_divides(6, mesh)
    sharding.check_batch_divides(8, mesh)


def _smoke(tmp_path, **train):
    config = load_config("beta_vae", "smoke")
    config.train.update(train)
    return config, tmp_path / "run"


@pytest.mark.slow
def test_resume_with_a_different_config_is_refused_unless_allowed(tmp_path):
    config, workdir = _smoke(tmp_path, num_steps=4, checkpoint_every=2)
    train_and_evaluate(config, workdir)
    changed = load_config("beta_vae", "smoke")
    changed.train.update(num_steps=6, checkpoint_every=2)
    changed.loss.beta, changed.optim.learning_rate = 8.0, 1e-3
    with pytest.raises(ConfigError) as e:
        train_and_evaluate(changed, workdir)
    assert "loss.beta: 4.0 -> 8.0" in str(e.value) and "optim.learning_rate" in str(e.value)
    assert "--allow_config_change" in str(e.value)
    assert json.loads((workdir / "config.json").read_text())["loss"]["beta"] == 4.0  # untouched
    assert train_and_evaluate(changed, workdir, allow_config_change=True)["step"] == 6
    # Stopped during its final evaluation (results.json not yet written), the run is rerun: it
    # restores step 6, trains nothing and evaluates.
    (workdir / "results.json").unlink()
    assert train_and_evaluate(changed, workdir)["step"] == 6
    assert (workdir / "results.json").exists()


def _truncate_files(directory: Path) -> int:
    count = 0
    for path in directory.rglob("*"):
        if path.is_file() and path.stat().st_size > 16 and "metadata" not in path.name:
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
            count += 1
    return count


@pytest.mark.slow
def test_corrupt_latest_checkpoint_falls_back_to_previous(tmp_path, caplog):
    config, workdir = _smoke(tmp_path, num_steps=8, checkpoint_every=4)
    train_and_evaluate(config, workdir)
    assert _truncate_files(workdir / "checkpoints" / "8") > 0
    _, _, _, state = engine.setup(config)
    manager = checkpoint.make_manager(workdir)
    with caplog.at_level("WARNING"):
        restored = checkpoint.restore_latest(manager, state)
    manager.close()
    assert int(restored.step) == 4
    assert any("step 8 is unreadable" in r.getMessage() for r in caplog.records)
    config.train.num_steps = 10  # rerunning trains on from step 4, not from the bad state
    assert train_and_evaluate(config, workdir)["step"] == 10


@pytest.mark.slow
def test_no_readable_checkpoint_stops_instead_of_starting_over(tmp_path):
    config, workdir = _smoke(tmp_path, num_steps=8, checkpoint_every=4)
    train_and_evaluate(config, workdir)
    for step in ("4", "8"):
        assert _truncate_files(workdir / "checkpoints" / step) > 0
    with pytest.raises(checkpoint.UnreadableCheckpointsError, match="use a new --workdir"):
        train_and_evaluate(config, workdir)
    assert sorted(p.name for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()) == ["4", "8"]


@pytest.mark.slow
def test_non_finite_loss_stops_with_step_and_metric_and_keeps_good_checkpoint(tmp_path, monkeypatch):
    config, workdir = _smoke(tmp_path, num_steps=12, checkpoint_every=4, log_every=1)
    config.data.on_device = False  # the poisoned batch comes from the host pipeline's batch_at
    real_load = data_lib.load_dataset

    def poisoned(cfg, **kwargs):
        dataset = real_load(cfg, **kwargs)
        clean = dataset.batch_at
        dataset.batch_at = lambda step: clean(step) * (np.nan if step == 6 else 1.0)
        return dataset

    monkeypatch.setattr(data_lib, "load_dataset", poisoned)
    with pytest.raises(NonFiniteError, match=r"non-finite .*loss.* at step 7"):
        train_and_evaluate(config, workdir)
    monkeypatch.setattr(data_lib, "load_dataset", real_load)
    _, _, _, state = engine.setup(config)
    manager = checkpoint.make_manager(workdir)
    restored = checkpoint.restore_latest(manager, state)
    manager.close()
    assert int(restored.step) == 4
    assert all(np.isfinite(np.asarray(p)).all() for p in jax.tree.leaves(restored.params))


def test_torn_metrics_line_is_skipped_and_logging_continues(tmp_path):
    logger = Workdir(tmp_path, tensorboard=False)
    logger.log(1, "train", {"loss": 1.0})
    logger.close()
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 2, "split": "tr')  # a crash mid-write
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [1]
    logger = Workdir(tmp_path, tensorboard=False)
    logger.log(3, "train", {"loss": float("nan")})
    logger.close()
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [1, 3]
    assert read_metrics(tmp_path / "metrics.jsonl")[1]["loss"] is None  # NaN written as null

"""`vae_jax.load_run`: a run or a sweep member read back from its workdir, and what it refuses."""

import json
import subprocess
import sys

import jax
import numpy as np
import pytest

import vae_jax
from tests.helpers import ROOT, cli, final_params, load_config, use_local_idx
from vae_jax.errors import UserError
from vae_jax.train import checkpoint, engine, sweep_spec, train_and_evaluate


def _leaves(tree) -> dict[str, np.ndarray]:
    return {jax.tree_util.keystr(p): np.asarray(v) for p, v in jax.tree_util.tree_leaves_with_path(tree)}


@pytest.mark.slow
def test_a_cli_run_loads_in_a_fresh_process(tmp_path):
    workdir = tmp_path / "run"
    cli(
        f"--config={ROOT / 'experiments/beta_vae.py'}:smoke",
        f"--workdir={workdir}",
        "--config.train.num_steps=4",
    )
    config = load_config("beta_vae", "smoke")
    config.train.num_steps = 4
    dataset, model, _, _ = engine.setup(config)
    images = dataset.eval_images[:5]
    np.save(tmp_path / "images.npy", images)
    code = (
        "import json, sys, numpy as np, jax, vae_jax\n"
        f"run = vae_jax.load_run({str(workdir)!r})\n"
        f"x = np.load({str(tmp_path / 'images.npy')!r})\n"
        f"np.save({str(tmp_path / 'recon.npy')!r}, run.reconstruct(x))\n"
        f"np.save({str(tmp_path / 'mean.npy')!r}, run.encode(x))\n"
        "leaves = jax.tree_util.tree_leaves_with_path(run.variables['params'])\n"
        f"np.savez({str(tmp_path / 'params.npz')!r}, "
        "**{jax.tree_util.keystr(p): np.asarray(v) for p, v in leaves})\n"
        "print(json.dumps({'step': run.step, 'data': 'vae_jax.data' in sys.modules,\n"
        "                  'samples': list(run.sample(3, 0).shape), 'beta': run.config.loss.beta}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300, check=True
    )
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded == {"step": 4, "data": False, "samples": [3, 64, 64, 1], "beta": config.loss.beta}
    # The checkpoint's parameters, restored the engine's way (the dataset loaded, a state built).
    expected = {k[len("['params']") :]: v for k, v in final_params(config, workdir).items() if "params" in k}
    params = np.load(tmp_path / "params.npz")
    assert sorted(params.files) == sorted(expected)
    for k in expected:
        np.testing.assert_array_equal(params[k], expected[k], err_msg=k)
    # The reconstruction is the decoded posterior mean, computed here with the model directly.
    variables = {"params": jax.tree.map(np.asarray, _unflatten(params, expected))}
    mean, _ = model.apply(variables, images, method=model.encode)
    recon = jax.nn.sigmoid(model.apply(variables, mean, method=model.decode))
    np.testing.assert_allclose(np.load(tmp_path / "mean.npy"), mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.load(tmp_path / "recon.npy"), recon, rtol=1e-5, atol=1e-5)


def _unflatten(flat: np.lib.npyio.NpzFile, like: dict) -> dict:
    """The nested params dict of keystr-flattened arrays."""
    tree: dict = {}
    for key in like:
        node = tree
        parts = [p.strip("[]'") for p in key.split("][")]
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = flat[key]
    return tree


@pytest.mark.slow
def test_a_sweep_member_loads_with_its_own_config_and_parameters(tmp_path, idx_dir, tfds_dir):
    config = use_local_idx(load_config("vae", "smoke"), idx_dir, tfds_dir)
    config.sweep.spec, config.sweep.vectorize = "loss.beta=1,4 * seed=0,1", "vmap"
    config.train.num_steps = 3
    train_and_evaluate(config, tmp_path)
    assert json.loads((tmp_path / "run.json").read_text())["programs"] == [
        {"dir": ".", "members": [0, 1, 2, 3]}
    ]
    run = vae_jax.load_run(tmp_path, member=3)
    assert (run.member, run.step, run.config.loss.beta, run.config.seed, run.config.sweep.spec) == (
        3,
        3,
        4.0,
        1,
        "",
    )
    # The stacked checkpoint, restored the engine's way; member 3 is its last slice.
    assignments = sweep_spec.parse_sweep(config.sweep.spec, config)
    configs = [sweep_spec.member_config(config, a) for a in assignments]
    dataset, model, _, _ = engine.setup(configs[0])
    from vae_jax.train.sweep_step import create_sweep_state

    manager = checkpoint.make_manager(tmp_path)
    stacked = checkpoint.restore_latest(manager, create_sweep_state(model, configs, dataset.data_shape)[0])
    manager.close()
    expected = _leaves(jax.tree.map(lambda x: x[3], stacked.params))
    got = _leaves(run.variables["params"])
    assert got.keys() == expected.keys()
    for k in expected:
        np.testing.assert_array_equal(got[k], expected[k], err_msg=k)
    other = _leaves(vae_jax.load_run(tmp_path, member=0).variables["params"])
    assert any(not np.array_equal(other[k], got[k]) for k in got)  # members differ: the slice matters
    with pytest.raises(UserError, match="sweep of 4 members: pass member=i"):
        vae_jax.load_run(tmp_path)
    with pytest.raises(UserError, match="no checkpoint of step 2 .* its steps: \\[3\\]"):
        vae_jax.load_run(tmp_path, member=0, step=2)


def test_a_workdir_without_a_run_or_checkpoint_ends_in_one_user_error(tmp_path):
    with pytest.raises(UserError, match="holds no run \\(no config.json\\)"):
        vae_jax.load_run(tmp_path / "nothing")
    config = load_config("beta_vae", "smoke")
    (tmp_path / "config.json").write_text(config.to_json_best_effort())
    (tmp_path / "run.json").write_text(json.dumps({"data_shape": [64, 64, 1]}))
    with pytest.raises(UserError, match="no checkpoints/ in"):
        vae_jax.load_run(tmp_path)
    with pytest.raises(UserError, match="single run, not a sweep"):
        vae_jax.load_run(tmp_path, member=1)


@pytest.mark.slow
def test_the_package_exports_the_researchers_api_lazily():
    code = (
        "import sys, vae_jax\n"
        "print(sorted(m for m in ('jax', 'flax', 'orbax.checkpoint') if m in sys.modules))\n"
        "print(vae_jax.__all__); vae_jax.load_run; print('orbax.checkpoint' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    imported, exported, after = out.stdout.strip().splitlines()
    assert imported == "[]"
    assert exported == str(
        [
            "TrainedRun",
            "build_model",
            "compute_metrics",
            "get_ground_truth_data",
            "load_run",
            "train_and_evaluate",
        ]
    )
    assert after == "True"

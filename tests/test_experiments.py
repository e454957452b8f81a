"""Run-level tests: every config's smoke preset, the CLI, resuming, real Fashion-MNIST."""

import json
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import (
    CONFIGS,
    assert_same_params,
    assert_workdir_contract,
    cli,
    final_params,
    load_config,
    make_idx_dir,
    use_local_idx,
    write_idx,
)
from vae_jax.data.idx import read_idx
from vae_jax.data.sources import local_dir_for
from vae_jax.train import evaluate_checkpoint, train_and_evaluate
from vae_jax.train.workdir import read_metrics

RESULT_KEYS = {
    "vae": {"neg_elbo", "rec", "kl", "iwae_nll", "iwae_k", "bits_per_dim", "active_units"},
    "vae2": {"neg_elbo", "rec", "kl", "iwae_nll", "iwae_k", "bits_per_dim", "active_units"},
    "ae": {"rec"},
    "vqvae": {"rec", "perplexity", "codebook_usage"},
    "ppca": {"train_log_likelihood", "test_log_likelihood", "bits_per_dim"},
}


def _eval_records(workdir: Path) -> list[dict]:
    lines = (workdir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["split"] == "eval"]


def assert_config_workdir(workdir: Path, model_name: str):
    """The shared workdir contract, plus what a config of model_name must show in it."""
    closed_form = model_name == "ppca"  # no training loop: no train records or checkpoints
    results = assert_workdir_contract(workdir, trained=not closed_form, checkpoints=not closed_form)
    config = json.loads((workdir / "config.json").read_text())
    assert config["model"]["name"] == model_name
    pngs = {p.name.split("_")[0] for p in (workdir / "images").glob("*.png")}
    assert "reconstructions" in pngs
    if model_name in ("vae", "vae2"):
        assert {"samples", "traversals"} <= pngs
    if model_name == "vqvae":  # the whole eval set's code usage
        assert "code" in pngs and all(0 < r["codebook_usage"] <= 1 for r in _eval_records(workdir))
    assert list(workdir.glob("events.out.tfevents.*"))  # at the top, where TensorBoard is pointed
    assert RESULT_KEYS[model_name] <= results.keys()
    if model_name in (
        "vae",
        "vae2",
    ):  # L_k >= L_1: the IWAE NLL is at most the negative ELBO (sampling noise aside)
        assert results["iwae_nll"] <= results["neg_elbo"] + 1.0
    return results


# The VQ-VAEs' smoke runs are checked where test_vq_prior_trains_from_a_vqvae_checkpoint_and_samples
# trains them (the prior needs one): one run each, not two.
TRAINED_FOR_A_PRIOR = ("vq_vae", "fsq_vae", "rvq_vae")


def smoke_run(name, workdir, idx_dir, tfds_dir):
    """Trains config `name`'s smoke preset into workdir and checks the workdir contract."""
    config = use_local_idx(load_config(name, "smoke"), idx_dir, tfds_dir)
    results = train_and_evaluate(config, workdir)
    assert results["step"] == (0 if config.model.name == "ppca" else config.train.num_steps)
    results = assert_config_workdir(workdir, config.model.name)
    if config.model.name == "vqvae" and config.model.vq.kind == "rvq":  # per residual level
        levels = range(config.model.vq.num_levels)
        assert {f"{m}_level{n}" for m in ("perplexity", "codebook_usage") for n in levels} <= results.keys()


@pytest.mark.slow
@pytest.mark.parametrize("name", [c for c in CONFIGS if c not in TRAINED_FOR_A_PRIOR])
def test_smoke_preset_writes_workdir_contract(name, tmp_path, idx_dir, tfds_dir):
    smoke_run(name, tmp_path / "run", idx_dir, tfds_dir)


IW_VARIANTS = {
    "two_layers_miwae": {"model.name": "vae2", "model.hidden": (50, 50), "loss.objective": "miwae",
                         "loss.num_samples": 2, "loss.num_outer": 2},
    "vamp_piwae": {"model.prior": "vamp", "model.num_pseudo_inputs": 8, "loss.objective": "piwae",
                   "loss.num_samples": 2, "loss.num_outer": 2},
}  # fmt: skip


@pytest.mark.parametrize("variant", sorted(IW_VARIANTS))
@pytest.mark.slow
def test_iwae_variants_train_and_report_lk(variant, tmp_path, idx_dir, tfds_dir):
    """Two stochastic layers, the VampPrior and the Rainforth et al. objectives, end to end."""
    config = use_local_idx(load_config("iwae", "smoke"), idx_dir, tfds_dir)
    for field, value in IW_VARIANTS[variant].items():
        group, name = field.split(".")
        config[group][name] = value
    results = train_and_evaluate(config, tmp_path / "run")
    assert results["step"] == 12
    assert_config_workdir(tmp_path / "run", config.model.name)
    records = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if r["split"] == "train"]
    assert records and all(np.isfinite(r["loss"]) and "bound" in r for r in records)


def test_cpu_hour_preset_is_the_shortened_burda_schedule():
    c = load_config("vae", "cpu_hour")
    assert (c.optim.schedule, c.optim.num_stages, c.train.batch_size) == ("burda", 8, 20)
    assert c.train.num_steps == 250 * 3280 and c.eval.iwae_k == 5000 and c.eval.iwae_num_examples == 0
    assert c.data.name == "mnist" and c.data.binarize == "dynamic"


def test_likelihood_table_rows_are_valid_iwae_configs():
    """benchmarks.likelihood_cost prices README's likelihood table: each row's overrides name real
    fields of iwae.py (a typo would price the default row) and give a valid config."""
    from benchmarks import likelihood_cost

    configs = {name: likelihood_cost.row_config(o) for name, o in likelihood_cost.ROWS.items()}
    assert (
        configs["IWAE (k = 50)"].loss.objective == "iwae" and configs["IWAE (k = 50)"].loss.num_samples == 50
    )
    assert configs["two layers, IWAE (k = 50)"].model.name == "vae2"
    assert configs["VampPrior (k = 1)"].model.prior == "vamp"
    assert {c.train.num_steps for c in configs.values()} == {3000 * 3280}  # Burda et al.'s schedule
    with pytest.raises(KeyError, match="no field loss.num_sample"):
        likelihood_cost.row_config({"loss.num_sample": 5})


def test_presets_change_scale_not_dataset():
    for name in CONFIGS:
        full, quick, smoke = (load_config(name, p) for p in (None, "quick", "smoke"))
        assert full.data.name == quick.data.name == smoke.data.name
        assert full.model.name == quick.model.name == smoke.model.name
        if full.model.name != "ppca":
            assert smoke.train.num_steps < quick.train.num_steps < full.train.num_steps
    with pytest.raises(ValueError, match="unknown preset 'quik'"):
        load_config("beta_vae", "quik")


def test_published_defaults():
    c = load_config("beta_vae")
    assert (c.data.name, c.loss.beta, c.optim.learning_rate, c.train.batch_size) == (
        "dsprites",
        4.0,
        1e-4,
        64,
    )
    assert (c.train.num_steps, c.loss.likelihood, c.model.channels) == (
        300_000,
        "bernoulli",
        (32, 32, 64, 64),
    )
    v = load_config("vq_vae").model.vq
    assert (v.num_codes, v.code_dim, v.ema, v.decay) == (512, 64, True, 0.99)
    assert load_config("vq_vae").loss.commitment_cost == 0.25


@pytest.mark.parametrize(
    "name,preset,method,hparams",
    [
        ("factor_vae", None, "factor_vae", {"factor_gamma": 30.0}),
        ("beta_tcvae", None, "beta_tcvae", {"tc_beta": 6.0, "tc_estimator": "minibatch"}),
        ("dip_vae", None, "dip_vae_i", {"dip_lambda_od": 10.0, "dip_lambda_d_factor": 10.0}),
        ("dip_vae", "ii", "dip_vae_ii", {"dip_lambda_od": 10.0, "dip_lambda_d_factor": 1.0}),
    ],
)
def test_disentangling_configs_are_the_study_setup(name, preset, method, hparams):
    """unsupervised_study_v1: beta_vae.py's conv VAE, 300k steps, batch 64, Adam 1e-4, KL weight 1."""
    c, base = load_config(name, preset), load_config("beta_vae")
    assert c.loss.method == method and {k: c.loss[k] for k in hparams} == hparams
    assert (c.loss.beta, c.loss.gamma) == (1.0, 0.0)
    assert c.model.to_dict() == base.model.to_dict() and c.data.to_dict() == base.data.to_dict()
    assert (c.train.num_steps, c.train.batch_size, c.optim.name, c.optim.learning_rate) == (
        300_000,
        64,
        "adam",
        1e-4,
    )
    assert c.model.disc_hidden == (1000,) * 6 and c.optim.discriminator.learning_rate == 1e-4
    assert c.optim.discriminator.kwargs.to_dict() == {"b1": 0.5, "b2": 0.9, "eps": 1e-8}
    smoke, quick = (
        load_config(name, ",".join(w for w in (scale, preset) if w)) for scale in ("smoke", "quick")
    )
    assert smoke.loss.method == quick.loss.method == method and smoke.data.name == c.data.name
    assert smoke.train.num_steps < quick.train.num_steps < c.train.num_steps
    with pytest.raises(ValueError, match="unknown preset 'quik'"):
        load_config(name, "quik")


@pytest.mark.slow
def test_cli_overrides_default_workdir_and_eval_mode(tmp_path, idx_dir, tfds_dir):
    args = ["--config=" + str(Path("experiments/vae.py").absolute()) + ":smoke"]
    args += ["--config.loss.beta=0.5", "--config.train.num_steps=4", "--config.data.source=local"]
    args += [f"--config.data.local_dir={idx_dir}", f"--config.data.data_dir={tfds_dir}"]
    result = cli(*args, cwd=tmp_path)
    assert "steps/s" in result.stderr and "ETA" in result.stderr  # the progress line
    assert "/orbax/" not in result.stderr and "checkpoint_manager.py" not in result.stderr  # quiet
    workdir = tmp_path / "runs" / "vae_smoke"
    assert json.loads((workdir / "config.json").read_text())["loss"]["beta"] == 0.5
    (workdir / "results.json").unlink()
    # --mode=eval of the same command, in this process: main() calls evaluate_checkpoint (its
    # flag and dispatch run in process in test_cli_reports_eval_without_checkpoints_in_one_line).
    evaluate_checkpoint(_config_from_flags("vae", args[1:]), workdir)
    assert json.loads((workdir / "results.json").read_text())["step"] == 4


def _wait_for_checkpoint(workdir: Path, proc, step: int, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if (workdir / "checkpoints" / str(step)).is_dir():
            return
        assert proc.poll() is None, "run ended before its first checkpoint"
        time.sleep(0.1)
    raise TimeoutError(f"no checkpoint {step} after {timeout}s")


# What is under test is the checkpointing around the step, not the network: the MLP VAE on
# generated idx files.
RESUME_OVERRIDES = [
    "--config.train.num_steps=40", "--config.train.checkpoint_every=10",
    "--config.train.log_every=5", "--config.train.batch_size=8", "--config.data.source=local",
]  # fmt: skip
RESUME_CONFIG = f"--config={Path('experiments/vae.py').absolute()}:smoke"


@pytest.fixture(scope="module")
def resume_data(tmp_path_factory):
    """Command-line overrides that point the run at generated idx files (shared by the module)."""
    idx = make_idx_dir(tmp_path_factory.mktemp("resume_idx"))
    tfds = tmp_path_factory.mktemp("resume_tfds")
    return [f"--config.data.local_dir={idx}", f"--config.data.data_dir={tfds}"]


@pytest.fixture(scope="module")
def uninterrupted_params(tmp_path_factory, resume_data):
    """The run trained without interruption, in this process (the CLI is what the tests run)."""
    workdir = tmp_path_factory.mktemp("straight")
    config = _resume_config(resume_data)
    train_and_evaluate(config, workdir)
    return final_params(config, workdir)


def _config_from_flags(name, flags):
    """The config the CLI builds from `--config=experiments/<name>.py:smoke` and `--config.*` flags."""
    config = load_config(name, "smoke")
    for flag in flags:
        field, value = flag.removeprefix("--config.").split("=", 1)
        group, key = field.split(".")
        config[group][key] = type(config[group][key])(value) if config[group][key] is not None else value
    return config


def _resume_config(resume_data):
    """The config the CLI builds from RESUME_CONFIG, RESUME_OVERRIDES and resume_data."""
    return _config_from_flags("vae", (*RESUME_OVERRIDES, *resume_data))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
@pytest.mark.slow
def test_interrupted_run_resumes_to_the_same_parameters(sig, tmp_path, uninterrupted_params, resume_data):
    workdir = tmp_path / "interrupted"
    proc = cli(RESUME_CONFIG, f"--workdir={workdir}", *RESUME_OVERRIDES, *resume_data, background=True)
    _wait_for_checkpoint(workdir, proc, 10)
    proc.send_signal(sig)
    code = proc.wait(timeout=120)
    assert code != 0  # it did not run to the end
    saved = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
    assert saved and max(saved) < 40
    assert not (workdir / "results.json").exists()
    # The resumed run in this process: what is under test is the killed process's checkpoints and
    # the engine's resume (the command line's own path is the interrupted run above).
    train_and_evaluate(_resume_config(resume_data), workdir)
    resumed = final_params(_resume_config(resume_data), workdir)
    assert int(resumed["['step']"]) == int(uninterrupted_params["['step']"]) == 40
    assert_same_params(resumed, uninterrupted_params)


FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(
    not (FASHION / "train-images-idx3-ubyte.gz").exists(),
    reason="real Fashion-MNIST absent: apt-get install dataset-fashion-mnist (CI installs it)",
)
@pytest.mark.slow
def test_vae_quick_on_real_fashion_mnist(tmp_path):
    config = load_config("vae", "quick")
    config.data.name = "fashion_mnist"
    assert local_dir_for(config.data) == FASHION  # the default finds Debian's files
    # The first 12,000 training and 2,000 test images of Debian's files, written in the same idx
    # format: the real data through the real reader and TFDS builder, without preparing all 70,000.
    subset = tmp_path / "fashion_subset"
    subset.mkdir()
    for stem, n in (("train", 12_000), ("t10k", 2_000)):
        for kind in ("images-idx3", "labels-idx1"):
            name = f"{stem}-{kind}-ubyte.gz"
            write_idx(subset / name, read_idx(FASHION / name)[:n])
    config.data.local_dir = str(subset)
    config.train.num_steps = 300  # enough to pass the bound below; the README's figure is the full preset
    config.eval.iwae_k = 10  # the bound's code is under test, not its precision
    config.data.data_dir = str(tmp_path / "tfds")
    start = time.time()
    results = train_and_evaluate(config, tmp_path / "run")
    elapsed = time.time() - start
    print(f"fashion_mnist vae:quick test neg_elbo={results['neg_elbo']:.2f} in {elapsed:.0f}s")
    assert results["step"] == config.train.num_steps
    # A trained model: far below the ~543 nats of an untrained decoder (784 * log 2).
    assert results["neg_elbo"] < 320, results


@pytest.mark.slow
def test_on_device_data_trains_like_the_host_pipeline(tmp_path, idx_dir, tfds_dir):
    params = []
    for on_device in (False, True):
        config = use_local_idx(load_config("ae", "smoke"), idx_dir, tfds_dir)
        config.data.on_device = on_device
        config.train.num_steps = 40  # 300 examples / batch 16: crosses two epoch boundaries
        train_and_evaluate(config, tmp_path / str(on_device))
        params.append(final_params(config, tmp_path / str(on_device)))
    assert_same_params(*params)


@pytest.mark.parametrize("model", ["ae", "vae"])
@pytest.mark.slow
def test_2d_latent_pictures(model, tmp_path, idx_dir, tfds_dir):
    from matplotlib import image

    config = use_local_idx(load_config("latent2d", f"{model},smoke"), idx_dir, tfds_dir)
    assert config.model.name == model and config.model.latent_dim == 2
    train_and_evaluate(config, tmp_path)
    images = tmp_path / "images"
    # The manifold: 15 x 15 decoded 28 x 28 tiles (1-pixel gaps), which differ across the grid.
    manifold = image.imread(images / "manifold_12.png")[..., 0]
    assert manifold.shape == (15 * 29 + 1, 15 * 29 + 1)
    tiles = np.stack(
        [manifold[1 + 29 * r : 29 * (r + 1), 1 + 29 * c : 29 * (c + 1)] for r in range(15) for c in range(15)]
    )
    assert tiles.std(axis=0).mean() > 1e-3  # a decoder that ignored its code would draw one tile 225 times
    # The scatter of test codes coloured by class: many colours, not an empty axis.
    scatter = image.imread(images / "latent_2d_12.png")[..., :3].reshape(-1, 3)
    assert len(np.unique(np.round(scatter, 2), axis=0)) > 20
    rows = image.imread(images / "interpolations_12.png")  # 8 labelled rows of 10 decoded images
    assert rows.shape[0] > 8 * 28 and rows.shape[1] > 10 * 28


@pytest.mark.slow
def test_held_out_class_anomaly_auroc(tmp_path, idx_dir, tfds_dir):
    """Trained without class 3 (a bright bar on rows the other classes leave dark), the VAE must
    find class 3's test images less likely than the rest: every score's AUROC well above chance."""
    config = use_local_idx(load_config("anomaly", "smoke"), idx_dir, tfds_dir)
    config.data.held_out_class = 3
    results = train_and_evaluate(config, tmp_path)
    for key in ("anomaly_auroc_neg_elbo", "anomaly_auroc_rec", "anomaly_auroc_iwae_nll"):
        assert results[key] > 0.75, (key, results[key])


def test_anomaly_auroc_is_one_for_separating_scores():
    from vae_jax.evaluate.anomaly import held_out_class_auroc

    labels = np.array([0, 1, 2, 1, 0, 2])
    scores = {"neg_elbo": np.array([1.0, 9.0, 2.0, 8.0, 1.5, 2.5]), "rec": np.zeros(6) + np.arange(6)}
    out = held_out_class_auroc(labels, 1, scores, log_lk=-scores["neg_elbo"])
    assert out["anomaly_auroc_neg_elbo"] == 1.0 and out["anomaly_auroc_iwae_nll"] == 1.0
    with pytest.raises(ValueError, match="held-out class 7"):
        held_out_class_auroc(labels, 7, scores, None)


@pytest.mark.slow
def test_seq2seq_vae_on_image_rows(tmp_path, idx_dir, tfds_dir):
    config = load_config("seq2seq_ae", "smoke")
    config.model.name = "vae"
    config.data.name, config.loss.likelihood = "mnist", "bernoulli"
    from matplotlib import image

    import vae_jax

    results = train_and_evaluate(use_local_idx(config, idx_dir, tfds_dir), tmp_path)
    # The importance-weighted bound is at least as tight as the ELBO (up to its sampling noise).
    assert 0 < results["iwae_nll"] <= results["neg_elbo"] + 0.5, results
    images = read_idx(idx_dir / "t10k-images-idx3-ubyte.gz")[:4, :, :, None] / np.float32(255.0)
    recon = vae_jax.load_run(tmp_path).reconstruct(images)  # each image read as a sequence of 28 rows
    assert recon.shape == images.shape and 0.0 <= recon.min() and recon.max() <= 1.0
    picture = image.imread(tmp_path / "images" / "reconstructions_12.png")[..., :3].reshape(-1, 3)
    assert len(np.unique(np.round(picture, 2), axis=0)) > 4  # input and reconstruction curves drawn


@pytest.mark.parametrize("vq_name", TRAINED_FOR_A_PRIOR)
@pytest.mark.slow
def test_vq_prior_trains_from_a_vqvae_checkpoint_and_samples(vq_name, tmp_path, idx_dir, tfds_dir):
    smoke_run(vq_name, tmp_path / "vq", idx_dir, tfds_dir)  # also the VQ-VAE's smoke-preset check
    prior = use_local_idx(load_config("vq_prior", "smoke"), idx_dir, tfds_dir)
    prior.prior.vqvae_workdir = str(tmp_path / "vq")
    results = train_and_evaluate(prior, tmp_path / "prior")
    assert 0 < results["prior_nll_bits_per_code"] < 1.5 * results["uniform_bits_per_code"]
    assert results["prior_bits_per_dim"] > 0
    assert (tmp_path / "prior" / "images" / "samples_12.png").exists()
    assert assert_workdir_contract(tmp_path / "prior") == results
    codes = {"vq_vae": 512, "fsq_vae": 1000, "rvq_vae": 256}[vq_name]  # FSQ: 8 * 5 * 5 * 5 grid points
    assert results["uniform_bits_per_code"] == pytest.approx(np.log2(codes))


@pytest.mark.slow
def test_vq_estimators_ablation_smoke(tmp_path, idx_dir, tfds_dir):
    from experiments.ablations import vq_estimators

    config = use_local_idx(vq_estimators.get_config("smoke"), idx_dir, tfds_dir)
    rows = train_and_evaluate(config, tmp_path)["members"]
    assert [(r["model.vq.estimator"], r["model.vq.cosine"]) for r in rows] == [
        ("straight_through", False), ("rotation", True),
    ]  # fmt: skip
    assert all(0 < r["codebook_usage"] <= 1 and r["perplexity"] >= 1 for r in rows)
    assert len(list(tmp_path.rglob("images/code_usage_*.png"))) == 2


@pytest.mark.slow
def test_new_quantizer_options_train_as_one_vmapped_sweep(tmp_path, idx_dir, tfds_dir):
    """Commitment cost stays numeric: two members of an RVQ (rotation, k-means, dropout) in one vmap."""
    config = use_local_idx(load_config("rvq_vae", "smoke"), idx_dir, tfds_dir)
    config.model.vq.estimator = "rotation"
    config.sweep.spec, config.sweep.vectorize = "loss.commitment_cost=0.1,2", "vmap"
    config.train.num_steps = 6
    rows = train_and_evaluate(config, tmp_path)["members"]
    assert [r["loss.commitment_cost"] for r in rows] == [0.1, 2]
    assert rows[0]["rec"] != rows[1]["rec"] and all(np.isfinite(r["rec"]) for r in rows)
    assert not (tmp_path / "program_1").exists()  # one program


@pytest.mark.parametrize(
    "config_name,name,likelihood",
    [("beta_vae", "color_dsprites", "bernoulli"), ("factor_vae", "noisy_dsprites", "gaussian")],
)
@pytest.mark.slow
def test_study_configs_switch_to_rgb_dsprites_with_one_override(config_name, name, likelihood, tmp_path):
    """beta_vae.py and the study's configs (FactorVAE here) take 3-channel 64x64 sources with a
    Bernoulli or a Gaussian decoder, as disentanglement_lib does."""
    config = load_config(config_name, "smoke")
    config.data.name = name  # the one override: --config.data.name=color_dsprites
    config.loss.likelihood = likelihood
    # (No disentanglement metric: MIG's 10k encodings double the run. The evaluation still
    # encodes the eval images to label the traversals by factor; tests/test_factor_datasets.py
    # runs every metric on these sources.)
    train_and_evaluate(config, tmp_path)
    results = assert_config_workdir(tmp_path, "vae")
    assert json.loads((tmp_path / "config.json").read_text())["data"]["name"] == name
    assert np.isfinite(results["neg_elbo"]) and (likelihood == "gaussian" or results["neg_elbo"] > 0)
    params = final_params(config, tmp_path)
    first = [v for k, v in params.items() if "encoder" in k.lower() and "Conv_0" in k and "kernel" in k]
    assert first and all(v.shape[-2] == 3 for v in first)  # the first conv reads 3 channels

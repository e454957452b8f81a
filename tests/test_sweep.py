"""Sweeps: the spec language, member-for-member parity with single runs, the CLI end to end."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from experiments.ablations import locatello2019_study, vqvae_ema_commitment
from tests.helpers import ROOT, assert_workdir_contract, cli, device_count_flags, load_config
from tests.sweep_worker import FORMS
from vae_jax.train import ConfigError, validate_config
from vae_jax.train.sweep_spec import parse_sweep, programs
from vae_jax.train.workdir import read_metrics


def test_spec_product_and_zip():
    c = load_config("beta_vae")
    members = parse_sweep("loss.beta=1,4 * seed=0,1,2", c)
    assert len(members) == 6 and members[0] == {"loss.beta": 1, "seed": 0}
    assert members[-1] == {"loss.beta": 4, "seed": 2}
    zipped = parse_sweep("loss.gamma=100,1000 | loss.c_max=10,25 * seed=0,1", c)
    assert zipped == [
        {"loss.gamma": 100, "loss.c_max": 10, "seed": 0}, {"loss.gamma": 100, "loss.c_max": 10, "seed": 1},
        {"loss.gamma": 1000, "loss.c_max": 25, "seed": 0}, {"loss.gamma": 1000, "loss.c_max": 25, "seed": 1},
    ]  # fmt: skip


def test_spec_union_runs_each_sub_spec_as_its_own_programs():
    c = load_config("beta_vae")
    members = parse_sweep("loss.beta=1,4 * seed=0,1 + loss.gamma=1e+3 * loss.c_max=5,25", c)
    assert len(members) == 6 and members[3] == {"loss.beta": 4, "seed": 1}
    assert members[4:] == [{"loss.gamma": 1000.0, "loss.c_max": 5}, {"loss.gamma": 1000.0, "loss.c_max": 25}]
    # Both sub-specs sweep SWEEPABLE fields only, yet they are two programs, not one vmap of 6.
    assert programs(members) == [[0, 1, 2, 3], [4, 5]]
    assert programs(parse_sweep("loss.beta=1,4 * seed=0,1", c)) == [[0, 1, 2, 3]]
    with pytest.raises(ConfigError, match="is not 'field=v1,v2,...'"):
        parse_sweep("loss.beta=1,4 + ", c)


def test_locatello_study_is_six_grids_of_six_times_the_seeds():
    study = locatello2019_study.get_config()
    members = parse_sweep(study.sweep.spec, study)
    n = locatello2019_study.NUM_SEEDS
    assert len(members) == 6 * 6 * n
    groups = programs(members)
    assert [len(p) for p in groups] == [6 * n] * 6
    grids = {}
    for program in groups:
        first = members[program[0]]
        swept = next(
            k for k in first if k not in ("loss.method", "seed", "loss.gamma", "loss.dip_lambda_d_factor")
        )
        grids[(first["loss.method"], swept)] = sorted({members[i][swept] for i in program})
    assert grids == {
        ("vae", "loss.beta"): [1, 2, 4, 6, 8, 16],
        ("vae", "loss.c_max"): [5, 10, 25, 50, 75, 100],
        ("factor_vae", "loss.factor_gamma"): [10, 20, 30, 40, 50, 100],
        ("dip_vae_i", "loss.dip_lambda_od"): [1, 2, 5, 10, 20, 50],
        ("dip_vae_ii", "loss.dip_lambda_od"): [1, 2, 5, 10, 20, 50],
        ("beta_tcvae", "loss.tc_beta"): [1, 2, 4, 6, 8, 10],
    }
    assert {members[i].get("loss.dip_lambda_d_factor") for i in groups[3]} == {10}
    assert {members[i].get("loss.dip_lambda_d_factor") for i in groups[4]} == {1}
    assert {members[i]["loss.gamma"] for i in groups[1]} == {1000}
    validate_config(study)  # every member
    one = locatello2019_study.get_config("quick,factor_vae")
    assert len(parse_sweep(one.sweep.spec, one)) == 6 * 2 and one.train.num_steps == 3000
    assert one.loss.method == "factor_vae"  # the study table's method of a one-method sweep
    with pytest.raises(ValueError, match="unknown preset 'factorvae'"):
        locatello2019_study.get_config("factorvae")


def test_locatello_mid_preset_is_one_mid_grid_value_per_method_beside_beta_one():
    """`:quick,mid`: the six methods at one hyperparameter from the middle of their grids, beta = 1
    in the beta-VAE's program, 2 seeds each, the same steps for all, every metric of the study."""
    mid = locatello2019_study.get_config("quick,mid")
    members = parse_sweep(mid.sweep.spec, mid)
    groups = programs(members)
    assert [len(p) for p in groups] == [4, 2, 2, 2, 2, 2]
    for program, method in zip(groups, locatello2019_study.GRIDS, strict=True):
        assert sorted(members[i]["seed"] for i in program) == (
            [0, 0, 1, 1] if method == "beta_vae" else [0, 1]
        )
        assert locatello2019_study.GRIDS[method].split(" * ")[0] in locatello2019_study.MID_GRIDS[method]
    values = {
        (members[p[0]]["loss.method"], k): sorted({members[i][k] for i in p})
        for p in groups
        for k in ("loss.beta", "loss.c_max", "loss.factor_gamma", "loss.dip_lambda_od", "loss.tc_beta")
        if k in members[p[0]]
    }
    assert values == {
        ("vae", "loss.beta"): [1, 6],
        ("vae", "loss.c_max"): [25],
        ("factor_vae", "loss.factor_gamma"): [30],
        ("dip_vae_i", "loss.dip_lambda_od"): [10],
        ("dip_vae_ii", "loss.dip_lambda_od"): [10],
        ("beta_tcvae", "loss.tc_beta"): [6],
    }
    assert set(mid.eval.disentanglement) == {
        "beta_vae_score",
        "factor_vae_score",
        "mig",
        "dci",
        "sap",
        "modularity_explicitness",
        "unsupervised",
    }
    assert mid.train.num_steps == mid.loss.anneal_steps == 1500  # the same budget for every method
    validate_config(mid)


@pytest.mark.slow
def test_study_union_trains_method_by_method(tmp_path):
    from vae_jax.train import train_and_evaluate

    config = locatello2019_study.get_config("smoke,annealed_vae,factor_vae")
    config.train.num_steps, config.eval.iwae_k, config.eval.num_examples = 2, 0, 64
    config.model.encoder, config.model.hidden = "mlp", (32,)  # the union is under test, not the net
    config.sweep.vectorize = "vmap"  # one traced member per program, not the CPU's unrolled members
    rows = train_and_evaluate(config, tmp_path)["members"]
    assert [(r["loss.method"], r.get("loss.c_max"), r.get("loss.factor_gamma")) for r in rows] == [
        ("vae", 5, None), ("vae", 100, None), ("factor_vae", None, 10), ("factor_vae", None, 100),
    ]  # fmt: skip
    assert all(r["step"] == 2 and r["neg_elbo"] > 0 for r in rows)
    assert (tmp_path / "program_0" / "checkpoints").is_dir() and (
        tmp_path / "program_1" / "checkpoints"
    ).is_dir()
    with open(tmp_path / "sweep_results.csv") as f:
        assert [r["loss.method"] for r in csv.DictReader(f)] == ["vae", "vae", "factor_vae", "factor_vae"]
    train = [r for r in read_metrics(tmp_path / "metrics.jsonl") if r["split"] == "train" and r["step"] == 2]
    assert sorted(r["member"] for r in train if "disc_loss" in r) == [2, 3]  # the discriminator trained
    with open(tmp_path / "study" / "study_results.csv") as f:  # each member under its own method
        study_rows = [(r["method"], r["hparam"], float(r["hparam_value"])) for r in csv.DictReader(f)]
    assert study_rows == [
        ("annealed_vae", "loss.c_max", 5), ("annealed_vae", "loss.c_max", 100),
        ("factor_vae", "loss.factor_gamma", 10), ("factor_vae", "loss.factor_gamma", 100),
    ]  # fmt: skip


@pytest.mark.parametrize(
    "spec,message",
    [
        ("loss.beta", "is not 'field=v1,v2,...'"),
        ("loss.bta=1,2", "no field 'loss.bta'"),
        ("loss.beta=1,2 | seed=0", "equal lengths"),
        ("loss.beta=1,-4", "config.loss.beta=-4.0 is invalid"),
    ],
)
def test_malformed_specs_are_rejected_before_compiling(spec, message):
    c = load_config("beta_vae", "smoke")
    c.sweep.spec = spec
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate_config(c)


def _run_worker(kinds, devices, out):
    env = dict(os.environ, XLA_FLAGS=device_count_flags(devices), JAX_PLATFORMS="cpu")
    env["PYTHONPATH"] = str(ROOT)
    cmd = [sys.executable, str(ROOT / "tests/sweep_worker.py"), ",".join(kinds), str(out)]
    subprocess.run(cmd, env=env, check=True)
    return dict(np.load(out))


def _of(result: dict, prefix: str) -> dict:
    """The entries of result under prefix/, with the prefix taken off."""
    return {k[len(prefix) + 1 :]: v for k, v in result.items() if k.startswith(prefix + "/")}


def _assert_members_equal_alone(result, vectorizations):
    for vectorize in vectorizations:
        # Each conv form against the members trained alone in that form (`vmap:IMPL`): across forms
        # the near-zero gradients below differ in their last bits too.
        solo = "alone" + vectorize[vectorize.index(":") :] if ":" in vectorize else "alone"
        alone = {k[len(solo) + 1 :]: v for k, v in result.items() if k.startswith(solo + "/")}
        swept = {k[len(vectorize) + 1 :]: v for k, v in result.items() if k.startswith(vectorize + "/")}
        assert swept.keys() == alone.keys() and len({k.split("/")[0] for k in swept}) == 4
        loose = 0
        for k in swept:
            # vmap sums in another order; Adam's m/sqrt(v) turns last-bit differences of near-zero
            # gradients into differences of a few % of the learning rate (3e-3) on a handful of weights.
            np.testing.assert_allclose(swept[k], alone[k], rtol=1e-5, atol=1e-4, err_msg=f"{vectorize} {k}")
            loose += int(np.sum(~np.isclose(swept[k], alone[k], rtol=1e-5, atol=1e-6)))
        # A handful over all parameters (counted together: one of an 8-element bias is not 0.1%).
        assert loose < 0.001 * sum(v.size for v in swept.values()), (vectorize, loose)
        # Members really differ (the sweep is not four copies of one run).
        paths = [k[2:] for k in swept if k.startswith("0/")]
        assert any(not np.allclose(swept["0/" + p], swept["3/" + p]) for p in paths)


# 'ciwae' sweeps CIWAE's beta (an array in the state) with 3 importance samples per image;
# 'disentangle': FactorVAE (both networks), beta-TCVAE (MSS), DIP-VAE-I/II, vmapped. Every kind
# runs on 8 devices, where the members are also sharded (a superset of what one device does); one
# device runs the VAE in both forms, the sweep most runs on a CPU or a single accelerator make.
KINDS = {1: ("vae",), 8: ("vae", "vqvae_ema", "ciwae", "disentangle")}
METHODS = ("factor_vae", "beta_tcvae", "dip_vae_i", "dip_vae_ii")


@pytest.mark.parametrize("devices", [8, 1])
@pytest.mark.slow
def test_sweep_members_equal_the_same_configs_trained_alone(devices, tmp_path):
    """Member i of a sweep ends with the parameters of its config trained alone: each kind of sweep
    vmapped (one batched program), the VAE's also in the 'map' form (members unrolled; the same
    slicing for every kind), and the four disentangling methods vmapped (KINDS). With 8 devices
    the members are sharded over 4, the batch over 2. One process per device count."""
    result = _run_worker(KINDS[devices], devices, tmp_path / "out.npz")
    for kind in KINDS[devices]:
        own = _of(result, kind)
        assert int(own.pop("__sweep_axis__")) == (1 if devices == 1 else 4), kind
        # Each member's state stays on the devices that hold it, except in the conv VAE's plain
        # 'vmap' form: its conv layers are oneDNN's custom calls on this CPU (XLA's grouped
        # convolutions with conv_impl='xla'), which XLA cannot split over the member axis, so it
        # gathers every member to every device. The matrix-product forms are what 'auto' vmaps.
        moves = {k: int(own.pop(k)) for k in [k for k in own if "__moves__/" in k]}
        assert moves and not any(v for k, v in moves.items() if k != "__moves__/vmap" or kind != "vae"), moves
        if kind != "disentangle":
            _assert_members_equal_alone(own, tuple(FORMS[kind].split(",")))
            continue
        assert {k.split("/")[0] for k in own} == set(METHODS)
        for method in METHODS:
            _assert_members_equal_alone(_of(own, method), ("vmap",))
        assert any("'d'" in k for k in own if k.startswith("factor_vae/vmap/0/"))  # the discriminator


@pytest.mark.slow
def test_sweep_preset_trains_all_members_in_one_process(tmp_path):
    cli(
        f"--config={ROOT / 'experiments/beta_vae.py'}:smoke,sweep",
        "--config.train.num_steps=6",
        "--config.sweep.vectorize=vmap",  # one program, not four unrolled conv nets (both forms are
        cwd=tmp_path,  # tested against solo runs above)
    )
    workdir = tmp_path / "runs" / "beta_vae_smoke_sweep"
    with open(workdir / "sweep_results.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4
    assert {(float(r["loss.beta"]), int(r["seed"])) for r in rows} == {(1, 0), (1, 1), (4, 0), (4, 1)}
    assert all(float(r["neg_elbo"]) > 0 and int(r["step"]) == 6 for r in rows)
    for name in ("sweep_neg_elbo.png", "sweep_kl.png", "sweep_rate_distortion.png"):
        assert (workdir / name).stat().st_size > 1000
    with open(workdir / "study" / "study_results.csv") as f:  # the same members as a study table
        study_rows = list(csv.DictReader(f))
    assert [(r["method"], float(r["hparam_value"]), int(r["seed"])) for r in study_rows] == [
        ("beta_vae", float(r["loss.beta"]), int(r["seed"])) for r in rows
    ]
    assert (workdir / "study" / "study_neg_elbo.png").stat().st_size > 1000
    records = read_metrics(workdir / "metrics.jsonl")
    train = [r for r in records if r["split"] == "train" and r["step"] == 6]
    assert sorted(r["member"] for r in train) == [0, 1, 2, 3]
    assert all("loss.beta" in r and "seed" in r for r in train)
    assert json.loads((workdir / "members" / "3" / "results.json").read_text())["loss.beta"] == 4
    results = assert_workdir_contract(workdir, record_fields=("member", "loss.beta", "seed"))
    assert [r["member"] for r in results["members"]] == [int(r["member"]) for r in rows] == [0, 1, 2, 3]
    assert all(list((workdir / "members" / str(m)).glob("events.out.tfevents.*")) for m in range(4))


@pytest.mark.slow
def test_sweep_resumes_as_one_unit(tmp_path, idx_dir, tfds_dir):
    from tests.helpers import use_local_idx
    from vae_jax.train import train_and_evaluate

    config = use_local_idx(load_config("vae", "smoke"), idx_dir, tfds_dir)
    # vmap: one traced member, not the four 'auto' unrolls on a CPU (resuming is the same for both)
    config.sweep.spec, config.sweep.vectorize = "loss.beta=1,4 * seed=0,1", "vmap"
    config.train.update(num_steps=4, checkpoint_every=2)
    train_and_evaluate(config, tmp_path)
    config.train.num_steps = 6  # extend the run: the stacked state resumes from step 4
    result = train_and_evaluate(config, tmp_path)
    assert [row["step"] for row in result["members"]] == [6, 6, 6, 6]
    steps = sorted({r["step"] for r in read_metrics(tmp_path / "metrics.jsonl") if r["split"] == "train"})
    assert steps == [4, 6]  # logged once per step: nothing was trained twice


@pytest.mark.slow
def test_structural_choices_run_as_separate_programs(tmp_path, idx_dir, tfds_dir):
    from tests.helpers import use_local_idx
    from vae_jax.train import train_and_evaluate

    config = use_local_idx(vqvae_ema_commitment.get_config("smoke"), idx_dir, tfds_dir)
    config.sweep.vectorize = "vmap"
    rows = train_and_evaluate(config, tmp_path)["members"]
    assert len(rows) == 4 and {r["model.vq.ema"] for r in rows} == {True, False}
    assert (tmp_path / "program_0" / "checkpoints").is_dir() and (
        tmp_path / "program_1" / "checkpoints"
    ).is_dir()
    assert all("perplexity" in r for r in rows)

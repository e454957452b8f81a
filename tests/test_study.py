"""The study table over sweep workdirs written by the sweep's own writer, its plots and rank correlations."""

import csv
import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
from scipy import stats

from experiments import study as study_cli
from experiments.ablations import burgess2018_capacity, locatello2019_beta
from vae_jax.errors import UserError
from vae_jax.evaluate import study
from vae_jax.train.sweep import write_sweep_results
from vae_jax.train.sweep_spec import parse_sweep


def _write_sweep(workdir, config, hparam, values, seeds, rng, diverged=()):
    """A sweep workdir as train_sweep leaves it: config.json and sweep_results.csv (its writer)."""
    workdir.mkdir(parents=True)
    (workdir / "config.json").write_text(config.to_json_best_effort(indent=2))
    rows = []
    for value in values:
        for seed in seeds:
            member = len(rows)
            mig = 0.01 * value + 0.02 * rng.normal()
            row = {"member": member, **({hparam: value} if hparam else {}), "seed": seed}
            row["diverged"] = int(member in diverged)
            metrics = {
                "loss": 100.0 - value + rng.normal(),
                "mig": mig,
                "dci_disentanglement": np.exp(3 * mig),
            }
            metrics["sap"] = float(rng.uniform())
            if member in diverged:
                metrics = dict.fromkeys(metrics, math.nan)
            rows.append({**row, **metrics, "step": 12})
    write_sweep_results(workdir, rows, [k for k in (hparam, "seed") if k])
    return rows


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("sweeps")
    rng = np.random.default_rng(0)
    beta = locatello2019_beta.get_config("smoke")
    annealed = burgess2018_capacity.get_config("smoke,sweep")
    fixed = locatello2019_beta.get_config("smoke")
    fixed.loss.beta = 6.0
    written = {
        "beta": _write_sweep(tmp_path / "beta", beta, "loss.beta", [1.0, 4.0, 16.0], [0, 1, 2], rng),
        "annealed": _write_sweep(
            tmp_path / "annealed", annealed, "loss.c_max", [5.0, 25.0], [0, 1], rng, [3]
        ),
        "fixed": _write_sweep(tmp_path / "fixed", fixed, None, [6.0], [0, 1, 2], rng),
    }
    return tmp_path, written


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _non_trivial_png(path):
    assert path.is_file() and path.stat().st_size > 5_000, path
    image = plt.imread(path)[..., :3]
    colours = np.unique(image.reshape(-1, 3), axis=0)
    assert image.std() > 0.05 and len(colours) > 20, path


def test_study_table_plots_and_rank_correlation(sweeps):
    root, written = sweeps
    dirs = [root / "beta", root / "annealed", root / "fixed"]
    result = study.write_study(dirs, root / "study")
    table = _read_csv(root / "study" / "study_results.csv")
    assert len(table) == 9 + 4 + 3
    assert [r["method"] for r in table] == ["beta_vae"] * 9 + ["annealed_vae"] * 4 + ["beta_vae"] * 3
    hparams = [r["hparam"] for r in table]
    assert hparams == ["loss.beta"] * 9 + ["loss.c_max"] * 4 + ["loss.beta"] * 3  # seed-only: from config
    expected = [*written["beta"], *written["annealed"], *written["fixed"]]
    for row, source, sweep in zip(
        table, expected, ["beta"] * 9 + ["annealed"] * 4 + ["fixed"] * 3, strict=True
    ):
        value = source.get("loss.beta", source.get("loss.c_max", 6.0))
        assert float(row["hparam_value"]) == value and int(row["seed"]) == source["seed"]
        assert row["sweep"] == str(root / sweep)
        for metric in ("mig", "sap", "loss"):
            if math.isnan(source[metric]):
                assert row[metric] == ""
            else:
                assert float(row[metric]) == source[metric]  # CSV round trip keeps every digit
    assert result["metrics"] == ["loss", "mig", "dci_disentanglement", "sap"]
    finite = [r for r in expected if not math.isnan(r["mig"])]
    corr = result["rank_correlation"]
    assert corr[1, 2] == pytest.approx(1.0)  # dci = exp(3 mig): monotone, rank correlation 1
    rho = stats.spearmanr([r["mig"] for r in finite], [r["sap"] for r in finite]).statistic
    assert corr[1, 3] == pytest.approx(rho, abs=1e-12)
    summary = _read_csv(root / "study" / "study_summary.csv")  # per method and value, over seeds
    assert [(r["method"], float(r["hparam_value"]), int(r["n"])) for r in summary] == [
        ("beta_vae", 1, 3), ("beta_vae", 4, 3), ("beta_vae", 16, 3), ("annealed_vae", 5, 2),
        ("annealed_vae", 25, 2), ("beta_vae", 6, 3),
    ]  # fmt: skip
    beta4 = [r["mig"] for r in written["beta"] if r["loss.beta"] == 4.0]
    assert float(summary[1]["mig_mean"]) == pytest.approx(np.mean(beta4))
    assert (float(summary[1]["mig_min"]), float(summary[1]["mig_max"])) == (min(beta4), max(beta4))
    diverged_out = [r["mig"] for r in written["annealed"][2:] if not math.isnan(r["mig"])]
    assert float(summary[4]["mig_mean"]) == pytest.approx(np.mean(diverged_out))  # nan left out
    for name in ("loss", "mig", "dci_disentanglement", "sap", "rank_correlation"):
        _non_trivial_png(root / "study" / f"study_{name}.png")


def test_a_union_of_the_six_methods_is_one_table_by_member(tmp_path):
    """locatello2019_study's `+` union in one workdir: each member is read under its own method and
    that method's hyperparameter, though the CSV holds every method's fields (blank where unused)
    and the later programs' fields come after the first member's metrics."""
    from experiments.ablations import locatello2019_study

    config = locatello2019_study.get_config("quick,mid")
    members = parse_sweep(config.sweep.spec, config)
    rows = [{"member": i, **m, "diverged": 0, "mig": 0.01 * i, "step": 1500} for i, m in enumerate(members)]
    (tmp_path / "config.json").write_text(config.to_json_best_effort())
    write_sweep_results(tmp_path, rows, sorted({k for m in members for k in m}))
    table = study.read_sweep(tmp_path)
    got = [(r["method"], r["hparam"], r["hparam_value"], r["seed"]) for r in table]
    assert got == [
        ("beta_vae", "loss.beta", 1, 0), ("beta_vae", "loss.beta", 1, 1),
        ("beta_vae", "loss.beta", 6, 0), ("beta_vae", "loss.beta", 6, 1),
        ("annealed_vae", "loss.c_max", 25, 0), ("annealed_vae", "loss.c_max", 25, 1),
        ("factor_vae", "loss.factor_gamma", 30, 0), ("factor_vae", "loss.factor_gamma", 30, 1),
        ("dip_vae_i", "loss.dip_lambda_od", 10, 0), ("dip_vae_i", "loss.dip_lambda_od", 10, 1),
        ("dip_vae_ii", "loss.dip_lambda_od", 10, 0), ("dip_vae_ii", "loss.dip_lambda_od", 10, 1),
        ("beta_tcvae", "loss.tc_beta", 6, 0), ("beta_tcvae", "loss.tc_beta", 6, 1),
    ]  # fmt: skip
    assert [r["mig"] for r in table] == [0.01 * i for i in range(14)]
    assert study.metric_columns(table) == ["mig"]


def test_rank_correlation_against_scipy_with_ties_and_gaps():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 4))
    x[:, 1] = np.round(x[:, 0] + 0.5 * rng.normal(size=40))  # ties
    x[:, 3] = -(x[:, 2] ** 3)  # reversed monotone
    x[[3, 7], 0] = np.nan
    x[11, 2] = np.nan
    rows = [dict(zip("abcd", r, strict=True)) for r in x]
    corr = study.rank_correlation(rows, list("abcd"))
    for i in range(4):
        for j in range(4):
            both = np.isfinite(x[:, i]) & np.isfinite(x[:, j])
            reference = stats.spearmanr(x[both, i], x[both, j]).statistic
            np.testing.assert_allclose(corr[i, j], reference, rtol=1e-12, atol=1e-12)
    assert corr[2, 3] == pytest.approx(-1.0)
    constant = study.rank_correlation([{"a": 1.0, "b": v} for v in range(5)], ["a", "b"])
    assert np.isnan(constant[0, 1])


def test_method_of_config_fields():
    assert study.method_of({"model": {"name": "vae"}, "loss": {"beta": 1.0, "gamma": 0.0}}, []) == "vae"
    assert (
        study.method_of({"model": {"name": "vae"}, "loss": {"beta": 1.0}}, ["loss.beta", "seed"])
        == "beta_vae"
    )
    assert study.method_of({"model": {"name": "vae"}, "loss": {"beta": 4.0}}, ["seed"]) == "beta_vae"
    assert (
        study.method_of({"model": {"name": "vae"}, "loss": {"beta": 1.0, "gamma": 1000.0}}, [])
        == "annealed_vae"
    )
    assert (
        study.method_of({"model": {"name": "vae"}, "loss": {"objective": "dip_vae_ii"}}, []) == "dip_vae_ii"
    )
    assert study.method_of({"model": {"name": "vqvae"}, "loss": {"beta": 1.0}}, []) == "vqvae"
    # loss.method (every config has it): 'vae' is beta-VAE or AnnealedVAE, the others name themselves.
    vae = {"model": {"name": "vae"}, "loss": {"method": "vae", "beta": 4.0, "gamma": 0.0}}
    assert study.method_of(vae, ["seed"]) == "beta_vae"
    assert study.method_of({**vae, "loss": {**vae["loss"], "beta": 1.0}}, ["loss.c_max"]) == "annealed_vae"
    assert study.method_of({**vae, "loss": {"method": "factor_vae", "beta": 1.0}}, []) == "factor_vae"


def test_cli_names_methods_and_ends_user_errors_in_one_line(sweeps, capsys):
    root, _ = sweeps
    out = root / "cli"
    assert (
        study_cli.main(
            [f"mine={root / 'beta'}", str(root / "fixed"), "--out", str(out), "--metrics", "mig,sap"]
        )
        == 0
    )
    table = _read_csv(out / "study_results.csv")
    assert {r["method"] for r in table} == {"mine", "beta_vae"}
    assert sorted(p.name for p in out.glob("*.png")) == [
        "study_mig.png",
        "study_rank_correlation.png",
        "study_sap.png",
    ]
    assert study_cli.main([str(root / "nowhere"), "--out", str(out)]) == 2
    assert "nowhere: no sweep_results.csv" in capsys.readouterr().err
    with pytest.raises(UserError, match="'migg'"):
        study.write_study([root / "beta"], out, metrics=["migg"])

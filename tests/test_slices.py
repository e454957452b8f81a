"""Member slices of a sweep (`--sweep_slice=I/N`): which members a slice trains, the one-line
errors, and `experiments.study` joining the slices' workdirs into the one-process table."""

import csv
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from experiments import study as study_cli
from experiments.ablations import locatello2019_beta
from tests.helpers import ROOT, config_and_flags, load_config
from vae_jax.errors import ConfigError
from vae_jax.train.sweep import write_sweep_results
from vae_jax.train.sweep_spec import parse_slice, parse_sweep, programs, slice_members

BETA_VAE_SWEEP = f"--config={ROOT / 'experiments/beta_vae.py'}:smoke,sweep"  # 4 members


def test_a_slice_is_every_nth_member_and_keeps_the_programs():
    config = load_config("vae", "smoke")
    config.sweep.spec = "model.latent_dim=2,4 * loss.beta=1,2,4 * seed=0,1"  # 2 programs of 6
    members = parse_sweep(config.sweep.spec, config)
    assert slice_members(config, len(members)) == list(range(12))  # no slice: all of them
    slices = []
    for index in range(3):
        config.sweep.slice = f"{index}/3"
        slices.append(slice_members(config, len(members)))
    assert slices == [[0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8, 11]]
    whole = programs(members)
    for part in slices:  # each slice trains its part of every program of the whole sweep
        assert [[m for m in p if m in part] for p in whole] == [
            [m for m in p if m % 3 == part[0]] for p in whole
        ]
        assert all(any(m in part for m in p) for p in whole)
    assert parse_slice("") is None and parse_slice(None) is None and parse_slice("2/5") == (2, 5)
    for bad in ("3/3", "-1/3", "a/3", "1", "1/0", "1/2/3"):
        with pytest.raises(ConfigError, match="write I/N with integers 0 <= I < N"):
            parse_slice(bad)
    config.sweep.slice = "12/20"
    with pytest.raises(ConfigError, match="would be empty: the sweep has 12 members"):
        slice_members(config, len(members))
    config.sweep.spec = ""
    config.sweep.slice = "0/2"
    with pytest.raises(ConfigError, match="needs a sweep"):
        slice_members(config, 0)


@pytest.fixture
def run_module():
    """experiments.run with its flags parsed in this process (reset afterwards)."""
    from absl import flags

    from experiments import run

    yield run
    flags.FLAGS.unparse_flags()


@pytest.mark.parametrize(
    "flags,expect",
    [
        (("--sweep_slice=4/4",), "error: sweep slice '4/4' (--sweep_slice, config.sweep.slice) is invalid"),
        (("--sweep_slice=first",), "error: sweep slice 'first' (--sweep_slice, config.sweep.slice) is"),
        (("--sweep_slice=5/8",), "error: sweep slice '5/8' would be empty: the sweep has 4 members"),
        # Before waiting for the other processes (here a coordinator that would never answer).
        (("--sweep_slice=x", "--num_processes=2", "--process_id=1", "--coordinator_address=127.0.0.1:1"),
         "error: sweep slice 'x'"),
    ],
)  # fmt: skip
def test_cli_ends_a_bad_slice_in_one_line_before_anything_slow(flags, expect, tmp_path, capsys, run_module):
    with pytest.raises(SystemExit) as e:
        run_module.parse_flags(["run", BETA_VAE_SWEEP, f"--workdir={tmp_path}/w", *flags])
        run_module.main([])
    assert e.value.code == 2
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr and stderr.strip().splitlines()[-1].startswith(expect)
    assert not (tmp_path / "w").exists()


def _sweep_rows(n: int, rng) -> list[dict]:
    """Rows of a beta sweep as train_sweep writes them, member by member."""
    rows = []
    for member in range(n):
        beta, seed = [1, 2, 4][member // 4], member % 4
        metrics = {"loss": 100.0 - beta + rng.normal(), "mig": 0.01 * beta + 0.02 * rng.normal()}
        rows.append({"member": member, "loss.beta": beta, "seed": seed, "diverged": 0, **metrics, "step": 3})
    return rows


def _write_workdir(workdir, config, rows):
    workdir.mkdir(parents=True)
    (workdir / "config.json").write_text(config.to_json_best_effort(indent=2))
    write_sweep_results(workdir, rows, ["loss.beta", "seed"])


def _table(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_study_joins_slices_into_the_one_process_table_and_names_missing_members(tmp_path, capsys):
    config = locatello2019_beta.get_config("smoke")
    config.sweep.spec = "loss.beta=1,2,4 * seed=0,1,2,3"
    rows = _sweep_rows(12, np.random.default_rng(0))
    _write_workdir(tmp_path / "one", config, rows)
    slices = []
    for index in range(3):
        config.sweep.slice = f"{index}/3"
        slices.append(tmp_path / f"slice{index}")
        _write_workdir(slices[-1], config, [r for r in rows if r["member"] % 3 == index])
    assert study_cli.main([str(tmp_path / "one"), "--out", str(tmp_path / "study_one")]) == 0
    # Given in any order, the slices join into the one sweep's table, member by member.
    assert study_cli.main([*map(str, slices[::-1]), "--out", str(tmp_path / "study_joined")]) == 0
    one, joined = (
        _table(tmp_path / "study_one/study_results.csv"),
        _table(tmp_path / "study_joined/study_results.csv"),
    )
    assert [r["member"] for r in joined] == [str(m) for m in range(12)]
    assert [{k: v for k, v in r.items() if k != "sweep"} for r in joined] == [
        {k: v for k, v in r.items() if k != "sweep"} for r in one
    ]
    assert [r["sweep"] for r in joined] == [str(slices[m % 3]) for m in range(12)]  # where each member is
    for name in ("study_summary.csv",):
        assert _table(tmp_path / "study_one" / name) == _table(tmp_path / "study_joined" / name)
    # A slice not given, and a slice stopped before its end (its finished members' results.json only).
    (slices[2] / "sweep_results.csv").unlink()
    member_dir = slices[2] / "members" / "5"
    member_dir.mkdir(parents=True)
    (member_dir / "results.json").write_text(json.dumps(rows[5]))
    code = study_cli.main([str(slices[0]), str(slices[2]), "--out", str(tmp_path / "partial")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and not (tmp_path / "partial").exists()
    assert "misses members 1, 4, 7, 10 (slice 1/3, no workdir given); " in err[0]
    assert f"2, 8, 11 (slice 2/3, in {slices[2]}, unfinished); finish those slices" in err[0]
    args = [str(slices[0]), str(slices[2]), "--out", str(tmp_path / "partial"), "--allow_incomplete"]
    assert study_cli.main(args) == 0
    assert [r["member"] for r in _table(tmp_path / "partial/study_results.csv")] == ["0", "3", "5", "6", "9"]
    code = study_cli.main([str(slices[0]), str(slices[0]), "--out", str(tmp_path / "twice")])
    assert code == 2 and "both hold slice 0/3" in capsys.readouterr().err


def _assert_same_row(a: dict, b: dict, rtol=1e-5):
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], float):
            assert math.isclose(a[k], b[k], rel_tol=rtol, abs_tol=1e-6), (k, a[k], b[k])
        else:
            assert a[k] == b[k], k


@pytest.mark.slow
def test_a_sweep_in_three_slices_trains_and_studies_like_one_process(tmp_path):
    """A 12-member sweep as 3 slices in 3 command-line processes (a job array): each slice trains
    its members (0, 3, 6, 9 / 1, 4, ... ) with their global indices; every member ends with the
    results it has in the whole sweep trained in one process, and `experiments.study` over the
    slices writes the one-process study table. (A small VAE on procedural dSprites: no TFDS to
    import in each process.)"""
    from vae_jax.train import train_and_evaluate

    overrides = {
        "data.name": "dsprites", "model.hidden": (16,), "model.latent_dim": 4,
        "sweep.spec": "loss.beta=1,2,4 * seed=0,1,2,3", "sweep.vectorize": "vmap",
        "train.num_steps": 3, "train.log_every": 3, "eval.iwae_k": 0, "eval.num_examples": 64,
    }  # fmt: skip
    config, args = config_and_flags("vae", "smoke", overrides)
    env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
    procs = []
    for index in range(3):
        with open(tmp_path / f"slice{index}.log", "w") as log:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "experiments.run", *args, f"--sweep_slice={index}/3",
                 f"--workdir={tmp_path / f'slice{index}'}"],
                cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
            ))  # fmt: skip
    try:
        one = train_and_evaluate(config, tmp_path / "one")["members"]  # while the slices train
        codes = [p.wait(timeout=600) for p in procs]
    finally:
        for p in procs:
            p.kill()
    logs = [(tmp_path / f"slice{i}.log").read_text()[-3000:] for i in range(3)]
    assert codes == [0, 0, 0], "\n".join(logs)
    assert [r["member"] for r in one] == list(range(12))
    for index in range(3):
        workdir = tmp_path / f"slice{index}"
        rows = json.loads((workdir / "results.json").read_text())["members"]
        assert [r["member"] for r in rows] == [index, index + 3, index + 6, index + 9]
        assert json.loads((workdir / "config.json").read_text())["sweep"]["slice"] == f"{index}/3"
        for row in rows:
            _assert_same_row(row, one[row["member"]])
            member_results = json.loads(
                (workdir / "members" / str(row["member"]) / "results.json").read_text()
            )
            assert member_results == row
            assert list((workdir / "members" / str(row["member"]) / "images").glob("*.png"))
        assert not (workdir / "study").exists()  # a slice's own table would be a third of the study
    out = tmp_path / "joined"
    assert study_cli.main([*(str(tmp_path / f"slice{i}") for i in range(3)), "--out", str(out)]) == 0
    joined, alone = _table(out / "study_results.csv"), _table(tmp_path / "one/study/study_results.csv")
    assert len(joined) == len(alone) == 12
    for a, b in zip(joined, alone, strict=True):
        assert a.keys() == b.keys() and a["sweep"] == str(tmp_path / f"slice{int(a['member']) % 3}")
        _assert_same_row(
            {k: _number(v) for k, v in a.items() if k != "sweep"},
            {k: _number(v) for k, v in b.items() if k != "sweep"},
        )


def _number(text: str):
    try:
        return float(text)
    except ValueError:
        return text

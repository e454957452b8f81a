"""The numbers the sweep benchmarks report: the roofline's arithmetic, the peak table's lookup, and a
measured sweep row whose fields agree with each other and with XLA's own counts."""

import pytest

from benchmarks import profile_sweep, roofline
from benchmarks.sweep_cost import function_flops, sweep_row
from tests.helpers import load_config


def test_roofline_names_the_bound_and_the_distance_to_it():
    peak = roofline.Peak({"float32": 100.0, "bfloat16": 400.0}, 1000.0, "test")  # ridge 100 FLOP/byte
    compute = roofline.roofline(1e12, 1e9, 0.02, peak, "float32")  # 10 ms of FLOPs, 1 ms of bytes
    assert compute["bound"] == "compute" and compute["ridge_flop_per_byte"] == pytest.approx(100)
    assert compute["min_step_seconds"] == pytest.approx(0.01)
    assert compute["fraction_of_bound"] == pytest.approx(0.5)
    memory = roofline.roofline(1e12, 1e9, 0.02, roofline.Peak({"bfloat16": 400.0}, 100.0, "t"), "bfloat16")
    assert memory["bound"] == "memory" and memory["min_step_seconds"] == pytest.approx(0.01)
    assert memory["flop_per_byte"] == pytest.approx(1000)
    assert roofline.roofline(1.0, 1.0, 1.0, None, "float32")["bound"] is None


def test_peaks_by_device_kind():
    assert roofline.peak_of("NVIDIA H100 80GB HBM3").gbps == 3350
    assert roofline.peak_of("NVIDIA H100 PCIe").gbps == 2000
    assert roofline.peak_of("NVIDIA H200").gbps == 4800
    assert roofline.peak_of("TPU v5 lite").gbps == 819 and roofline.peak_of("TPU v5").gbps == 2765
    assert roofline.peak_of("cpu") is None
    given = roofline.peak_of("cpu", peak_tflops=2.0, peak_gbps=50.0)
    assert given.tflops["float32"] == 2.0 and given.gbps == 50.0


def _small_sweep():
    """A 2-member vmapped sweep of a small MLP VAE on dSprites."""
    config = load_config("vae", "smoke")
    config.data.name, config.train.batch_size = "dsprites", 8
    config.model.encoder, config.model.hidden = "mlp", (16,)
    config.sweep.spec, config.sweep.vectorize = "loss.beta=1,4", "vmap"
    return config


def test_the_profile_adds_overlapping_op_times_once():
    assert profile_sweep._union_ns([(20, 30), (0, 10), (5, 15), (12, 14)]) == 25
    assert profile_sweep._union_ns([]) == 0
    assert profile_sweep.kind_of("fusion.12") == "fusion"
    assert profile_sweep.kind_of("cudnn-conv-bw-filter.3.1") == "cudnn-conv-bw-filter"
    assert profile_sweep.kind_of("custom-call") == "custom-call"


@pytest.mark.slow
def test_a_traced_sweep_program_is_summed_per_op():
    """benchmarks.profile_sweep on the CPU: every op's time is counted once, in its kind and its rank."""
    result = profile_sweep.profile(_small_sweep(), steps=2, top=3)
    assert result["members"] == 2 and result["steps"] == 2 and result["plane"] == "/host:CPU"
    wall, busy, ops = (result[f"{k}_seconds_per_step"] for k in ("wall", "busy", "op"))
    assert 0 < busy <= ops and busy <= wall * 1.05  # the union fits inside the traced steps
    assert result["member_steps_per_sec"] == pytest.approx(2 / wall)
    assert sum(k["share"] for k in result["by_kind"].values()) == pytest.approx(1)
    assert sum(k["seconds_per_step"] for k in result["by_kind"].values()) == pytest.approx(ops)
    top = result["top"]
    assert len(top) == 3 and [t["seconds_per_step"] for t in top] == sorted(
        (t["seconds_per_step"] for t in top), reverse=True
    )
    assert all(profile_sweep.kind_of(t["op"]) in result["by_kind"] for t in top)
    assert result["ops_per_step"] >= 3 and result["compile_seconds"] > 0


@pytest.mark.slow
def test_sweep_row_reports_consistent_numbers():
    """The small sweep's measured row, fed on the device too."""
    config = _small_sweep()
    shape = (64, 64, 1)
    useful = function_flops(config, shape)
    peak = roofline.Peak({"float32": 1.0}, 10.0, "test")
    row = sweep_row(
        config, shape, "auto", "float32", useful_flops=useful, peak=peak, repeats=2, iters=2, feed=True
    )
    assert row["members"] == 2 and row["vectorize"] == "vmap"
    assert row["member_steps_per_sec"] * row["step_seconds"] == pytest.approx(2)
    assert row["achieved_tflops"] == pytest.approx(2 * useful / row["step_seconds"] / 1e12)
    # An MLP has no convolutions: the program does the function's FLOPs, as XLA counts them.
    assert row["executed_gflops_per_member_step"] == pytest.approx(useful / 1e9, rel=0.05)
    assert row["bytes_per_member_step"] > 0 and row["roofline"]["bound"] in ("compute", "memory")
    assert row["fed_step_seconds"] > 0 and row["feed_share"] < 1

"""The numbers the sweep benchmarks report: the roofline's arithmetic, the peak table's lookup, and a
measured sweep row whose fields agree with each other and with XLA's own counts."""

from types import SimpleNamespace

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


def _event(op, name, start, duration):
    stats = [("hlo_op", op)] if op else []
    return SimpleNamespace(name=name, start_ns=float(start), duration_ns=float(duration), stats=stats)


def _plane(name, *lines):
    return SimpleNamespace(
        name=name, lines=[SimpleNamespace(name=f"line{i}", events=e) for i, e in enumerate(lines)]
    )


def test_the_profile_reads_the_device_plane_and_adds_overlaps_once():
    """Two streams of a GPU's kernels over 2 steps, beside host events that repeat them as launches."""
    device = _plane(
        "/device:GPU:0",
        [_event("fusion.3", "loop_fusion", 0, 40), _event("convolution.1", "sm90_xmma_fprop", 50, 30),
         _event(None, "memcpy", 80, 10), _event("fusion.3", "loop_fusion", 100, 40)],
        [_event("convolution.1", "sm90_xmma_fprop", 120, 60), _event("fusion.7", "reduce_fusion", 190, 10)],
    )  # fmt: skip
    host = _plane("/host:CUPTI", [_event("fusion.3", "cuLaunchKernel", 0, 1000)])
    result = profile_sweep.summarize(SimpleNamespace(planes=[host, device]), steps=2, wall_seconds=400e-9)
    assert result["plane"] == "/device:GPU:0"  # the host's launches are not device time
    assert result["op_seconds_per_step"] == pytest.approx(90e-9)  # 40+30+40+60+10 = 180 ns over 2 steps
    # [0,40) [50,80) [100,140)+[120,180) [190,200): 160 ns, the overlapping 20 counted once
    assert result["busy_seconds_per_step"] == pytest.approx(80e-9)
    assert result["wall_seconds_per_step"] == pytest.approx(200e-9)
    assert result["ops_per_step"] == 2.5  # the untagged memcpy is not an op
    assert result["by_kind"]["fusion"]["share"] == pytest.approx(90 / 180)
    assert result["by_kind"]["convolution"]["seconds_per_step"] == pytest.approx(45e-9)
    assert [t["op"] for t in result["top"]] == ["convolution.1", "fusion.3", "fusion.7"]
    assert result["top"][0]["ran_as"] == "sm90_xmma_fprop" and result["top"][1]["count_per_step"] == 1
    on_cpu = profile_sweep.summarize(SimpleNamespace(planes=[host]), steps=1, wall_seconds=1e-6)
    assert on_cpu["plane"] == "/host:CUPTI" and on_cpu["op_seconds_per_step"] == pytest.approx(1e-6)
    assert profile_sweep.kind_of("cudnn-conv-bw-filter.3.1") == "cudnn-conv-bw-filter"
    assert profile_sweep.kind_of("custom-call") == "custom-call"
    with pytest.raises(RuntimeError, match="no event"):
        profile_sweep.summarize(
            SimpleNamespace(planes=[_plane("/host:CPU", [_event(None, "x", 0, 1)])]), 1, 1.0
        )


@pytest.mark.slow
def test_a_traced_sweep_program_is_summed_per_op():
    """benchmarks.profile_sweep on the CPU: the trace holds the program's ops, inside its steps."""
    result = profile_sweep.profile(_small_sweep(), steps=2, top=3)
    assert result["members"] == 2 and result["steps"] == 2 and result["plane"] == "/host:CPU"
    wall, busy = result["wall_seconds_per_step"], result["busy_seconds_per_step"]
    assert 0 < busy <= wall * 1.05  # the ops ran inside the traced steps, and only theirs
    assert result["ops_per_step"] >= 10 and len(result["top"]) == 3 and result["compile_seconds"] > 0
    # The MLP's matrix products are in the trace, by whichever name the CPU backend gives them.
    assert any("dot" in k or "ynn" in k or "gemm" in k for k in result["by_kind"])


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

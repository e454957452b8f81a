"""What bounds a step: its FLOPs and bytes (XLA's cost analysis) against a chip's peak rates.

`PEAKS` holds datasheet figures per device kind (dense arithmetic, no sparsity): the matrix
rate at which a product of the dtype runs and the memory bandwidth. For float32 inputs XLA's
default precision computes products in TF32 on NVIDIA tensor cores (Ampere and later) and in
bfloat16 passes on TPUs (https://docs.jax.dev/en/latest/201/precision.html), so that is the
float32 rate listed; elementwise float32 work runs at the chip's vector rate, far below it.
A device kind not listed (a CPU) needs `--peak_tflops` and `--peak_gbps`.

`roofline(flops, bytes, seconds, peak)`: a step moving `bytes` and computing `flops` needs at
least max(flops / peak FLOP/s, bytes / bandwidth); the larger term names the bound, and the
measured time's share of that minimum says how far from it the step runs.
"""

import dataclasses

import jax


@dataclasses.dataclass(frozen=True)
class Peak:
    """A chip's peak rates: matrix TFLOP/s per input dtype, memory bandwidth in GB/s."""

    tflops: dict[str, float]
    gbps: float
    source: str


_NVIDIA = "NVIDIA datasheet, dense"
PEAKS = {  # a substring of jax.Device.device_kind -> its peaks (first match wins)
    "H200": Peak({"float32": 494.7, "bfloat16": 989.4}, 4800, _NVIDIA),
    "H100 PCIe": Peak({"float32": 378.0, "bfloat16": 756.0}, 2000, _NVIDIA),
    "H100": Peak({"float32": 494.7, "bfloat16": 989.4}, 3350, _NVIDIA),  # SXM5
    "A100-SXM4-80GB": Peak({"float32": 156.0, "bfloat16": 312.0}, 2039, _NVIDIA),
    "A100": Peak({"float32": 156.0, "bfloat16": 312.0}, 1555, _NVIDIA),
    "L4": Peak({"float32": 60.0, "bfloat16": 121.0}, 300, _NVIDIA),
    "TPU v6 lite": Peak({"float32": 918.0, "bfloat16": 918.0}, 1640, "Google Cloud TPU docs"),
    "TPU v5p": Peak({"float32": 459.0, "bfloat16": 459.0}, 2765, "Google Cloud TPU docs"),
    "TPU v5 lite": Peak({"float32": 197.0, "bfloat16": 197.0}, 819, "Google Cloud TPU docs"),
    "TPU v5": Peak({"float32": 459.0, "bfloat16": 459.0}, 2765, "Google Cloud TPU docs"),  # v5p
    "TPU v4": Peak({"float32": 275.0, "bfloat16": 275.0}, 1228, "Google Cloud TPU docs"),
}


def peak_of(
    device_kind: str, peak_tflops: float | None = None, peak_gbps: float | None = None
) -> Peak | None:
    """The peaks of a device kind: given ones override the table's; None where neither has them."""
    listed = next((p for kind, p in PEAKS.items() if kind in device_kind), None)
    if peak_tflops is not None and peak_gbps is not None:
        return Peak({"float32": peak_tflops, "bfloat16": peak_tflops}, peak_gbps, "given")
    return listed


def cost_of(compiled) -> dict[str, float]:
    """FLOPs and bytes accessed of a compiled program (XLA's cost analysis of its optimized HLO).
    On a GPU, library calls (cuBLAS, cuDNN) may be left out of the FLOPs."""
    analysis = compiled.cost_analysis()
    analysis = analysis[0] if isinstance(analysis, list) else analysis
    return {"flops": float(analysis.get("flops", 0.0)), "bytes": float(analysis.get("bytes accessed", 0.0))}


def roofline(flops: float, bytes_: float, seconds: float, peak: Peak | None, dtype: str) -> dict:
    """The bound of a step of `flops` and `bytes_` that took `seconds`, on a chip with `peak`."""
    if peak is None:
        return {"bound": None, "why": "no peak rates for this device: pass --peak_tflops and --peak_gbps"}
    compute, memory = flops / (peak.tflops[dtype] * 1e12), bytes_ / (peak.gbps * 1e9)
    minimum = max(compute, memory)
    return {
        "peak_tflops": peak.tflops[dtype],
        "peak_gbps": peak.gbps,
        "peaks_from": peak.source,
        "flop_per_byte": flops / max(bytes_, 1.0),
        "ridge_flop_per_byte": peak.tflops[dtype] * 1e3 / peak.gbps,
        "bound": "compute" if compute >= memory else "memory",
        "min_step_seconds": minimum,
        "fraction_of_bound": minimum / seconds,
    }


def device_kind() -> str:
    return str(jax.devices()[0].device_kind)

#!/usr/bin/env bash
# Every GPU figure the sweep benchmarks report, in one command of about nine minutes on one GPU:
#
#   bash benchmarks/gpu_bench.sh          # on the GPU machine, in the repository's root
#   bash benchmarks/gpu_bench.sh --dry    # every step at toy sizes on this machine's CPU (~5 min)
#
# It runs under the machine's own python3 (jax with CUDA, flax, optax, orbax, scikit-learn). Where
# that lacks ml_collections and cannot install it (no network), `make gpu-wheels` puts the wheel
# into .whl/ beforehand; this script installs what it finds there into /tmp/site.
#
# The steps, most wanted first, each under its own time cap and all under BUDGET seconds (540 by
# default; a step that would start with less than its floor left is skipped, and says so):
#   1. benchmarks.profile_sweep: the beta-VAE's 300-member study program (6 betas x 50 seeds):
#      conv form auto (member-batched products) in bfloat16, form xla (grouped convolutions) in
#      float32, then the other two;
#   2. benchmarks.study_cost --sweep_seeds 50: every method's study program (auto form, bfloat16)
#      and the study's training in device-hours;
#   3. one member's final evaluation at the metric protocol on this host (study_cost --eval_members 1;
#      the study's total adds members x this to step 2's hours);
#   4. benchmarks.step_time: one beta-VAE's step;
#   5. benchmarks.sweep_scaling: members 1 to 300 in bfloat16;
#   6. the CLI: beta_vae.py:smoke in bfloat16 through experiments.run (127 s on an H200, most of it
#      compiling: last, and only with the time for it).
# Results go to $OUT/<benchmark>_gpu.json (OUT defaults to /tmp/gpu_bench), the whole log to
# $OUT/gpu_bench.log; a short table is printed last. The JSON files belong in benchmarks/results/,
# their findings in docs/performance.md.
set -u -o pipefail
cd "$(dirname "$0")/.."
DRY=0
[[ "${1:-}" == "--dry" ]] && DRY=1
OUT=${OUT:-/tmp/gpu_bench}
BUDGET=${BUDGET:-540}
mkdir -p "$OUT"
rm -rf "$OUT"/*_gpu.json "$OUT/gpu_bench.log" "$OUT/../gpu_bench_smoke"  # a rerun's numbers only
LOG=$OUT/gpu_bench.log
START=$SECONDS
PY=python3
[[ -x .venv/bin/python && $DRY == 1 ]] && PY=.venv/bin/python
export PYTHONUNBUFFERED=1

if [[ $DRY == 0 ]]; then
    if ls .whl/*.whl >/dev/null 2>&1; then
        $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
            || { echo "gpu_bench: installing the wheels in .whl/ failed" | tee -a "$LOG"; exit 1; }
        export PYTHONPATH=/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}
    else
        export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
    fi
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv 2>&1 | tee -a "$LOG"
    SEEDS=50 SIZES=1,16,64,300 WORK=300 STEPS=5 EVAL=1 SCALE=1 METHODS=beta_vae,annealed_vae,factor_vae,dip_vae_i,dip_vae_ii,beta_tcvae
else  # toy sizes, no evaluation (five minutes of a CPU), caps ten times longer
    export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
    SEEDS=1 SIZES=1,2 WORK=2 STEPS=1 EVAL=0 SCALE=10 METHODS=beta_vae,factor_vae
    BUDGET=$((BUDGET * SCALE))
fi
$PY -c "import jax, ml_collections, sklearn; print('jax', jax.__version__, jax.devices())" 2>&1 | tee -a "$LOG" \
    || { echo "gpu_bench: the Python environment is incomplete (see above)" | tee -a "$LOG"; exit 1; }

# step NAME CAP FLOOR COMMAND...: runs COMMAND under min(CAP, time left), logs its output.
declare -A STATUS
step() {
    local name=$1 cap=$(($2 * SCALE)) floor=$(($3 * SCALE))
    shift 3
    local left=$((BUDGET - (SECONDS - START)))
    if ((left < floor)); then
        STATUS[$name]="skipped ($left s left)"
        echo "== $name: skipped, $left s left" | tee -a "$LOG"
        return
    fi
    local limit=$((cap < left ? cap : left)) began=$SECONDS
    echo "== $name (at most $limit s): $*" | tee -a "$LOG"
    timeout --signal=TERM --kill-after=5 "$limit" "$@" >>"$LOG" 2>&1
    local rc=$?
    STATUS[$name]="rc=$rc in $((SECONDS - began)) s"
    echo "== $name: ${STATUS[$name]}" | tee -a "$LOG"
}

step profile_sweep 170 60 $PY -m benchmarks.profile_sweep --seeds "$SEEDS" --steps "$STEPS" \
    --programs auto/bfloat16,xla/float32,auto/float32,xla/bfloat16 --out "$OUT/profile_sweep_gpu.json"
step study_cost 200 90 $PY -m benchmarks.study_cost --sweep_seeds "$SEEDS" --forms auto \
    --dtypes bfloat16 --methods "$METHODS" --eval_members 0 --out "$OUT/study_cost_gpu.json"
step evaluation 150 60 $PY -m benchmarks.study_cost --methods beta_vae --eval_members "$EVAL" \
    --out "$OUT/evaluation_gpu.json"
step step_time 60 30 $PY -m benchmarks.step_time --no-torch --only beta_vae_dsprites_64x64 \
    --out "$OUT/step_time_gpu.json"
step sweep_scaling 80 40 $PY -m benchmarks.sweep_scaling --sizes "$SIZES" --work "$WORK" \
    --dtypes bfloat16 --out "$OUT/sweep_scaling_gpu.json"
step cli_bf16 150 100 $PY -m experiments.run --config=experiments/beta_vae.py:smoke \
    --config.model.dtype=bfloat16 --workdir="$OUT/../gpu_bench_smoke"

echo
for name in profile_sweep study_cost evaluation step_time sweep_scaling cli_bf16; do
    printf '%-14s %s\n' "$name" "${STATUS[$name]:-not run}"
done
$PY - "$OUT" <<'EOF'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
def load(name):
    path = out / f"{name}_gpu.json"
    return json.loads(path.read_text()) if path.exists() else None
if p := load("profile_sweep"):
    from benchmarks.profile_sweep import table
    print(f"\nprofile on {p['environment']['device']}:\n{table(p['programs'])}")
if s := load("study_cost"):
    print("study_cost: device-hours of the study, as sweeps (+ evaluation)")
    for key, hours in s.get("device_hours_as_sweeps", {}).items():
        total = s.get("device_hours_with_evaluation", {}).get(key)
        print(f"  {key:<16} {hours:8.1f}" + (f"   with evaluation {total:8.1f}" if total else ""))
    for m, r in s["per_method"].items():
        rates = {k: round(v["member_steps_per_sec"]) for k, v in r.get("sweeps", {}).items()}
        print(f"  {m:<14} one model {r['steps_per_sec']:7.1f} steps/s; study program member-steps/s {rates}")
if (e := load("evaluation")) and "final_evaluation_per_member" in e:
    seconds = e["final_evaluation_per_member"]["seconds"]
    print(f"one member's evaluation at the protocol: {seconds:.0f} s; the study's 1,800: {1800 * seconds / 3600:.1f} h")
if w := load("sweep_scaling"):
    print("sweep_scaling: members, form/dtype, member-steps/s")
    for r in w.get("rows", []):
        print(f"  {r['members']:>5} {r['form']}/{r['dtype']:<10} {r['member_steps_per_sec']:>10,.0f}")
if t := load("step_time"):
    for name, r in t["configs"].items():
        print(f"step_time: {name} {r['steps_per_sec']:,.0f} steps/s in memory,"
              f" {r.get('pipeline_steps_per_sec', float('nan')):,.0f} through the input pipeline")
EOF

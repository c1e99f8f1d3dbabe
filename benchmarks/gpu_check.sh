#!/usr/bin/env bash
# GPU readiness check: install mmdx on a bare CUDA machine and train the GPU config for a fixed number of
# steps, once in one process and once under torchrun.
#
#   bash benchmarks/gpu_check.sh [--steps 60] [--cases 300] [--size 96] [--work /tmp/mmdx-gpu-check]
#                                [--venv .venv-gpu | --python PY [--wheels DIR]] [--set KEY=VALUE ...]
#                                [--allow-cpu]
#
# 1. Stops at once, with the reason, when no CUDA GPU is visible (nvidia-smi missing or listing none).
# 2. Creates a virtual environment (Python 3.11) and installs the project with torch==2.13.0; on a CUDA
#    machine pip takes the CUDA build from PyPI (the only network access needed: the package registry).
#    An existing environment that already imports mmdx and a CUDA torch is reused.
#    On a machine without a package registry, --python PY uses an interpreter that already has a CUDA build
#    of torch as it is (Python 3.11 or later): the project is put on PYTHONPATH instead of installed, and
#    --wheels DIR installs the other dependencies offline from wheels in DIR (pip --no-index) into the work
#    folder. Fetch them where pip works, for the target's Python, e.g. for 3.12:
#      pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 \
#          -d wheels monai==1.6.1 pydicom nibabel pydantic pydantic_core ...
#    (whatever `python -c "import mmdx.workflows.train"` reports missing there).
# 3. Writes a synthetic 3D cohort (--cases volumes of --size³ voxels) with `mmdx synth`.
# 4. Trains configs/ct3d_gpu.yaml (3D DenseNet-121, bf16 autocast) for --steps optimizer steps and prints
#    samples/s, peak GPU memory (torch.cuda.max_memory_allocated, per process) and the share of step time
#    spent waiting for data (from the run's training.json history).
# 5. The same under `torchrun --nproc_per_node=2` (DistributedDataParallel over NCCL) when the machine has
#    two or more GPUs; with one GPU, a one-process torchrun run checks the launcher path instead, and the
#    summary says so.
#
# --set KEY=VALUE overrides a key of the config for both runs (e.g. --set data.loader.workers=4); repeatable.
#
# --allow-cpu (or MMDX_GPU_CHECK_ALLOW_CPU=1) runs the same steps on a CPU with tiny settings (32³ volumes,
# a small CNN, fp32, two gloo processes), to exercise the script itself where no GPU exists.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
steps=60
cases=300
size=96
work="${TMPDIR:-/tmp}/mmdx-gpu-check"
venv="$repo/.venv-gpu"
use_python=""
wheels=""
extra_overrides=()
allow_cpu="${MMDX_GPU_CHECK_ALLOW_CPU:-0}"
PYTHON="${PYTHON:-python3.11}"

# the help is the comment block at the top of this file
usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"; }
while [ "$#" -gt 0 ]; do
    case "$1" in
        --steps) steps="$2"; shift 2 ;;
        --cases) cases="$2"; shift 2 ;;
        --size) size="$2"; shift 2 ;;
        --work) work="$2"; shift 2 ;;
        --venv) venv="$2"; shift 2 ;;
        --python) use_python="$2"; shift 2 ;;
        --wheels) wheels="$2"; shift 2 ;;
        --set) extra_overrides+=("$2"); shift 2 ;;
        --allow-cpu|--dry-run) allow_cpu=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "gpu_check.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done

say() { printf '\n== %s\n' "$*"; }
fail() { printf 'gpu_check.sh: %s\n' "$*" >&2; exit 1; }

# ---- 1. a GPU, or an explicit CPU dry run ----------------------------------------------------------------
gpus=0
if command -v nvidia-smi >/dev/null 2>&1; then
    gpus="$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true)"
fi
if [ "$gpus" -eq 0 ] && [ "$allow_cpu" != "1" ]; then
    fail "no CUDA GPU found (nvidia-smi is missing or lists no GPU). This check needs a CUDA machine; to exercise the script on a CPU run it with --allow-cpu (or MMDX_GPU_CHECK_ALLOW_CPU=1)."
fi
if [ "$gpus" -gt 0 ]; then
    mode=gpu
    say "$gpus GPU(s):"
    nvidia-smi -L
else
    mode=cpu
    say "no GPU: CPU dry run with tiny settings (--allow-cpu)"
    steps=4
    cases=60
    size=32
fi
# ---- 2. the environment ----------------------------------------------------------------------------------
probe_env() {
    "$py" - "$mode" <<'EOF' 2>/dev/null
import sys
import torch
import mmdx  # noqa: F401
import mmdx.workflows.train  # noqa: F401
if sys.argv[1] == "gpu" and not torch.cuda.is_available():
    raise SystemExit(1)
EOF
}
mkdir -p "$work"
if [ -n "$use_python" ]; then
    py="$use_python"
    command -v "$py" >/dev/null 2>&1 || fail "--python: '$py' not found"
    "$py" -c 'import sys; raise SystemExit(sys.version_info < (3, 11))' || fail "--python: $py is older than Python 3.11"
    export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
    if [ -n "$wheels" ]; then
        compgen -G "$wheels/*.whl" >/dev/null || fail "--wheels: no .whl files in '$wheels'"
        say "installing $(ls "$wheels"/*.whl | wc -l) wheels from $wheels into $work/site (offline)"
        rm -rf "$work/site"
        "$py" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --target "$work/site" "$wheels"/*.whl
        export PYTHONPATH="$work/site:$PYTHONPATH"
    fi
    if ! probe_env; then
        "$py" -c 'import torch, mmdx, mmdx.workflows.train' || true
        fail "$py cannot import torch with CUDA and the project (see the error above; --wheels DIR supplies missing packages)"
    fi
    say "using $py as it is (project on PYTHONPATH)"
else
    command -v "$PYTHON" >/dev/null 2>&1 || fail "'$PYTHON' not found; set PYTHON=/path/to/python3.11"
    [ "$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" = "3.11" ] || fail "$PYTHON is not Python 3.11"
    py="$venv/bin/python"
    if [ -x "$py" ] && probe_env; then
        say "reusing $venv"
    else
        say "installing mmdx into $venv"
        [ -x "$py" ] || "$PYTHON" -m venv "$venv"
        "$py" -m pip install --quiet --upgrade pip
        "$py" -m pip install --quiet -e "$repo" "torch==2.13.0"
    fi
fi
"$py" - "$mode" <<'EOF' || fail "torch in $py cannot use the GPU (a CPU-only wheel?). Reinstall with: $py -m pip install --force-reinstall torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128 (or the CUDA version of this driver)"
import sys
import torch
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")
if sys.argv[1] == "gpu":
    if not torch.cuda.is_available():
        raise SystemExit(1)
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        print(f"  cuda:{i} {p.name}, {p.total_memory / 2**30:.0f} GiB, bf16: {torch.cuda.is_bf16_supported()}")
EOF

# ---- 3. a cohort -----------------------------------------------------------------------------------------
cohort="$work/cohort-${cases}x${size}"
if [ ! -f "$cohort/cohort.yaml" ]; then
    say "writing a synthetic cohort: $cases cases, ${size}³ volumes"
    rm -rf "$cohort"
    "$py" -m pipelines.cli synth "$cohort" --cases "$cases" --dims 3 --size "$size" --seed 11 --workers "$(nproc)"
fi

# ---- 4./5. training runs ---------------------------------------------------------------------------------
# The training runs in-process (mmdx.workflows.train.train_run) so that each process can report its own peak GPU
# memory; every rank prints one JSON line, rank 0 with the throughput and data-wait share.
probe="$work/train_probe.py"
cat > "$probe" <<'EOF'
import json, os, statistics, sys
import torch
from mmdx.config import load_config
from mmdx.workflows.train import train_run

config_path, cohort, out, *overrides = sys.argv[1:]
config = load_config(config_path, overrides)
result = train_run(config, cohort, out, progress=False)
summary = result.summary() if result is not None else None
rank = int(os.environ.get("RANK", "0"))
line = {"rank": rank, "world_size": int(os.environ.get("WORLD_SIZE", "1"))}
if torch.cuda.is_available():
    device = int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count()
    line["peak_gpu_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    line["device"] = torch.cuda.get_device_name(device)
if summary:
    history = summary["result"]["history"]
    later = history[1:] or history  # the first epoch includes cuDNN autotuning and worker start-up
    line |= {
        "steps": config.train.max_steps,
        "epochs": len(history),
        "samples_per_second": statistics.fmean(h["samples_per_second"] for h in later),
        "data_wait_share": statistics.fmean(h["data_wait_share"] for h in later),
        "seconds": sum(h["seconds"] for h in history),
        "parameters": summary["parameters"],
    }
print("GPU_CHECK " + json.dumps(line), flush=True)
EOF

# key=value overrides of the config (the probe's trailing arguments); the field of view stays that of the
# config (96 voxels of 3.7 mm) whatever --size is
spacing="$(awk -v s="$size" 'BEGIN { printf "%.4f", 96 * 3.7 / s }')"
overrides=("train.max_steps=$steps" "train.epochs=1000" "train.patience=1000"
           "data.image.shape=[$size, $size, $size]" "data.image.spacing=[$spacing, $spacing, $spacing]")
if [ "$mode" = cpu ]; then
    overrides+=("train.device=cpu" "train.precision=fp32" "data.loader.workers=2" "data.validate_workers=2"
                "data.loader.batch_size=8" "data.text.vocab_size=500" "data.text.max_length=48"
                "model.image={name: small_cnn, channels: [8, 16], out_dim: 16}"
                "model.text={name: text_cnn, dim: 16, channels: 16, embedding_dim: 16}"
                "model.tabular={name: mlp, dim: 16, hidden_dim: 32}" "model.fusion.dim=16" "model.fusion.heads=2")
    nproc=2
    launcher_note="2 CPU processes (gloo): dry run"
elif [ "$gpus" -ge 2 ]; then
    nproc=2
    launcher_note="2 GPUs (NCCL)"
else
    nproc=1
    launcher_note="only 1 GPU: one-process torchrun sanity run, no multi-GPU scaling measured"
fi
overrides+=("${extra_overrides[@]}")

export MMDX_CACHE_DIR="$work/cache" PYTHONUNBUFFERED=1
run_single="$work/run-single"
run_torchrun="$work/run-torchrun"
rm -rf "$run_single" "$run_torchrun"

say "one process: configs/ct3d_gpu.yaml, $steps steps"
"$py" "$probe" "$repo/configs/ct3d_gpu.yaml" "$cohort" "$run_single" "${overrides[@]}" | tee "$work/single.log"

say "torchrun --nproc_per_node=$nproc ($launcher_note)"
"$py" -m torch.distributed.run --standalone --nproc_per_node="$nproc" "$probe" \
    "$repo/configs/ct3d_gpu.yaml" "$cohort" "$run_torchrun" "${overrides[@]}" | tee "$work/torchrun.log"

# ---- summary ---------------------------------------------------------------------------------------------
say "summary ($mode)"
"$py" - "$work/single.log" "$work/torchrun.log" "$launcher_note" <<'EOF'
import json, sys
print(f"| run | processes | samples/s (all processes) | data wait | peak GPU MiB per process | epochs | params |")
print("|---|---|---|---|---|---|---|")
for name, path in (("single process", sys.argv[1]), ("torchrun", sys.argv[2])):
    lines = [json.loads(l.split(" ", 1)[1]) for l in open(path) if l.startswith("GPU_CHECK ")]
    if not lines:
        raise SystemExit(f"{name}: no result line in {path}")
    main = next(l for l in lines if l["rank"] == 0)
    peaks = ", ".join(f"{l['peak_gpu_mib']:.0f}" for l in sorted(lines, key=lambda l: l["rank"]) if "peak_gpu_mib" in l) or "n/a (CPU)"
    print(f"| {name} | {main['world_size']} | {main['samples_per_second']:.1f} | {100 * main['data_wait_share']:.1f}% "
          f"| {peaks} | {main['epochs']} | {main['parameters']:,} |")
print(f"\ntorchrun: {sys.argv[3]}")
EOF

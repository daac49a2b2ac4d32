#!/usr/bin/env bash
# The one prepared GPU check, for a lent GPU machine (device tool) or any CUDA box:
# TensorRT builds (fp32/fp16/int8), parity against torch, and latency of torch eager,
# ONNX Runtime CUDA / TensorRT EP and native TensorRT, written as JSON.
#
# The device machine cannot download: packages it lacks (tensorrt, onnxruntime-gpu,
# pyzmq, msgspec, mcap, cbor2, onnxslim) travel as wheels in .whl/ (see the device
# tool's README), installed here into /tmp/site.
#   run: bash benchmarks/gpu_check.sh [OUT_DIR]      (OUT_DIR defaults to $OUT or .)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-.}}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
# The repository root is the package `edgerun`: expose it under that name.
mkdir -p /tmp/edgerun-pkg && ln -sfn "$PWD" /tmp/edgerun-pkg/edgerun
export PYTHONPATH="/tmp/edgerun-pkg:${PYTHONPATH:-}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt" || true
python3 -m edgerun.benchmarks.gpu_check --json "$out/gpu_check.json" 2>&1 | tee "$out/gpu_check.log"
# The per-model benchmarks (torch vs ONNX Runtime, which takes CUDA / TensorRT EP when present):
# the DINO-WM plan at the paper's budgets (goal: one 300x30 plan of the paper model < 1 s), INT
# streaming (goal >= 15 frames/s) and TracksTo4D per window. One failing does not stop the others.
for bench in planning segmentation reconstruction; do
  python3 -m edgerun.cli bench "$bench" --quick --json "$out/bench-$bench.json" 2>&1 | tee "$out/bench-$bench.log" \
    || echo "bench $bench failed (see $out/bench-$bench.log)"
done

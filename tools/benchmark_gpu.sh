#!/usr/bin/env bash
# LaVIN-7B-shaped training step (random bf16 frozen weights, batch 4, ScienceQA-like lengths;
# the reference modes and mma side by side) and decode throughput on one CUDA GPU, in a few minutes.
#   bash tools/benchmark_gpu.sh [RESULTS.json]
set -euo pipefail
cd "$(dirname "$0")/.."
gpu=$(python3 -c "import torch; n = torch.cuda.get_device_name(); print(next((g for g in ('H200', 'H100', 'A100') if g in n), 'H100'))")
out="${1:-gpu_benchmark.json}"
HF_HUB_OFFLINE=1 python3 tools/benchmark.py --preset gpu-7b --gpu "$gpu" --json "$out"
HF_HUB_OFFLINE=1 python3 tools/benchmark.py --preset gpu-7b-graphs --gpu "$gpu" --json "${out%.json}_graphs.json"

#!/usr/bin/env bash
# Every GPU check of the project in one run, for a session whose task is lent a device machine
# (CI never has a GPU; these checks skip or cannot run there). About 6-8 minutes on one H200.
#
# Prepare here, once (the device image has torch, numpy, pandas, scipy, pyyaml, scikit-learn,
# matplotlib and pytest, but not mlperf-logging):
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux2014_x86_64 -d .whl mlperf-logging==4.1.68
# Then one device call: command `bash bench/gpu_session.sh`, carry [".whl"], timeout_s 560.
# What comes back: $OUT/summary.txt (one line per check with its exit code and last lines) and
# $OUT/gpu-results.tar.gz (every log and result.json). Without $OUT it writes to ./gpu-out.
set -uo pipefail
OUT=${OUT:-gpu-out}
WORK=$(mktemp -d /tmp/mlbench-gpu.XXXX)
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 GX_ANALYTICS_ENABLED=False
export MLBENCH_DATA_ROOT="$WORK/data"

check() {  # check NAME SECONDS COMMAND...: run one check, log it, never stop the others
    local name=$1 limit=$2
    shift 2
    local started=$SECONDS
    timeout "$limit" "$@" > "$WORK/$name.log" 2>&1
    local rc=$?
    { echo "== $name: exit $rc in $((SECONDS - started)) s"; tail -n 4 "$WORK/$name.log"; } | tee -a "$OUT/summary.txt"
}

{ nvidia-smi -L 2>&1; python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda,
  'device', torch.cuda.get_device_name() if torch.cuda.is_available() else None)"; } > "$OUT/summary.txt" 2>&1
# The GPU tests: nccl training smoke, bf16 + channels_last, task 0 on nccl, AWD-LSTM on cuDNN.
check pytest_gpu 240 python3 -m pytest -q -p no:cacheprovider -m gpu tests/gpu tests/unit/models/test_awd_lstm.py
# Issue 2's GPU sweep of the step overhead (paired ratio, goal >= 0.97).
check step_overhead_fp32_b128 120 python3 bench/step_overhead.py --device cuda --batch-size 128
check step_overhead_bf16_cl_b512 120 python3 bench/step_overhead.py --device cuda --batch-size 512 \
    --precision bf16 --channels-last
# Task 0 on GPU tensors: nccl on the one GPU (latency; one rank moves no data), gloo with 2 ranks on it.
check allreduce_nccl_w1 90 python3 -m tasks.cli allreduce --preset light --world-size 1 --backend nccl \
    --device cuda --output "$WORK/allreduce-nccl-w1"
check allreduce_gloo_cuda_w2 90 python3 -m tasks.cli allreduce --preset demo --world-size 2 --backend gloo \
    --device cuda --output "$WORK/allreduce-gloo-cuda-w2"
# Task 3a's demo on cuDNN, and task 1a's demo, each on one GPU.
check lm_demo_cuda 120 python3 -m tasks.cli train --task wikitext2-lstm --preset demo --world-size 1 \
    --backend nccl --output "$WORK/lm-demo" --data-root "$WORK/data"
check resnet_demo_cuda 120 python3 -m tasks.cli train --task cifar10-resnet20 --preset demo --world-size 1 \
    --backend nccl --output "$WORK/resnet-demo" --data-root "$WORK/data"

tar -czf "$OUT/gpu-results.tar.gz" -C "$WORK" --exclude=data --exclude=checkpoints .
echo "summary: $OUT/summary.txt; logs and bundles: $OUT/gpu-results.tar.gz"

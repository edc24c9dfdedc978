#!/bin/bash
# The GPU measurements of BENCHMARKS.md ("H200 session"), as run on nvidia-h200-x2 (two H200s, 32 cores).
#   bash benchmarks/h200_session.sh prepare OUT   # manifests (CPU), engine bench, aoti ready check, 8 h jobs
#   bash benchmarks/h200_session.sh jobs OUT      # 40 h on 1 and 2 GPUs, 2 h BigVGAN fresh and warm
#   bash benchmarks/h200_session.sh aoti OUT      # aoti against inductor (speed, SNR), ready times, 8 h / 2 h jobs
#   bash benchmarks/h200_session.sh profile OUT   # gsv_v4 kernel classes, fp16 and bf16, default and fused_wide
#   bash benchmarks/h200_session.sh power OUT     # issue 18's gsv_v4 bench with SM clock and power sampled
# Needs ray, hydra-core and soundfile importable (PYTHONPATH) and the repository root as the working directory.
set -u
case ${1:-} in
prepare | jobs | aoti | profile | power) ;;
*)
  echo "usage: bash benchmarks/h200_session.sh prepare|jobs|aoti|profile|power OUT (the steps: this file's head)" >&2
  exit 1
  ;;
esac
OUT=${2:-out}
mkdir -p "$OUT"
export PYTHONPATH=${PYTHONPATH:-}:$PWD BATCHVOC_CACHE=${BATCHVOC_CACHE:-/tmp/bvc} PYTHONUNBUFFERED=1
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
V4="job=v4_fp16 model.checkpoint=random"
V3="job=v3_fp16 model.checkpoint=random"

manifests() {  # 8 h and 40 h of gsv_v4 mels, 2 h of BigVGAN mels: one process per part, unique ids
  for k in 0 1 2 3 4 5 6 7; do
    python3 jobs/make_manifest.py /tmp/m8/p$k --hours 1 --files 1 --first-id $((k * 100000)) &
    python3 jobs/make_manifest.py /tmp/m40/p$k --hours 5 --files 1 --first-id $(((k + 10) * 100000)) &
  done
  for k in 0 1; do
    python3 jobs/make_manifest.py /tmp/m3/p$k --preset bigvgan_v2_24khz_100band_256x --hours 1 --files 1 \
      --first-id $((k * 100000)) &
  done
  wait
}

case ${1:-} in
prepare)
  manifests > "$OUT/manifests.log" 2>&1 &
  made=$!
  CUDA_VISIBLE_DEVICES=0 python3 -m batchvoc.bench preset=gsv_v4 backends=[inductor] precisions=[fp16] batch=[16] \
    utterances=128 out="$OUT/bench_gsv.json" > "$OUT/bench_gsv.log" 2>&1
  tail -4 "$OUT/bench_gsv.log"
  CUDA_VISIBLE_DEVICES=0 timeout 120 python3 benchmarks/ready.py --presets gsv_v4 --backends aoti --repeats 2 \
    --cache-dir /tmp/bvc-aoti --out "$OUT/ready_aoti.json" > "$OUT/ready_aoti.log" 2>&1
  tail -3 "$OUT/ready_aoti.log"
  wait $made
  tail -3 "$OUT/manifests.log"
  python3 benchmarks/jobs.py --out "$OUT/jobs_8h.json" \
    "v4 8h 1 GPU fresh cache|0|$V4 input.manifest=/tmp/m8/*/*.parquet output.dir=/tmp/o8a engine.cache_dir=/tmp/bvc-fresh" \
    "v4 8h 1 GPU warm cache|0|$V4 input.manifest=/tmp/m8/*/*.parquet output.dir=/tmp/o8b" \
    "v4 8h 2 GPUs warm cache|0,1|$V4 input.manifest=/tmp/m8/*/*.parquet output.dir=/tmp/o8c" 2>&1 | tail -5
  ;;
jobs)
  python3 benchmarks/jobs.py --out "$OUT/jobs_40h_v3.json" \
    "v4 40h 1 GPU warm cache|0|$V4 input.manifest=/tmp/m40/*/*.parquet output.dir=/tmp/o40a" \
    "v4 40h 2 GPUs warm cache|0,1|$V4 input.manifest=/tmp/m40/*/*.parquet output.dir=/tmp/o40b" \
    "v3 2h 1 GPU fresh cache|0|$V3 input.manifest=/tmp/m3/*/*.parquet output.dir=/tmp/o3a" \
    "v3 2h 1 GPU warm cache|0|$V3 input.manifest=/tmp/m3/*/*.parquet output.dir=/tmp/o3b" 2>&1 | tail -6
  ;;
aoti)  # issue 14's open checks: aoti >= 0.98x inductor, same audio, ready <= 3 s, jobs on loaded packages
  CUDA_VISIBLE_DEVICES=0 python3 -m batchvoc.bench preset=gsv_v4 backends=[inductor,aoti] precisions=[fp16] \
    batch=[16] utterances=128 out="$OUT/bench_aoti_gsv.json" > "$OUT/bench_aoti_gsv.log" 2>&1
  tail -4 "$OUT/bench_aoti_gsv.log"
  CUDA_VISIBLE_DEVICES=0 python3 -m batchvoc.bench preset=bigvgan_v2_24khz_100band_256x frames=938 \
    backends=[inductor,aoti] precisions=[fp16] batch=[16] utterances=32 out="$OUT/bench_aoti_big.json" \
    > "$OUT/bench_aoti_big.log" 2>&1
  tail -4 "$OUT/bench_aoti_big.log"
  CUDA_VISIBLE_DEVICES=0 python3 benchmarks/ready.py --presets gsv_v4 bigvgan_v2_24khz_100band_256x \
    --backends aoti --precision fp16 --repeats 2 --cache-dir "$BATCHVOC_CACHE" --out "$OUT/ready_aoti.json" \
    > "$OUT/ready_aoti.log" 2>&1
  tail -5 "$OUT/ready_aoti.log"
  [ -d /tmp/m8 ] && [ -d /tmp/m3 ] || manifests > "$OUT/manifests.log" 2>&1
  python3 benchmarks/jobs.py --out "$OUT/jobs_aoti.json" \
    "v4 8h 1 GPU aoti|0|$V4 engine.backend=aoti input.manifest=/tmp/m8/*/*.parquet output.dir=/tmp/o8x" \
    "v3 2h 1 GPU aoti|0|$V3 engine.backend=aoti input.manifest=/tmp/m3/*/*.parquet output.dir=/tmp/o3x" 2>&1 | tail -3
  ;;
profile)  # issue 18's next step: where fp16 loses to bf16 (4,346x against 4,520x, session 25), and fused_wide's loss
  for precision in fp16 bf16; do
    CUDA_VISIBLE_DEVICES=0 timeout 300 python3 benchmarks/profile_engines.py --preset gsv_v4 --precision $precision \
      --batch 16 --engines inductor "inductor:resblocks=fused_wide" --out "$OUT/profile_$precision.json" \
      > "$OUT/profile_$precision.log" 2>&1
    tail -30 "$OUT/profile_$precision.log"
  done
  ;;
power)  # session 26: the compiled engines run at the 700 W cap; each bench line's clocks (benchmarks/gpu_clocks.py)
  CUDA_VISIBLE_DEVICES=0 python3 benchmarks/gpu_clocks.py "$OUT/clocks.csv" -- python3 -m batchvoc.bench preset=gsv_v4 \
    batch=[16] utterances=256 precisions=[fp16,bf16] backends=[inductor] out="$OUT/bench_gsv.json" > "$OUT/power.log" 2>&1
  code=$?
  tail -12 "$OUT/power.log"
  exit $code
  ;;
esac

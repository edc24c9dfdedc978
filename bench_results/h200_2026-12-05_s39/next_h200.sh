# For the next session with an H200 (not run): issue 18's checks after 676985c (aoti weights kept apart).
#   bash bench_results/h200_2026-12-05_s38/next_h200.sh a   # the inductor commands, gsv_v4 and BigVGAN (~6 min)
#   bash bench_results/h200_2026-12-05_s38/next_h200.sh b   # aoti against inductor, gsv_v4 fp16 (~5 min)
#   bash bench_results/h200_2026-12-05_s38/next_h200.sh d   # aoti against inductor, BigVGAN fp16 (~7 min: builds)
#   bash bench_results/h200_2026-12-05_s38/next_h200.sh c   # batch 1 (10 s), gsv_v4 fp16, inductor and aoti (~5 min)
# One `run` each (carry .whl/h), back to back on one warm machine: a fresh start costs ~3 min of device time.
set -u
START=$(date +%s)
[ -d /tmp/site ] || { bash .whl/h/p1/stage.sh >/dev/null && bash .whl/h/p1/install.sh >/dev/null 2>&1; }
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 BATCHVOC_CACHE=/tmp/bvc
nvidia-smi --query-gpu=name,clocks.sm,power.draw,temperature.gpu --format=csv,noheader
bench() {  # name, then the bench's overrides
  local name=$1; shift
  timeout ${LIMIT:-290} python3 -m batchvoc.bench "$@" out=$OUT/$name.json > $OUT/$name.log 2>&1
  echo "$name rc=$? at $(( $(date +%s) - START )) s"
  grep -e "real time" -e "rror" $OUT/$name.log | cut -c1-200 | tail -6
}
case "${1:-a}" in
  a) bench gsv_v4 preset=gsv_v4 batch=[16] utterances=256 precisions=[fp16,bf16] backends=[inductor]
     bench bigvgan preset=bigvgan_v2_24khz_100band_256x frames=938 batch=[16] utterances=32 precisions=[fp16,bf16] \
       backends=[inductor] ;;
  b) bench gsv_v4_aoti preset=gsv_v4 batch=[16] utterances=256 precisions=[fp16] backends=[inductor,aoti] ;;
  d) LIMIT=480 bench bigvgan_aoti preset=bigvgan_v2_24khz_100band_256x frames=938 batch=[16] utterances=32 \
       precisions=[fp16] backends=[inductor,aoti] ;;
  c) bench gsv_v4_b1 preset=gsv_v4 batch=[1] utterances=32 precisions=[fp16] backends=[inductor,aoti] ;;
esac
nvidia-smi --query-gpu=clocks.sm,power.draw,temperature.gpu --format=csv,noheader

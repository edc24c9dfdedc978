# For session 35 (not yet run): issue 18's checks as its text gives them, on a fresh nvidia-h200.
#   bash bench_results/h200_2026-12-04_s34/issue_checks.sh a   # gsv_v4 and BigVGAN, fp16 and bf16, inductor (~6 min)
#   bash bench_results/h200_2026-12-04_s34/issue_checks.sh b   # aoti against inductor, gsv_v4 fp16; batch 1 (~6 min)
set -u
[ -d /tmp/site ] || { bash .whl/h/p1/stage.sh >/dev/null && bash .whl/h/p1/install.sh >/dev/null 2>&1; }
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 BATCHVOC_CACHE=/tmp/bvc
nvidia-smi --query-gpu=name,clocks.sm,power.draw,temperature.gpu --format=csv,noheader
bench() {  # name, then the bench's overrides
  local name=$1; shift
  timeout 280 python3 -m batchvoc.bench "$@" out=$OUT/$name.json > $OUT/$name.log 2>&1; echo "$name rc=$?"
  grep -v -e Warning -e "random weights" $OUT/$name.log | grep -A9 "^mode" | grep -v "^wrote"
}
if [ "${1:-a}" = a ]; then
  bench gsv_v4 preset=gsv_v4 batch=[16] utterances=256 precisions=[fp16,bf16] backends=[inductor]
  bench bigvgan preset=bigvgan_v2_24khz_100band_256x frames=938 batch=[16] utterances=32 precisions=[fp16,bf16] \
    backends=[inductor]
else
  bench gsv_v4_aoti preset=gsv_v4 batch=[16] utterances=256 precisions=[fp16] backends=[inductor,aoti]
  bench gsv_v4_b1 preset=gsv_v4 batch=[1] utterances=32 precisions=[fp16] backends=[inductor,aoti]
fi
nvidia-smi --query-gpu=clocks.sm,power.draw,temperature.gpu --format=csv,noheader

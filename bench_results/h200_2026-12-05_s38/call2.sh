# Session 38, call 2: issue 18's aoti check after the weights-apart change (gsv_v4 and BigVGAN fp16, inductor and
# aoti in one bench, as the commands with backends=[inductor,aoti]); batch 1 if time is left.
set -u
START=$(date +%s)
[ -d /tmp/site ] || { bash .whl/h/p1/stage.sh >/dev/null && bash .whl/h/p1/install.sh >/dev/null 2>&1; }
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 BATCHVOC_CACHE=/tmp/bvc
nvidia-smi --query-gpu=name,clocks.sm,power.draw,temperature.gpu --format=csv,noheader
git log --oneline -1 2>/dev/null
bench() {  # name, then the bench's overrides
  local name=$1; shift
  timeout 260 python3 -m batchvoc.bench "$@" out=$OUT/$name.json > $OUT/$name.log 2>&1; echo "$name rc=$? at $(( $(date +%s) - START )) s"
  grep -e "real time" -e "rror" -e "ready:" $OUT/$name.log | cut -c1-200 | tail -8
}
bench gsv_v4_aoti preset=gsv_v4 batch=[16] utterances=256 precisions=[fp16] backends=[inductor,aoti]
[ $(( $(date +%s) - START )) -lt 250 ] && bench gsv_v4_b1 preset=gsv_v4 batch=[1] utterances=32 precisions=[fp16] backends=[inductor,aoti]
nvidia-smi --query-gpu=clocks.sm,power.draw,temperature.gpu --format=csv,noheader

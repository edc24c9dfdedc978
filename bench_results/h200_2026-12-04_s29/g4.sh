set -u
bash .whl/h/p1/stage.sh >/dev/null && bash .whl/h/p1/install.sh >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD BATCHVOC_CACHE=/tmp/bvc PYTHONUNBUFFERED=1
timeout 300 python3 -m batchvoc.bench preset=bigvgan_v2_24khz_100band_256x frames=938 batch=[16] utterances=16 warmup=1 precisions=[fp16] backends=[inductor,aoti] out=$OUT/va.json > $OUT/va.log 2>&1
grep -v Warning $OUT/va.log | grep -i "x real time\|ready\|failed\|error" | cut -c1-220 | tail -8

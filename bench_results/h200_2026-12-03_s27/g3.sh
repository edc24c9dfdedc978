set -u
bash .whl/h/p1/stage.sh >/dev/null && bash .whl/h/p1/install.sh >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD BATCHVOC_CACHE=/tmp/bvc PYTHONUNBUFFERED=1
timeout 280 python3 -m batchvoc.bench preset=gsv_v4 batch=[1] utterances=32 precisions=[fp16] 'backends=[inductor,"inductor:mode=reduce-overhead",aoti]' out=$OUT/b1_gsv.json > $OUT/b1_gsv.log 2>&1
grep -A6 "^mode " $OUT/b1_gsv.log
timeout 260 python3 -m batchvoc.bench preset=bigvgan_v2_24khz_100band_256x frames=938 batch=[1] utterances=16 precisions=[fp16] 'backends=[inductor,"inductor:mode=reduce-overhead"]' out=$OUT/b1_big.json > $OUT/b1_big.log 2>&1
grep -A6 "^mode " $OUT/b1_big.log
grep -h "x real time\|ERROR\|Error" $OUT/b1_*.log | tail -12

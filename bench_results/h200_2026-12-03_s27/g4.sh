set -u
bash .whl/h/p1/stage.sh >/dev/null && bash .whl/h/p1/install.sh >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD BATCHVOC_CACHE=/tmp/bvc PYTHONUNBUFFERED=1
timeout 320 python3 -m batchvoc.bench preset=gsv_v4 batch=[1,4,8] utterances=32 precisions=[fp16] 'backends=[inductor,"inductor:mode=default"]' out=$OUT/b148_gsv.json > $OUT/b148_gsv.log 2>&1
grep -A12 "^mode " $OUT/b148_gsv.log; grep -h "engine ready: backend=inductor" $OUT/b148_gsv.log | cut -c1-150
timeout 100 python3 -m pytest -q -p no:cacheprovider tests/engines/test_inductor.py -k gpu > $OUT/test_gpu.log 2>&1; tail -3 $OUT/test_gpu.log

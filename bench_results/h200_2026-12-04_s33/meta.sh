# Session 33, call 4: profile both engines again, then copy every compiled lrelu_conv_tma kernel's Triton metadata
# (specialisation, options, shared memory) and its IRs (TTIR, TTGIR, LLIR, PTX) in one archive, to compare aoti's compile of it with inductor's.
set -u
[ -d /tmp/site ] || { bash .whl/h/p1/stage.sh >/dev/null && bash .whl/h/p1/install.sh >/dev/null 2>&1; }
export PYTHONPATH=/tmp/site:$PWD BATCHVOC_CACHE=/tmp/bvc PYTHONUNBUFFERED=1
export TRITON_CACHE_DIR=/tmp/tcache
timeout 420 python3 bench_results/h200_2026-12-04_s33/kernel_profile.py $OUT/p gsv_v4 16 8 > $OUT/p.log 2>&1; echo rc=$?
grep -v -e Warning -e random $OUT/p.log | sed -n '/span_ms/,/biggest/p'
mkdir -p /tmp/meta
n=0
for f in $(grep -rl --include=*.json --exclude-dir=site "\"lrelu_conv_tma\"" /tmp $HOME/.triton 2>/dev/null); do
  n=$((n+1)); d=$(dirname $f); mkdir -p /tmp/meta/$n; cp $d/lrelu_conv_tma.* /tmp/meta/$n/; echo "$n $f" >> /tmp/meta/where.txt
done
rm -f /tmp/meta/*/*.cubin; tar czf $OUT/meta.tgz -C /tmp meta; echo "$n kernels"; ls -la $OUT/meta.tgz

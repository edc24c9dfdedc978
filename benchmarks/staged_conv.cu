// A fused resblock conv (engines/fused_resblock.py's lrelu_conv) whose taps read shifted rows of one staged tile.
//
// lrelu_conv feeds each tap's [BLOCK_M, C] x [C, C] product with rows loaded for that tap: at 16-64 channels a
// product is a few tensor-core steps, and every tap moves its rows through the SM's memory again (BENCHMARKS.md,
// H200 session 18). Here a persistent block stages its tile's rows plus the taps' halo in shared memory once
// (cp.async, zeros outside [0, T), the leaky ReLU applied once in place), keeps all taps' weights there, and feeds
// each tap's mma.sync from the rows that tap reads: ldmatrix takes one row address per lane, so a tap's operand
// is the staged tile shifted by tap * dilation rows. Triton cannot express this (Gluon's shared-memory views
// start at multiples of their size), hence CUDA C++, compiled at run time with NVRTC.
//
// out[b, t, o] = inside(t) * act_out(bias[o] + sum_{k, i} w[k, o, i] * act_in(x[b, t + k*dil - pad, i]) (+ res))
// with channels-last rows (channel stride 1), w as [KSIZE][C out][C in] (each tap's weights transposed: a B
// fragment is then a plain ldmatrix of rows of output channels), fp32 accumulation, fp16 or bf16 storage.
// No CUDA headers: conversions and matrix instructions are inline PTX (sm_80+; mma.sync m16n8k16).

typedef unsigned short u16;
typedef unsigned int u32;
typedef long long i64;

__device__ __forceinline__ u32 smem_u32(const void* p) {
  u32 a;
  asm volatile("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(a) : "l"(p));
  return a;
}

__device__ __forceinline__ void cp_async16(u32 dst, const void* src, bool ok) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(dst), "l"(src), "r"(ok ? 16 : 0));
}

__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;"); }

template <int N>
__device__ __forceinline__ void cp_wait() { asm volatile("cp.async.wait_group %0;" ::"n"(N)); }

__device__ __forceinline__ void ldsm4(u32 addr, u32* r) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
}

// c[0..3] += a (16 x 16, row-major fragment) . b (16 x 8, column fragment), fp32 accumulation; T: the inputs' type
#define MMA_M16N8K16(T, c, a, b)                                                                                   \
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32." T "." T ".f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "   \
               "{%0,%1,%2,%3};"                                                                                  \
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])                                                  \
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]))

template <bool BF16>
struct Num;

template <>
struct Num<false> {  // fp16
  static __device__ __forceinline__ void unpack(u32 v, float& lo, float& hi) {
    asm("{ .reg .f16 l, h; mov.b32 {l, h}, %2; cvt.f32.f16 %0, l; cvt.f32.f16 %1, h; }"
        : "=f"(lo), "=f"(hi) : "r"(v));
  }
  static __device__ __forceinline__ u32 pack(float lo, float hi) {
    u32 r;
    asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
  }
  static __device__ __forceinline__ void mma(float* c, const u32* a, const u32* b) { MMA_M16N8K16("f16", c, a, b); }
};

template <>
struct Num<true> {  // bf16
  static __device__ __forceinline__ void unpack(u32 v, float& lo, float& hi) {
    lo = __uint_as_float(v << 16);
    hi = __uint_as_float(v & 0xffff0000u);
  }
  static __device__ __forceinline__ u32 pack(float lo, float hi) {
    u32 r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
  }
  static __device__ __forceinline__ void mma(float* c, const u32* a, const u32* b) { MMA_M16N8K16("bf16", c, a, b); }
};

__device__ __forceinline__ float leaky(float v, float slope) { return v > 0.f ? v : v * slope; }

// One launch: gridDim.x persistent blocks of WARPS_M * WARPS_N warps walk the tiles (BM time steps of one batch row,
// all C output channels), each warp a [BM / WARPS_M, C / WARPS_N] part of the tile. A ring of NBUF (>= 2) buffers
// keeps the next NBUF - 1 tiles' rows (and residual rows) in flight while one computes. A tile's output goes through
// shared memory (its staged rows' space, read by then; its activation through the residual's) so that global
// stores are whole 16-byte pieces of rows. Shared memory (bytes, the launcher's):
// (KSIZE * C + NBUF * (BM + (KSIZE - 1) * dil) + (HAS_RES || STORE_ACT ? NBUF * BM : 0)) * (C + 8) * 2.
template <int C, int KSIZE, int BM, int WARPS_M, int WARPS_N, int NBUF, bool BF16, bool ACT_IN, bool HAS_RES,
          bool ACT_OUT, bool STORE_ACT, bool HAS_SPAN>
__global__ void __launch_bounds__(32 * WARPS_M * WARPS_N)
    staged_conv(const u16* __restrict__ x, const u16* __restrict__ w, const u16* __restrict__ bias,
                const u16* __restrict__ res, u16* __restrict__ out, u16* __restrict__ act,
                const i64* __restrict__ valid, int T, int dil, int pad, double slope_d, int rate, int tiles_per_row,
                int n_tiles, i64 sxb, i64 sxt, i64 srb, i64 srt, i64 sob, i64 sot, i64 svb, i64 svk, i64 svf) {
  typedef Num<BF16> N;
  constexpr int THREADS = 32 * WARPS_M * WARPS_N;
  constexpr int LD = C + 8;  // a staged row's stride in elements: 16 bytes more, so ldmatrix's 8 rows hit 8 banks
  constexpr int WM = BM / WARPS_M, WN = C / WARPS_N;
  constexpr int MT = WM / 16, NT = WN / 8, KT = C / 16, CHUNKS = C / 8;  // CHUNKS: 16-byte pieces of a row
  static_assert(WM % 16 == 0 && WN % 16 == 0 && C % 16 == 0 && NBUF >= 2, "tile shape");
  const float slope = (float)slope_d;
  const int rows = BM + (KSIZE - 1) * dil;  // a tile's staged rows: its steps and the taps' reach

  extern __shared__ __align__(16) unsigned char smem[];
  u16* ws = reinterpret_cast<u16*>(smem);
  u16* xs = ws + KSIZE * C * LD;    // ring of staged rows
  u16* rs = xs + NBUF * rows * LD;  // ring of residual rows in, activated output out (HAS_RES, STORE_ACT)
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = warp % WARPS_M, wn = warp / WARPS_M;

  for (int i = tid; i < KSIZE * C * CHUNKS; i += THREADS) {  // every tap's weights, once per block
    const int row = i / CHUNKS, part = i % CHUNKS;
    cp_async16(smem_u32(ws + row * LD + part * 8), w + (i64)row * C + part * 8, true);
  }
  cp_commit();

  auto stage = [&](int tile, int s) {  // rows t0 - pad .. t0 - pad + rows (zeros outside [0, T)), residual rows
    const int b = tile / tiles_per_row, t0 = (tile % tiles_per_row) * BM;
    u16* buf = xs + s * rows * LD;
    for (int i = tid; i < rows * CHUNKS; i += THREADS) {
      const int r = i / CHUNKS, part = i % CHUNKS, t = t0 - pad + r;
      const bool ok = t >= 0 && t < T;
      cp_async16(smem_u32(buf + r * LD + part * 8), x + b * sxb + (i64)(ok ? t : 0) * sxt + part * 8, ok);
    }
    if (HAS_RES) {
      u16* side = rs + s * BM * LD;
      for (int i = tid; i < BM * CHUNKS; i += THREADS) {
        const int r = i / CHUNKS, part = i % CHUNKS, t = t0 + r;
        const bool ok = t < T;
        cp_async16(smem_u32(side + r * LD + part * 8), res + b * srb + (i64)(ok ? t : 0) * srt + part * 8, ok);
      }
    }
  };

  for (int p = 0; p < NBUF - 1; ++p) {  // the ring's first tiles
    const int ahead = blockIdx.x + p * gridDim.x;
    if (ahead < n_tiles) stage(ahead, p);
    cp_commit();  // empty where there is no tile: wait_group counts groups
  }
  int tile = blockIdx.x;
  for (int it = 0; tile < n_tiles; ++it, tile += gridDim.x) {
    const int s = it % NBUF;
    u16* cur = xs + s * rows * LD;
    u16* side = rs + s * BM * LD;
    const int ahead = tile + (NBUF - 1) * gridDim.x;
    if (ahead < n_tiles) stage(ahead, (it + NBUF - 1) % NBUF);  // the buffer the previous tile used
    cp_commit();
    cp_wait<NBUF - 1>();
    __syncthreads();
    if (ACT_IN) {  // the leaky ReLU once per staged element, rounded to the storage type as the reference rounds it
      for (int i = tid; i < rows * CHUNKS; i += THREADS) {
        uint4* p = reinterpret_cast<uint4*>(cur + (i / CHUNKS) * LD + (i % CHUNKS) * 8);
        uint4 v = *p;
        u32* e = reinterpret_cast<u32*>(&v);
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          float lo, hi;
          N::unpack(e[j], lo, hi);
          e[j] = N::pack(leaky(lo, slope), leaky(hi, slope));
        }
        *p = v;
      }
      __syncthreads();
    }

    float acc[MT][NT][4];
#pragma unroll
    for (int m = 0; m < MT; ++m)
#pragma unroll
      for (int n = 0; n < NT; ++n)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[m][n][e] = 0.f;

    // ldmatrix.x4 lane roles: A (16 rows x 16 k): lane -> row lane & 15, k half lane >> 4; B (two n8 tiles x 16 k):
    // lane -> output channel (lane >> 4) * 8 + (lane & 7), k half (lane >> 3) & 1
    const u32 a_base = smem_u32(cur + (wm * WM + (lane & 15)) * LD + (lane >> 4) * 8);
    const u32 b_base = smem_u32(ws + (wn * WN + (lane >> 4) * 8 + (lane & 7)) * LD + ((lane >> 3) & 1) * 8);
#pragma unroll 1
    for (int tap = 0; tap < KSIZE; ++tap) {
      const u32 a_tap = a_base + tap * dil * LD * 2;
#pragma unroll
      for (int kk = 0; kk < KT; ++kk) {
        u32 bf[NT][2];
#pragma unroll
        for (int n = 0; n < NT; n += 2) {
          u32 r[4];
          ldsm4(b_base + ((tap * C + n * 8) * LD + kk * 16) * 2, r);
          bf[n][0] = r[0], bf[n][1] = r[1], bf[n + 1][0] = r[2], bf[n + 1][1] = r[3];
        }
#pragma unroll
        for (int m = 0; m < MT; ++m) {
          u32 af[4];
          ldsm4(a_tap + (m * 16 * LD + kk * 16) * 2, af);
#pragma unroll
          for (int n = 0; n < NT; ++n) N::mma(acc[m][n], af, bf[n]);
        }
      }
    }

    __syncthreads();  // every warp is done with cur's rows: the output tile goes there

    // epilogue in registers: a lane holds rows g, g + 8 and channels 2 q, 2 q + 1 of each 16 x 8 part
    const int b = tile / tiles_per_row, t0 = (tile % tiles_per_row) * BM;
    const int g = lane >> 2, q = lane & 3;
#pragma unroll
    for (int n = 0; n < NT; ++n) {
      const int o = wn * WN + n * 8 + 2 * q;
      float b0, b1;
      N::unpack(*reinterpret_cast<const u32*>(bias + o), b0, b1);
#pragma unroll
      for (int m = 0; m < MT; ++m) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int r = wm * WM + m * 16 + g + 8 * h;
          float v0 = acc[m][n][2 * h] + b0, v1 = acc[m][n][2 * h + 1] + b1;
          if (HAS_RES) {
            float r0, r1;
            N::unpack(*reinterpret_cast<const u32*>(side + r * LD + o), r0, r1);
            v0 += r0, v1 += r1;
          }
          if (ACT_OUT) v0 = leaky(v0, slope), v1 = leaky(v1, slope);
          const u32 y = N::pack(v0, v1);
          *reinterpret_cast<u32*>(cur + r * LD + o) = y;
          if (STORE_ACT) {  // where this lane read the residual, if any
            float y0, y1;
            N::unpack(y, y0, y1);
            *reinterpret_cast<u32*>(side + r * LD + o) = N::pack(leaky(y0, slope), leaky(y1, slope));
          }
        }
      }
    }
    __syncthreads();
    for (int i = tid; i < BM * CHUNKS; i += THREADS) {  // whole 16-byte pieces of rows, zeroed outside the span
      const int r = i / CHUNKS, part = i % CHUNKS, t = t0 + r;
      if (t >= T) continue;
      bool inside = true;
      if (HAS_SPAN) {
        const i64* frame = valid + b * svb + (i64)(t / rate) * svf;
        inside = t >= frame[0] * rate && t < frame[svk] * rate;
      }
      const i64 at = b * sob + (i64)t * sot + part * 8;
      const uint4 zero = {0u, 0u, 0u, 0u};
      *reinterpret_cast<uint4*>(out + at) = inside ? *reinterpret_cast<const uint4*>(cur + r * LD + part * 8) : zero;
      if (STORE_ACT)
        *reinterpret_cast<uint4*>(act + at) = inside ? *reinterpret_cast<const uint4*>(side + r * LD + part * 8) : zero;
    }
    __syncthreads();  // the next tile stages into the buffers this one used
  }
}

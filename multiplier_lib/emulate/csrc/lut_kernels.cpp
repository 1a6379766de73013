// LUT-based integer convolution and linear kernels for hwcost's ``cpu`` emulation backend.
//
// Contract: see multiplier_lib/emulate/backends/reference.py.  Every kernel computes
//     out[j, l] = sum_k table(j, k)[idx(k, l)]
// where a "table" is one 2**a-entry (or 2**b-entry) row of the LUT picked by the other
// operand's code.  For convolutions the tables are the LUT *columns* (one per weight code,
// stored contiguously by transposing the LUT once) indexed by activation codes; for linear
// layers whichever operand has more rows becomes the vectorised index side.
//
// Why this shape: an approximate multiplier has no algebraic structure to exploit, so the
// cost is table lookups, and the lookup rate is the whole game.  AVX2 gathers fetch 8 lookups
// per instruction with the accumulators of a register tile (4 tables x 16 positions) held in
// registers, so per k step the only other memory traffic is 16 index bytes and 4 table
// offsets.  When every LUT entry fits 16 bits (true of any multiplier with a 16-bit product), the
// tables of 2 or 4 output channels are fused so one lookup yields 2 or 4 MACs (see "Packed
// mode"); on the Zen 3 development machine that took a 1x1 conv from ~1.6 to ~3 G lookups/s
// per core.  The AVX2 code is compiled with a per-function target attribute and chosen at run
// time, so an extension built on one machine still runs (scalar) on a CPU without AVX2.
// Build with -fopenmp: at::parallel_for expands to an OpenMP pragma in this file.
//
// Accumulation is int32 with two's-complement wrap-around (unsigned arithmetic in the scalar
// path, so no undefined behaviour); that equals the reference's int64 sum truncated to int32.
// The Python wrapper rejects inputs where K * max|lut| could overflow, as the contract asks.

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/aminmax.h>
#include <ATen/native/ConvUtils.h>
#include <ATen/ops/conv2d.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <c10/util/Exception.h>
#include <torch/library.h>
#include <torch/version.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <numeric>
#include <optional>
#include <cmath>
#include <limits>
#include <tuple>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define HWCOST_X86 1
#include <immintrin.h>
#endif

#ifndef HWCOST_NS
#define HWCOST_NS hwcost_lut
#endif

namespace {

// ---------------------------------------------------------------------------------------------
// Run-time ISA selection.

int detect_simd() {
#ifdef HWCOST_X86
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl");
  if (avx512 && __builtin_cpu_supports("avx512vbmi"))
    return __builtin_cpu_supports("avx512vnni") ? 4 : 3;
  if (avx512) return 2;
  if (__builtin_cpu_supports("avx2")) return 1;
#endif
  return 0;
}

// Run-time paths, each needing the CPU features of the ones below it:
//   0 portable scalar; 1 AVX2 gathers; 2 AVX-512 gathers (F+BW+VL); 3 AVX-512 VBMI byte
//   permutes; 4 VBMI with VNNI (vpdpwssd) widening the looked-up 16-bit values.
// Levels 3 and 4 need tables whose entries span at most 2**16 values (every 8-bit
// multiplier's do); other tables fall back to level 2.
const int kDetectedSimd = detect_simd();
int g_simd = kDetectedSimd;  // Tests lower it to exercise every path the CPU has.

// ---------------------------------------------------------------------------------------------
// The LUT-GEMM description shared by every path.
//
// Packed mode: when every LUT entry fits 16 bits, the tables (j, k) of `per` = 2 or 4
// consecutive output rows are fused into one table of 32- or 64-bit words holding all their
// entries (16 bits each, row order = bit order).  One lookup then yields 2 or 4 MACs, which
// divides the gathers -- the kernel's bottleneck -- accordingly (a 4-lane 64-bit gather is
// also cheaper than an 8-lane 32-bit one, as the cost is per lane).  The 16-bit fields are
// sign- (or zero-) extended and summed in separate int32 accumulators, so packing never
// changes a result.

enum Pack : int { kNoPack = 0, kPackS16 = 1, kPackU16 = 2 };

struct LutGemm {
  const int32_t* base;  // table storage
  const int32_t* toff;  // toff[k * J + j]: offset (int32 elements) of table column j at step k
  int64_t J;            // table columns (output rows / per)
  int64_t K;
  const uint8_t* idx;   // index row k starts at idx + koff[k]; positions l are contiguous
  const int64_t* koff;
  int32_t* out;         // out[row * ldo + l]
  int64_t ldo;
  int pack;             // Pack (kNoPack iff per == 1)
  int64_t rows;         // output rows (<= per * J)
  int per;              // output rows per table column: 1, 2 or 4
  // Byte-plane tables for the VBMI path (nullptr: not usable).  Table column j at step k
  // starts at planes + poff[k * J + j]: 256 low bytes then 256 high bytes of the entries
  // minus a centre, as int16.  rbias[row] = K * centre restores the sums.
  const uint8_t* planes = nullptr;
  const int32_t* poff = nullptr;
  const int32_t* rbias = nullptr;
};

inline int32_t unpack_lo(uint32_t v, int pack) {
  return pack == kPackS16 ? static_cast<int32_t>(static_cast<int16_t>(v & 0xFFFFu))
                          : static_cast<int32_t>(v & 0xFFFFu);
}
inline int32_t unpack_hi(uint32_t v, int pack) {
  return pack == kPackS16 ? static_cast<int32_t>(static_cast<int16_t>(v >> 16))
                          : static_cast<int32_t>(v >> 16);
}

// Portable path: 4 table columns share each loaded index; accumulators in an L1-resident tile
// (measured faster than register tiles for scalar code: the loop is load-port bound).
void gemm_scalar(const LutGemm& g, int64_t j0, int64_t j1, int64_t l0, int64_t l1) {
  constexpr int64_t LB = 64;
  constexpr int64_t JB = 4;
  uint32_t acc[4 * JB][LB];
  for (int64_t j = j0; j < j1; j += JB) {
    const int64_t jb = std::min(JB, j1 - j);
    for (int64_t lb = l0; lb < l1; lb += LB) {
      const int64_t n = std::min(LB, l1 - lb);
      std::memset(acc, 0, sizeof(acc));
      for (int64_t k = 0; k < g.K; ++k) {
        const uint8_t* ix = g.idx + g.koff[k] + lb;
        const int32_t* tk = g.toff + k * g.J + j;
        for (int64_t jj = 0; jj < jb; ++jj) {
          const int32_t* t = g.base + tk[jj];
          if (g.per == 1) {
            uint32_t* a = acc[jj];
            for (int64_t i = 0; i < n; ++i) a[i] += static_cast<uint32_t>(t[ix[i]]);
          } else {
            // Word w of a packed table spans `per / 2` int32 elements.
            for (int64_t h = 0; h < g.per / 2; ++h) {
              uint32_t* lo = acc[g.per * jj + 2 * h];
              uint32_t* hi = acc[g.per * jj + 2 * h + 1];
              for (int64_t i = 0; i < n; ++i) {
                const uint32_t v = static_cast<uint32_t>(t[ix[i] * (g.per / 2) + h]);
                lo[i] += static_cast<uint32_t>(unpack_lo(v, g.pack));
                hi[i] += static_cast<uint32_t>(unpack_hi(v, g.pack));
              }
            }
          }
        }
      }
      for (int64_t jj = 0; jj < jb; ++jj) {
        for (int64_t h = 0; h < g.per; ++h) {
          const int64_t row = g.per * (j + jj) + h;
          if (row >= g.rows) continue;
          const uint32_t* a = acc[g.per * jj + h];
          int32_t* o = g.out + row * g.ldo + lb;
          for (int64_t i = 0; i < n; ++i) o[i] = static_cast<int32_t>(a[i]);
        }
      }
    }
  }
}

#ifdef HWCOST_X86
#define HWCOST_AVX2 __attribute__((target("avx2")))

// Load `count` (<= 8) index bytes zero-extended to int32 lanes; missing lanes read index 0,
// which is always a valid table entry.
HWCOST_AVX2 inline __m256i load_idx(const uint8_t* p, int count) {
  if (count >= 8) {
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  }
  uint8_t tmp[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  std::memcpy(tmp, p, static_cast<size_t>(count));
  return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(tmp)));
}

HWCOST_AVX2 inline void store_row(const LutGemm& g, int64_t row, int64_t l, int tail,
                                  __m256i v) {
  if (row >= g.rows) return;
  int32_t* o = g.out + row * g.ldo + l;
  if (tail >= 8) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(o), v);
  } else {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(tail), lane);
    _mm256_maskstore_epi32(reinterpret_cast<int*>(o), mask, v);
  }
}

// One register tile: JB table columns x NV vectors of 8 positions.  `tail` < 8 means a single
// partial vector (only used with NV == 1).  PACK selects plain or packed 16-bit tables.
template <int JB, int NV, int PACK>
HWCOST_AVX2 inline void avx2_tile(const LutGemm& g, int64_t j, int64_t l, int tail) {
  constexpr int H = PACK == kNoPack ? 1 : 2;
  __m256i acc[JB][H][NV];
  for (int jj = 0; jj < JB; ++jj)
    for (int h = 0; h < H; ++h)
      for (int v = 0; v < NV; ++v) acc[jj][h][v] = _mm256_setzero_si256();
  const int32_t* tk = g.toff + j;
  for (int64_t k = 0; k < g.K; ++k, tk += g.J) {
    const uint8_t* ix = g.idx + g.koff[k] + l;
    __m256i iv[NV];
    for (int v = 0; v < NV; ++v) iv[v] = load_idx(ix + 8 * v, tail);
    for (int jj = 0; jj < JB; ++jj) {
      const int* t = reinterpret_cast<const int*>(g.base + tk[jj]);
      for (int v = 0; v < NV; ++v) {
        const __m256i e = _mm256_i32gather_epi32(t, iv[v], 4);
        if constexpr (PACK == kNoPack) {
          acc[jj][0][v] = _mm256_add_epi32(acc[jj][0][v], e);
        } else if constexpr (PACK == kPackS16) {
          acc[jj][0][v] = _mm256_add_epi32(acc[jj][0][v],
                                           _mm256_srai_epi32(_mm256_slli_epi32(e, 16), 16));
          acc[jj][H - 1][v] = _mm256_add_epi32(acc[jj][H - 1][v], _mm256_srai_epi32(e, 16));
        } else {
          acc[jj][0][v] = _mm256_add_epi32(
              acc[jj][0][v], _mm256_and_si256(e, _mm256_set1_epi32(0xFFFF)));
          acc[jj][H - 1][v] = _mm256_add_epi32(acc[jj][H - 1][v], _mm256_srli_epi32(e, 16));
        }
      }
    }
  }
  for (int jj = 0; jj < JB; ++jj)
    for (int h = 0; h < H; ++h)
      for (int v = 0; v < NV; ++v)
        store_row(g, H * (j + jj) + h, l + 8 * v, tail, acc[jj][h][v]);
}

// Quad-packed tile: one table column (4 output rows, 64-bit words) x NG groups of 4 positions.
// After the 64-bit gather, the even 16-bit fields of each position land in `ev` (rows 0 and 2)
// and the odd ones in `od` (rows 1 and 3), interleaved by position.
template <int NG, int PACK>
HWCOST_AVX2 inline void avx2_quad_tile(const LutGemm& g, int64_t j, int64_t l, int valid) {
  __m256i ev[NG], od[NG];
  for (int v = 0; v < NG; ++v) {
    ev[v] = _mm256_setzero_si256();
    od[v] = _mm256_setzero_si256();
  }
  const int32_t* tk = g.toff + j;
  for (int64_t k = 0; k < g.K; ++k, tk += g.J) {
    const uint8_t* ix = g.idx + g.koff[k] + l;
    const long long* t = reinterpret_cast<const long long*>(g.base + *tk);
    for (int v = 0; v < NG; ++v) {
      int32_t four = 0;
      if (valid >= 4 * (v + 1)) {
        std::memcpy(&four, ix + 4 * v, 4);   // constant size: one load, not a call
      } else if (valid > 4 * v) {
        std::memcpy(&four, ix + 4 * v, static_cast<size_t>(valid - 4 * v));
      }
      const __m128i iv = _mm_cvtepu8_epi32(_mm_cvtsi32_si128(four));
      const __m256i e = _mm256_i32gather_epi64(t, iv, 8);
      if constexpr (PACK == kPackS16) {
        ev[v] = _mm256_add_epi32(ev[v], _mm256_srai_epi32(_mm256_slli_epi32(e, 16), 16));
        od[v] = _mm256_add_epi32(od[v], _mm256_srai_epi32(e, 16));
      } else {
        ev[v] = _mm256_add_epi32(ev[v], _mm256_and_si256(e, _mm256_set1_epi32(0xFFFF)));
        od[v] = _mm256_add_epi32(od[v], _mm256_srli_epi32(e, 16));
      }
    }
  }
  const int64_t row0 = 4 * j;
  if (valid == 4 * NG && row0 + 4 <= g.rows) {
    // Full tile: de-interleave each accumulator into its two rows with one permute, then
    // store 4 positions per row with 128-bit stores.
    const __m256i split = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
    int32_t* out = g.out + row0 * g.ldo + l;
    for (int v = 0; v < NG; ++v) {
      const __m256i pe = _mm256_permutevar8x32_epi32(ev[v], split);  // rows 0 | 2
      const __m256i po = _mm256_permutevar8x32_epi32(od[v], split);  // rows 1 | 3
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 4 * v), _mm256_castsi256_si128(pe));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + g.ldo + 4 * v),
                       _mm256_castsi256_si128(po));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 2 * g.ldo + 4 * v),
                       _mm256_extracti128_si256(pe, 1));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 3 * g.ldo + 4 * v),
                       _mm256_extracti128_si256(po, 1));
    }
    return;
  }
  alignas(32) int32_t e[NG][8];
  alignas(32) int32_t o[NG][8];
  for (int v = 0; v < NG; ++v) {
    _mm256_store_si256(reinterpret_cast<__m256i*>(e[v]), ev[v]);
    _mm256_store_si256(reinterpret_cast<__m256i*>(o[v]), od[v]);
  }
  const int32_t* src[4] = {nullptr, nullptr, nullptr, nullptr};
  for (int h = 0; h < 4; ++h) {
    const int64_t row = row0 + h;
    if (row >= g.rows) continue;
    int32_t* out = g.out + row * g.ldo + l;
    for (int v = 0; v < NG; ++v) {
      src[h] = (h % 2 == 0) ? e[v] : o[v];
      for (int p = 0; p < 4 && 4 * v + p < valid; ++p) out[4 * v + p] = src[h][2 * p + h / 2];
    }
  }
}

template <int PACK>
HWCOST_AVX2 void gemm_avx2_quad(const LutGemm& g, int64_t j0, int64_t j1, int64_t l0,
                                int64_t l1) {
  for (int64_t j = j0; j < j1; ++j) {
    int64_t l = l0;
    for (; l + 16 <= l1; l += 16) avx2_quad_tile<4, PACK>(g, j, l, 16);
    // Narrow tails (short rows of a depthwise conv) in narrower tiles: a 4-group tile would
    // gather index 0 for every missing group.
    const int rest = static_cast<int>(l1 - l);
    if (rest > 8) {
      avx2_quad_tile<4, PACK>(g, j, l, rest);
    } else if (rest > 4) {
      avx2_quad_tile<2, PACK>(g, j, l, rest);
    } else if (rest > 0) {
      avx2_quad_tile<1, PACK>(g, j, l, rest);
    }
  }
}

template <int JB, int PACK>
HWCOST_AVX2 void avx2_rows(const LutGemm& g, int64_t j, int64_t l0, int64_t l1) {
  int64_t l = l0;
  for (; l + 16 <= l1; l += 16) avx2_tile<JB, 2, PACK>(g, j, l, 8);
  for (; l + 8 <= l1; l += 8) avx2_tile<JB, 1, PACK>(g, j, l, 8);
  if (l < l1) avx2_tile<JB, 1, PACK>(g, j, l, static_cast<int>(l1 - l));
}

template <int PACK>
HWCOST_AVX2 void gemm_avx2(const LutGemm& g, int64_t j0, int64_t j1, int64_t l0, int64_t l1) {
  // 4 plain columns or 2 packed column pairs per tile: 8 accumulators x 2 vectors.
  constexpr int JB = PACK == kNoPack ? 4 : 2;
  int64_t j = j0;
  for (; j + JB <= j1; j += JB) avx2_rows<JB, PACK>(g, j, l0, l1);
  switch (j1 - j) {
    case 3: avx2_rows<3, PACK>(g, j, l0, l1); break;
    case 2: avx2_rows<2, PACK>(g, j, l0, l1); break;
    case 1: avx2_rows<1, PACK>(g, j, l0, l1); break;
    default: break;
  }
}

// ---------------------------------------------------------------------------------------------
// AVX-512 gathers: the AVX2 register tile at twice the width (16 positions per vector), for
// plain and pair-packed tables.  Quad-packed tables keep the AVX2 quad tile.

#define HWCOST_AVX512 __attribute__((target("avx2,avx512f,avx512bw,avx512vl")))

HWCOST_AVX512 inline __m512i load_idx16(const uint8_t* p, int count) {
  const __m128i b = count >= 16
                        ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(p))
                        : _mm_maskz_loadu_epi8(static_cast<__mmask16>((1u << count) - 1u), p);
  return _mm512_cvtepu8_epi32(b);
}

HWCOST_AVX512 inline void store_row16(const LutGemm& g, int64_t row, int64_t l, int tail,
                                      __m512i v) {
  if (row >= g.rows) return;
  int32_t* o = g.out + row * g.ldo + l;
  if (tail >= 16) {
    _mm512_storeu_si512(o, v);
  } else {
    _mm512_mask_storeu_epi32(o, static_cast<__mmask16>((1u << tail) - 1u), v);
  }
}

template <int JB, int NV, int PACK>
HWCOST_AVX512 inline void avx512_tile(const LutGemm& g, int64_t j, int64_t l, int tail) {
  constexpr int H = PACK == kNoPack ? 1 : 2;
  __m512i acc[JB][H][NV];
  for (int jj = 0; jj < JB; ++jj)
    for (int h = 0; h < H; ++h)
      for (int v = 0; v < NV; ++v) acc[jj][h][v] = _mm512_setzero_si512();
  const int32_t* tk = g.toff + j;
  for (int64_t k = 0; k < g.K; ++k, tk += g.J) {
    const uint8_t* ix = g.idx + g.koff[k] + l;
    __m512i iv[NV];
    for (int v = 0; v < NV; ++v) iv[v] = load_idx16(ix + 16 * v, tail);
    for (int jj = 0; jj < JB; ++jj) {
      const int* t = reinterpret_cast<const int*>(g.base + tk[jj]);
      for (int v = 0; v < NV; ++v) {
        const __m512i e = _mm512_i32gather_epi32(iv[v], t, 4);
        if constexpr (PACK == kNoPack) {
          acc[jj][0][v] = _mm512_add_epi32(acc[jj][0][v], e);
        } else if constexpr (PACK == kPackS16) {
          acc[jj][0][v] = _mm512_add_epi32(acc[jj][0][v],
                                           _mm512_srai_epi32(_mm512_slli_epi32(e, 16), 16));
          acc[jj][H - 1][v] = _mm512_add_epi32(acc[jj][H - 1][v], _mm512_srai_epi32(e, 16));
        } else {
          acc[jj][0][v] = _mm512_add_epi32(
              acc[jj][0][v], _mm512_and_si512(e, _mm512_set1_epi32(0xFFFF)));
          acc[jj][H - 1][v] = _mm512_add_epi32(acc[jj][H - 1][v], _mm512_srli_epi32(e, 16));
        }
      }
    }
  }
  for (int jj = 0; jj < JB; ++jj)
    for (int h = 0; h < H; ++h)
      for (int v = 0; v < NV; ++v)
        store_row16(g, H * (j + jj) + h, l + 16 * v, tail, acc[jj][h][v]);
}

template <int JB, int PACK>
HWCOST_AVX512 void avx512_rows(const LutGemm& g, int64_t j, int64_t l0, int64_t l1) {
  int64_t l = l0;
  for (; l + 32 <= l1; l += 32) avx512_tile<JB, 2, PACK>(g, j, l, 16);
  for (; l + 16 <= l1; l += 16) avx512_tile<JB, 1, PACK>(g, j, l, 16);
  if (l < l1) avx512_tile<JB, 1, PACK>(g, j, l, static_cast<int>(l1 - l));
}

template <int PACK>
HWCOST_AVX512 void gemm_avx512(const LutGemm& g, int64_t j0, int64_t j1, int64_t l0,
                               int64_t l1) {
  constexpr int JB = PACK == kNoPack ? 4 : 2;
  int64_t j = j0;
  for (; j + JB <= j1; j += JB) avx512_rows<JB, PACK>(g, j, l0, l1);
  switch (j1 - j) {
    case 3: avx512_rows<3, PACK>(g, j, l0, l1); break;
    case 2: avx512_rows<2, PACK>(g, j, l0, l1); break;
    case 1: avx512_rows<1, PACK>(g, j, l0, l1); break;
    default: break;
  }
}

// ---------------------------------------------------------------------------------------------
// AVX-512 VBMI: byte permutes instead of gathers.
//
// A table column (one weight code's 256 products) is held in registers as two byte planes of
// 256 bytes (low and high byte of entry - centre, an int16), four zmm each.  `vpermi2b` looks
// up 64 positions in a 128-byte half per instruction, so one plane costs two permutes and a
// blend on the index's top bit: 64 look-ups in 6 permutes + 2 blends for both planes, against
// 4 gathers of 16 lanes.  Interleaving the planes (`vpunpck[lh]bw`) rebuilds the int16 values,
// and `vpdpwssd` against (1, 0) / (0, 1) word pairs adds the even / odd positions into int32
// accumulators (madd + add without VNNI), so the sums never leave exact integer arithmetic.
// The accumulators hold positions in a lane-interleaved order that the epilogue transposes
// back.  rbias adds K * centre.

#define HWCOST_VBMI __attribute__((target("avx2,avx512f,avx512bw,avx512vl,avx512vbmi")))
#define HWCOST_VBMI_VNNI \
  __attribute__((target("avx2,avx512f,avx512bw,avx512vl,avx512vbmi,avx512vnni")))

#define HWCOST_VBMI_TILE_BODY(ACCUMULATE)                                                      \
  __m512i acc[NV][4];                                                                         \
  for (int v = 0; v < NV; ++v)                                                                \
    for (int a = 0; a < 4; ++a) acc[v][a] = _mm512_setzero_si512();                           \
  __mmask64 mk[NV];                                                                           \
  for (int v = 0; v < NV; ++v) {                                                              \
    const int cnt = std::min(64, std::max(0, valid - 64 * v));                                \
    mk[v] = cnt >= 64 ? ~__mmask64{0} : ((__mmask64{1} << cnt) - 1);                          \
  }                                                                                           \
  const __m512i even = _mm512_set1_epi32(0x00000001);                                         \
  const __m512i odd = _mm512_set1_epi32(0x00010000);                                          \
  const int32_t* pk = g.poff + j;                                                             \
  for (int64_t k = 0; k < g.K; ++k, pk += g.J) {                                              \
    const uint8_t* t = g.planes + *pk;                                                        \
    const __m512i l0 = _mm512_loadu_si512(t), l1 = _mm512_loadu_si512(t + 64);                \
    const __m512i l2 = _mm512_loadu_si512(t + 128), l3 = _mm512_loadu_si512(t + 192);         \
    const __m512i h0 = _mm512_loadu_si512(t + 256), h1 = _mm512_loadu_si512(t + 320);         \
    const __m512i h2 = _mm512_loadu_si512(t + 384), h3 = _mm512_loadu_si512(t + 448);         \
    const uint8_t* ix = g.idx + g.koff[k] + l;                                                \
    for (int v = 0; v < NV; ++v) {                                                            \
      const __m512i idx = _mm512_maskz_loadu_epi8(mk[v], ix + 64 * v);                        \
      const __mmask64 top = _mm512_movepi8_mask(idx);                                         \
      const __m512i lo = _mm512_mask_blend_epi8(top, _mm512_permutex2var_epi8(l0, idx, l1),   \
                                                _mm512_permutex2var_epi8(l2, idx, l3));       \
      const __m512i hi = _mm512_mask_blend_epi8(top, _mm512_permutex2var_epi8(h0, idx, h1),   \
                                                _mm512_permutex2var_epi8(h2, idx, h3));       \
      const __m512i w0 = _mm512_unpacklo_epi8(lo, hi);                                        \
      const __m512i w1 = _mm512_unpackhi_epi8(lo, hi);                                        \
      ACCUMULATE(acc[v][0], w0, even);                                                        \
      ACCUMULATE(acc[v][1], w0, odd);                                                         \
      ACCUMULATE(acc[v][2], w1, even);                                                        \
      ACCUMULATE(acc[v][3], w1, odd);                                                         \
    }                                                                                         \
  }                                                                                           \
  vbmi_store<NV>(g, j, l, valid, acc);

#define HWCOST_ACC_VNNI(a, w, sel) a = _mm512_dpwssd_epi32(a, w, sel)
#define HWCOST_ACC_MADD(a, w, sel) a = _mm512_add_epi32(a, _mm512_madd_epi16(w, sel))

// acc[v]: 0 = even positions of the low half of each 16-byte lane, 1 = odd, 2/3 the same for
// the high half.  Lane i of (unpacklo32(0, 1), unpackhi32(0, 1), unpacklo32(2, 3),
// unpackhi32(2, 3)) holds positions 16i + 0..3, 4..7, 8..11, 12..15: a 4 x 4 transpose of
// 128-bit lanes puts them in order.
template <int NV>
HWCOST_VBMI inline void vbmi_store(const LutGemm& g, int64_t j, int64_t l, int valid,
                                   __m512i (&acc)[NV][4]) {
  if (j >= g.rows) return;
  int32_t* o = g.out + j * g.ldo + l;
  const __m512i bias = _mm512_set1_epi32(g.rbias[j]);
  for (int v = 0; v < NV; ++v) {
    const __m512i a = _mm512_unpacklo_epi32(acc[v][0], acc[v][1]);
    const __m512i b = _mm512_unpackhi_epi32(acc[v][0], acc[v][1]);
    const __m512i c = _mm512_unpacklo_epi32(acc[v][2], acc[v][3]);
    const __m512i d = _mm512_unpackhi_epi32(acc[v][2], acc[v][3]);
    const __m512i ab_lo = _mm512_shuffle_i32x4(a, b, 0x44), ab_hi = _mm512_shuffle_i32x4(a, b, 0xEE);
    const __m512i cd_lo = _mm512_shuffle_i32x4(c, d, 0x44), cd_hi = _mm512_shuffle_i32x4(c, d, 0xEE);
    const __m512i q[4] = {_mm512_shuffle_i32x4(ab_lo, cd_lo, 0x88),
                          _mm512_shuffle_i32x4(ab_lo, cd_lo, 0xDD),
                          _mm512_shuffle_i32x4(ab_hi, cd_hi, 0x88),
                          _mm512_shuffle_i32x4(ab_hi, cd_hi, 0xDD)};
    for (int i = 0; i < 4; ++i) {
      const int cnt = std::min(16, valid - 64 * v - 16 * i);
      if (cnt <= 0) return;
      const __m512i r = _mm512_add_epi32(q[i], bias);
      int32_t* dst = o + 64 * v + 16 * i;
      if (cnt >= 16) {
        _mm512_storeu_si512(dst, r);
      } else {
        _mm512_mask_storeu_epi32(dst, static_cast<__mmask16>((1u << cnt) - 1u), r);
      }
    }
  }
}

template <int NV>
HWCOST_VBMI inline void vbmi_tile(const LutGemm& g, int64_t j, int64_t l, int valid) {
  HWCOST_VBMI_TILE_BODY(HWCOST_ACC_MADD)
}

template <int NV>
HWCOST_VBMI_VNNI inline void vbmi_vnni_tile(const LutGemm& g, int64_t j, int64_t l, int valid) {
  HWCOST_VBMI_TILE_BODY(HWCOST_ACC_VNNI)
}

// 256 positions per tile (4 vectors), shorter tiles for the rest.
#define HWCOST_VBMI_GEMM(NAME, TILE, ATTR)                                                     \
  ATTR void NAME(const LutGemm& g, int64_t j0, int64_t j1, int64_t l0, int64_t l1) {          \
    for (int64_t j = j0; j < j1; ++j) {                                                       \
      int64_t l = l0;                                                                         \
      for (; l + 256 <= l1; l += 256) TILE<4>(g, j, l, 256);                                  \
      const int rest = static_cast<int>(l1 - l);                                              \
      if (rest > 128) TILE<4>(g, j, l, rest);                                                 \
      else if (rest > 64) TILE<2>(g, j, l, rest);                                             \
      else if (rest > 0) TILE<1>(g, j, l, rest);                                              \
    }                                                                                         \
  }
HWCOST_VBMI_GEMM(gemm_vbmi, vbmi_tile, HWCOST_VBMI)
HWCOST_VBMI_GEMM(gemm_vbmi_vnni, vbmi_vnni_tile, HWCOST_VBMI_VNNI)
#endif  // HWCOST_X86

void gemm(const LutGemm& g, int64_t j0, int64_t j1, int64_t l0, int64_t l1) {
  if (j0 >= j1 || l0 >= l1) return;
#ifdef HWCOST_X86
  if (g_simd >= 3 && g.planes != nullptr && g.per == 1) {
    if (g_simd >= 4) {
      gemm_vbmi_vnni(g, j0, j1, l0, l1);
    } else {
      gemm_vbmi(g, j0, j1, l0, l1);
    }
    return;
  }
  if (g_simd >= 2 && g.per <= 2) {
    switch (g.pack) {
      case kPackS16: gemm_avx512<kPackS16>(g, j0, j1, l0, l1); return;
      case kPackU16: gemm_avx512<kPackU16>(g, j0, j1, l0, l1); return;
      default: gemm_avx512<kNoPack>(g, j0, j1, l0, l1); return;
    }
  }
  if (g_simd >= 1) {
    if (g.per == 4) {
      if (g.pack == kPackS16) {
        gemm_avx2_quad<kPackS16>(g, j0, j1, l0, l1);
      } else {
        gemm_avx2_quad<kPackU16>(g, j0, j1, l0, l1);
      }
      return;
    }
    switch (g.pack) {
      case kPackS16: gemm_avx2<kPackS16>(g, j0, j1, l0, l1); return;
      case kPackU16: gemm_avx2<kPackU16>(g, j0, j1, l0, l1); return;
      default: gemm_avx2<kNoPack>(g, j0, j1, l0, l1); return;
    }
  }
#endif
  gemm_scalar(g, j0, j1, l0, l1);
}

// Split one GEMM over threads in (column block x position chunk) tasks, enough of them to
// balance the threads even when one dimension is short (a linear layer's batch).
void gemm_parallel(const LutGemm& g, int64_t L) {
  const int64_t nthreads = at::get_num_threads();
  constexpr int64_t JC = 4;
  const int64_t jchunks = (g.J + JC - 1) / JC;
  const int64_t lmin = (g.planes != nullptr && g_simd >= 3) ? 64 : 16;  // a VBMI vector
  int64_t lc = 256;
  while (lc > lmin && jchunks * ((L + lc - 1) / lc) < 4 * nthreads) lc /= 2;
  const int64_t lchunks = (L + lc - 1) / lc;
  at::parallel_for(0, jchunks * lchunks, 1, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t jc = t / lchunks, c = t % lchunks;
      gemm(g, jc * JC, std::min(g.J, (jc + 1) * JC), c * lc, std::min(L, (c + 1) * lc));
    }
  });
}

// Fuse table columns `per` at a time (2 or 4) for packed mode.  `toff` ([sets][K][J],
// offsets into `base`, tables `width` entries long) describes `sets` independent column sets
// (conv groups).  Returns the packed tables; `ptoff` receives [sets][K][ceil(J / per)]
// offsets (int32 elements) into them.  Rows past J are zero fields that are never stored.
std::vector<int32_t> pack_tables(const int32_t* base, const std::vector<int32_t>& toff,
                                 int64_t sets, int64_t K, int64_t J, int64_t width, int per,
                                 std::vector<int32_t>& ptoff) {
  const int64_t Jp = (J + per - 1) / per;
  const int64_t words = per / 2;  // int32 elements per packed entry
  std::vector<int32_t> packed(static_cast<size_t>(sets * K * Jp * width * words));
  ptoff.resize(static_cast<size_t>(sets * K * Jp));
  at::parallel_for(0, sets * K * Jp, 16, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t jp = t % Jp;
      const int64_t sk = t / Jp;  // set * K + k
      uint32_t* o = reinterpret_cast<uint32_t*>(packed.data()) + t * width * words;
      for (int64_t wi = 0; wi < words; ++wi) {
        const int64_t jl = per * jp + 2 * wi;  // row in the low half of this int32
        const int32_t* lo = jl < J ? base + toff[sk * J + jl] : nullptr;
        const int32_t* hi = jl + 1 < J ? base + toff[sk * J + jl + 1] : nullptr;
        for (int64_t a = 0; a < width; ++a) {
          const uint32_t l16 = lo ? static_cast<uint32_t>(lo[a]) & 0xFFFFu : 0u;
          const uint32_t h16 = hi ? static_cast<uint32_t>(hi[a]) << 16 : 0u;
          o[a * words + wi] = l16 | h16;
        }
      }
      ptoff[t] = static_cast<int32_t>(t * width * words);
    }
  });
  return packed;
}

// Packing costs ~width work per fused table and saves half the lookups of each of its
// `reuse` positions; below this reuse it does not pay.
// Tests lower it to exercise packing on small shapes.
int64_t g_pack_min_reuse = 256;

// Packed tables take (weights / 2) * width * 4 bytes; past this the working set no longer fits
// any cache and the memory is not worth it, so large layers stay unpacked.
constexpr int64_t kPackMaxBytes = int64_t{64} << 20;

// How many output rows to fuse per table word: 4 when there are at least 3 rows (the padding
// costs less than the halved gathers save), 2 for 2 rows, 1 (no packing) otherwise.
int pack_per(int64_t pack, int64_t sets, int64_t K, int64_t J, int64_t width, int64_t reuse) {
  if (pack == kNoPack || J < 2 || reuse < g_pack_min_reuse) return 1;
  // The AVX-512 gather path has no quad tile (the AVX2 one would run at half width).
  const int per = (J >= 3 && g_simd != 2) ? 4 : 2;
  const int64_t bytes = sets * K * ((J + per - 1) / per) * width * 2 * per;
  return bytes <= kPackMaxBytes ? per : 1;
}

// Table storage and column offsets for one GEMM family, packed or not.
struct Tables {
  std::vector<int32_t> packed;
  std::vector<int32_t> ptoff;
  const int32_t* base;
  const int32_t* cols;
  int64_t J;  // table columns
  int per;
  int pack;
};

Tables make_tables(const int32_t* base, const std::vector<int32_t>& toff, int64_t sets,
                   int64_t K, int64_t J, int64_t width, int64_t pack, int64_t reuse) {
  Tables t;
  t.per = pack_per(pack, sets, K, J, width, reuse);
  t.pack = t.per == 1 ? static_cast<int>(kNoPack) : static_cast<int>(pack);
  if (t.per == 1) {
    t.base = base;
    t.cols = toff.data();
    t.J = J;
  } else {
    t.packed = pack_tables(base, toff, sets, K, J, width, t.per, t.ptoff);
    t.base = t.packed.data();
    t.cols = t.ptoff.data();
    t.J = (J + t.per - 1) / t.per;
  }
  return t;
}

// ---------------------------------------------------------------------------------------------
// Argument checks (the Python wrapper gives friendlier messages; these keep direct op calls
// memory-safe).

uint8_t max_code(const at::Tensor& t) {
  const uint8_t* p = t.data_ptr<uint8_t>();
  const int64_t n = t.numel();
  uint8_t m = 0;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, p[i]);
  return m;
}

// `table` is the LUT as stored (transposed or not); `a_width`/`b_width` are its activation and
// weight code ranges.
void check_operands(const at::Tensor& x, const at::Tensor& w, const at::Tensor& table,
                    int64_t a_width, int64_t b_width, int64_t xdim) {
  TORCH_CHECK(x.device().is_cpu() && w.device().is_cpu() && table.device().is_cpu(),
              "hwcost cpu LUT kernels need CPU tensors");
  TORCH_CHECK(x.scalar_type() == at::kByte && w.scalar_type() == at::kByte,
              "activation and weight codes must be uint8");
  TORCH_CHECK(table.scalar_type() == at::kInt && (table.dim() == 2 || table.dim() == 3),
              "lut must be 2-D int32 (or 3-D: a stack of tables of one shape)");
  TORCH_CHECK(x.is_contiguous() && w.is_contiguous() && table.is_contiguous(),
              "operands must be contiguous");
  TORCH_CHECK(x.dim() == xdim && w.dim() == xdim, "operand rank mismatch");
  TORCH_CHECK(a_width >= 1 && a_width <= 256 && b_width >= 1 && b_width <= 256,
              "lut must be at most 256 x 256");
  if (a_width < 256 && x.numel() > 0)
    TORCH_CHECK(max_code(x) < a_width, "activation code outside the lut");
  if (b_width < 256 && w.numel() > 0)
    TORCH_CHECK(max_code(w) < b_width, "weight code outside the lut");
}

// ---------------------------------------------------------------------------------------------
// VBMI byte planes

// `planes` is (T, B, 2, 256) uint8 made by the Python wrapper (cached per LUT), or empty when a
// table's range is too wide; `centres` is (T,) int32.  The VBMI path runs when both the CPU
// and the tables allow it.
bool vbmi_usable(const at::Tensor& planes, int64_t T, int64_t B) {
  if (g_simd < 3 || planes.numel() == 0) return false;
  TORCH_CHECK(planes.scalar_type() == at::kByte && planes.is_contiguous() && planes.dim() == 4 &&
                  planes.size(0) == T && planes.size(1) == B && planes.size(2) == 2 &&
                  planes.size(3) == 256,
              "planes must be (T, 2**b, 2, 256) uint8, contiguous");
  return true;
}

// Gather P rows of Q codes (every sw-th, rows `pitch` apart) into a contiguous block.  Short
// rows are copied inline: a memcpy call per 8- or 16-byte row cost more than the look-ups.
inline void copy_rows(uint8_t* __restrict o, const uint8_t* __restrict in, int64_t P, int64_t Q,
                      int64_t pitch, int64_t sw) {
  if (sw == 1 && Q >= 64) {
    for (int64_t p = 0; p < P; ++p) std::memcpy(o + p * Q, in + p * pitch, static_cast<size_t>(Q));
    return;
  }
  for (int64_t p = 0; p < P; ++p) {
    const uint8_t* row = in + p * pitch;
    uint8_t* dst = o + p * Q;
    if (sw == 1) {
      int64_t q = 0;
      for (; q + 8 <= Q; q += 8) {
        uint64_t v;
        std::memcpy(&v, row + q, 8);   // one 8-byte move, no call
        std::memcpy(dst + q, &v, 8);
      }
      for (; q < Q; ++q) dst[q] = row[q];
    } else {
      for (int64_t q = 0; q < Q; ++q) dst[q] = row[q * sw];
    }
  }
}

// Row loops (row-packed tables here, the fused layer ops below), compiled for AVX-512, AVX2 and baseline x86-64 and picked
// by the loader (GCC target_clones), so they vectorize whatever the build machine.  They take
// everything by value: a lambda's by-reference captures would alias the stores and keep the
// compiler scalar.
#if defined(HWCOST_X86) && defined(__GNUC__) && !defined(__clang__)
#define HWCOST_CLONES __attribute__((target_clones("arch=skylake-avx512", "avx2", "default")))
#else
#define HWCOST_CLONES
#endif

// ---------------------------------------------------------------------------------------------
// Row-packed depthwise tables
//
// A depthwise filter has one output channel per table set, so the channel packing above finds
// nothing to fuse.  What its taps do share is input rows: output rows p and p + step read the
// same input row through kernel rows r and r - kd (kd = step * sh / dh, step = dh / gcd(dh,
// sh)).  A table word for input-row offset e (from the group's first row) and kernel column s
// therefore holds the products of kernel rows e, e - kd, e - 2 kd, e - 3 kd (zero where no
// such row exists) for output rows p0, p0 + step, p0 + 2 step, p0 + 3 step, so one lookup
// yields up to 4 MACs, all at the same output column: 4 output rows cost (3 kd + R) * S
// lookups instead of 4 * R * S (8 instead of 20 per column for 5x5 kernels).  The fields are
// summed in separate int32 accumulators, as in packed mode, so results never change.

// Packed step count of one group of 4 output rows: (3 * kd + R) * S, or 0 when rows share no
// input row (kd >= R) and packing would not save a lookup.
inline int64_t row_pack_steps(int64_t R, int64_t S, int64_t kd) {
  return kd < R ? (3 * kd + R) * S : 0;
}

// The low 16 bits of `width` table entries (a tap's column, before interleaving).
HWCOST_CLONES void narrow_u16(uint16_t* __restrict o, const int32_t* __restrict t,
                              int64_t width) {
  for (int64_t a = 0; a < width; ++a) o[a] = static_cast<uint16_t>(t[a]);
}

// One row-packed table: word a = (f0[a], f1[a], f2[a], f3[a]) as 16-bit fields, low first.
// Interleaved 8 entries per step with SSE2 unpacks (baseline x86-64): 0.47 ns a word on the
// Zen 3 development machine, against 1.09 ns for the shift-and-or loop the compiler made.
void pack_row_table(uint64_t* __restrict o, const uint16_t* f0, const uint16_t* f1,
                    const uint16_t* f2, const uint16_t* f3, int64_t width) {
  int64_t a = 0;
#ifdef HWCOST_X86
  for (; a + 8 <= width; a += 8) {
    const __m128i v0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(f0 + a));
    const __m128i v1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(f1 + a));
    const __m128i v2 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(f2 + a));
    const __m128i v3 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(f3 + a));
    const __m128i lo01 = _mm_unpacklo_epi16(v0, v1), hi01 = _mm_unpackhi_epi16(v0, v1);
    const __m128i lo23 = _mm_unpacklo_epi16(v2, v3), hi23 = _mm_unpackhi_epi16(v2, v3);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(o + a), _mm_unpacklo_epi32(lo01, lo23));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(o + a + 2), _mm_unpackhi_epi32(lo01, lo23));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(o + a + 4), _mm_unpacklo_epi32(hi01, hi23));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(o + a + 6), _mm_unpackhi_epi32(hi01, hi23));
  }
#endif
  for (; a < width; ++a)
    o[a] = uint64_t{f0[a]} | uint64_t{f1[a]} << 16 | uint64_t{f2[a]} << 32 |
           uint64_t{f3[a]} << 48;
}

// Build the row-packed tables of one filter: `taps` holds its R * S tap columns as 16-bit
// fields (tap r * S + s at r * S + s columns of `width`) followed by one zero column; `out`
// receives (3 kd + R) * S tables of `width` 64-bit words, table e * S + s first.
void build_row_packed(uint64_t* out, const uint16_t* taps, int64_t R, int64_t S, int64_t kd,
                      int64_t width) {
  const int64_t E = 3 * kd + R;
  const uint16_t* f[4];
  for (int64_t e = 0; e < E; ++e)
    for (int64_t s = 0; s < S; ++s) {
      for (int64_t m = 0; m < 4; ++m) {
        const int64_t r = e - m * kd;
        f[m] = taps + ((r >= 0 && r < R) ? r * S + s : R * S) * width;
      }
      pack_row_table(out + (e * S + s) * width, f[0], f[1], f[2], f[3], width);
    }
}

// ---------------------------------------------------------------------------------------------
// conv2d

// ---------------------------------------------------------------------------------------------
// Rank-one tables as float convolutions
//
// A table that is an outer product, lut[a][b] = u[a] * v[b] with integer u and v (exact
// multipliers, DRUM, perforated and operand-truncating designs; found exactly by
// multiplier_lib/emulate/factor.py), needs no look-ups at all: the LUT sum of a window is the
// float convolution of u[codes] with v[codes].  It is exact when every partial sum is an
// integer float32 holds (K * max|u| * max|v| < 2**24; checked here as well as by the caller),
// and torch's float32 convolution on the CPU adds in some order of exact integers only
// (direct and GEMM algorithms; no Winograd).  `factors` is (T, 2, 256) float32: [t][0] u by
// activation code, [t][1] v by weight code, zero past the table's width.

// Whether torch's CPU float32 convolutions and matrix products run in float32: a user may
// let oneDNN compute them in bfloat16 or TF32 (torch.backends.mkldnn...fp32_precision,
// torch.set_float32_matmul_precision, or oneDNN's own ONEDNN_DEFAULT_FPMATH_MODE), which
// would make the float sums inexact; they then fall back to the look-ups.  Torch before 2.9
// has no per-backend precision setting to read: there the float sums stay off.
bool fp32_is_exact() {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 9)
  for (const char* name : {"ONEDNN_DEFAULT_FPMATH_MODE", "DNNL_DEFAULT_FPMATH_MODE"}) {
    const char* mode = std::getenv(name);
    if (mode != nullptr && *mode != '\0' && std::strcmp(mode, "STRICT") != 0 &&
        std::strcmp(mode, "strict") != 0)
      return false;
  }
  auto exact = [](at::Float32Op op) {
    const at::Float32Precision p =
        at::globalContext().float32Precision(at::Float32Backend::MKLDNN, op);
    return p == at::Float32Precision::IEEE || p == at::Float32Precision::NONE;
  };
  return exact(at::Float32Op::CONV) && exact(at::Float32Op::MATMUL);
#else
  return false;
#endif
}

// Whether torch's float32 convolution of these operands adds their exact products in some
// order: oneDNN (which torch runs with its direct and GEMM algorithms) or the im2col GEMM.
// Not NNPACK, which torch picks when oneDNN is off (torch.backends.mkldnn.enabled = False)
// and which runs 3x3 and 5x5 kernels as Winograd or FFT transforms with fractional
// coefficients (measured: errors of 3.4 on integer sums), nor ARM's 3x3 depthwise Winograd.
bool conv_sums_exact(const at::Tensor& xf, const at::Tensor& wf,
                     const std::vector<int64_t>& stride, const std::vector<int64_t>& padding,
                     const std::vector<int64_t>& dilation, int64_t groups) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 9)
  using at::native::ConvBackend;
  const std::vector<c10::SymInt> st(stride.begin(), stride.end()),
      pad(padding.begin(), padding.end()), dil(dilation.begin(), dilation.end()),
      out_pad(2, c10::SymInt(0));
  const ConvBackend backend = at::native::select_conv_backend(
      xf, wf, std::nullopt, st, pad, dil, false, out_pad, c10::SymInt(groups), std::nullopt);
  return backend == ConvBackend::Mkldnn || backend == ConvBackend::Slow2d ||
         backend == ConvBackend::SlowDilated2d || backend == ConvBackend::Empty;
#else
  return false;   // not reached: fp32_is_exact() is false before torch 2.9
#endif
}

// A factor as the mapping passes read it: float32 values, and the same as int16 where they
// all are integers that fit (every 8-bit multiplier's factors), for the permute path.

struct CodeMap {
  const float* values;
  int16_t narrow[256];
  bool has_narrow;
  explicit CodeMap(const float* v) : values(v), has_narrow(true) {
    for (int c = 0; c < 256; ++c) {
      const float f = v[c];
      has_narrow = has_narrow && f >= -32768.0f && f <= 32767.0f &&
                   f == static_cast<float>(static_cast<int32_t>(f));
      narrow[c] = has_narrow ? static_cast<int16_t>(f) : 0;
    }
  }
};

#ifdef HWCOST_X86
// 32 codes per step: the 256 int16 values sit in 8 zmm registers, four vpermt2w look up each
// 64-entry quarter and two levels of blends pick the quarter by the code's bits 6 and 7
// (about 0.5 instructions per code, where 16-lane gathers took about 1.6x the quantization
// pass on a 64-channel 16x16 layer).
HWCOST_AVX512 void map_codes_permute(const uint8_t* __restrict c, float* __restrict o,
                                     int64_t n, const int16_t* table) {
  __m512i t[8];
  for (int i = 0; i < 8; ++i) t[i] = _mm512_loadu_si512(table + 32 * i);
  const __m512i bit6 = _mm512_set1_epi16(64), bit7 = _mm512_set1_epi16(128);
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512i idx =
        _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + i)));
    const __mmask32 m6 = _mm512_test_epi16_mask(idx, bit6);
    const __mmask32 m7 = _mm512_test_epi16_mask(idx, bit7);
    const __m512i low = _mm512_mask_blend_epi16(m6, _mm512_permutex2var_epi16(t[0], idx, t[1]),
                                                _mm512_permutex2var_epi16(t[2], idx, t[3]));
    const __m512i high = _mm512_mask_blend_epi16(m6, _mm512_permutex2var_epi16(t[4], idx, t[5]),
                                                 _mm512_permutex2var_epi16(t[6], idx, t[7]));
    const __m512i v = _mm512_mask_blend_epi16(m7, low, high);
    _mm512_storeu_ps(o + i, _mm512_cvtepi32_ps(_mm512_cvtepi16_epi32(_mm512_castsi512_si256(v))));
    _mm512_storeu_ps(o + i + 16,
                     _mm512_cvtepi32_ps(_mm512_cvtepi16_epi32(_mm512_extracti64x4_epi64(v, 1))));
  }
  for (; i < n; ++i) o[i] = static_cast<float>(table[c[i]]);
}
#endif

inline void map_codes_into(const uint8_t* c, float* o, int64_t n, const CodeMap& map) {
#ifdef HWCOST_X86
  if (g_simd >= 2 && map.has_narrow) return map_codes_permute(c, o, n, map.narrow);
#endif
  for (int64_t i = 0; i < n; ++i) o[i] = map.values[c[i]];
}

// table[codes] as float32, in the codes' shape.
at::Tensor map_codes(const at::Tensor& codes, const float* table) {
  at::Tensor f = at::empty(codes.sizes(), codes.options().dtype(at::kFloat));
  const uint8_t* c = codes.data_ptr<uint8_t>();
  float* o = f.data_ptr<float>();
  const CodeMap map(table);
  at::parallel_for(0, codes.numel(), 16384, [&](int64_t b, int64_t e) {
    map_codes_into(c + b, o + b, e - b, map);
  });
  return f;
}

// out[n][m] = sum_k a[n][k] * b[m][k] in 16 lanes per dot product.  The lanes add in another
// order than a sequential sum, which is exact here (integers below 2**24 throughout).
constexpr int64_t kSmallGemm = 1 << 18;
HWCOST_CLONES void small_gemm_nt(const float* __restrict a, const float* __restrict b,
                                 float* __restrict out, int64_t N, int64_t M, int64_t K) {
  for (int64_t n = 0; n < N; ++n)
    for (int64_t m = 0; m < M; ++m) {
      const float* x = a + n * K;
      const float* y = b + m * K;
      float lanes[16] = {0.0f};
      int64_t k = 0;
      for (; k + 16 <= K; k += 16)
        for (int j = 0; j < 16; ++j) lanes[j] += x[k + j] * y[k + j];
      float sum = 0.0f;
      for (int j = 0; j < 16; ++j) sum += lanes[j];
      for (; k < K; ++k) sum += x[k] * y[k];
      out[n * M + m] = sum;
    }
}

#ifdef HWCOST_X86
// small_gemm_nt with four output columns per pass over a row of `a`, in registers.
HWCOST_AVX512 void small_gemm_nt_avx512(const float* __restrict a, const float* __restrict b,
                                       float* __restrict out, int64_t N, int64_t M, int64_t K) {
  const __mmask16 tail = static_cast<__mmask16>((1u << (K % 16)) - 1u);
  const int64_t kfull = K - K % 16;
  for (int64_t n = 0; n < N; ++n) {
    const float* x = a + n * K;
    int64_t m = 0;
    for (; m + 4 <= M; m += 4) {
      const float* y0 = b + m * K;
      __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
      for (int64_t k = 0; k < kfull; k += 16) {
        const __m512 xv = _mm512_loadu_ps(x + k);
        s0 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(y0 + k), s0);
        s1 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(y0 + K + k), s1);
        s2 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(y0 + 2 * K + k), s2);
        s3 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(y0 + 3 * K + k), s3);
      }
      if (tail) {
        const __m512 xv = _mm512_maskz_loadu_ps(tail, x + kfull);
        s0 = _mm512_fmadd_ps(xv, _mm512_maskz_loadu_ps(tail, y0 + kfull), s0);
        s1 = _mm512_fmadd_ps(xv, _mm512_maskz_loadu_ps(tail, y0 + K + kfull), s1);
        s2 = _mm512_fmadd_ps(xv, _mm512_maskz_loadu_ps(tail, y0 + 2 * K + kfull), s2);
        s3 = _mm512_fmadd_ps(xv, _mm512_maskz_loadu_ps(tail, y0 + 3 * K + kfull), s3);
      }
      out[n * M + m] = _mm512_reduce_add_ps(s0);
      out[n * M + m + 1] = _mm512_reduce_add_ps(s1);
      out[n * M + m + 2] = _mm512_reduce_add_ps(s2);
      out[n * M + m + 3] = _mm512_reduce_add_ps(s3);
    }
    for (; m < M; ++m) {   // the last columns, one at a time
      const float* y = b + m * K;
      __m512 s0 = _mm512_setzero_ps();
      for (int64_t k = 0; k < kfull; k += 16)
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + k), _mm512_loadu_ps(y + k), s0);
      if (tail)
        s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, x + kfull),
                             _mm512_maskz_loadu_ps(tail, y + kfull), s0);
      out[n * M + m] = _mm512_reduce_add_ps(s0);
    }
  }
}
#endif

// The float32 convolution of u[x] with v[w] (one table's factors, `table` = u then v, 512
// floats): (N, M, P, Q), every entry an exact integer (the bound is checked here); or an
// undefined tensor where torch would not convolve exactly (conv_sums_exact), and the caller
// looks up instead.  `x` is the activation codes (uint8), or already u[codes] (float32).
at::Tensor factored_conv(const at::Tensor& x, const at::Tensor& w, const float* table,
                         int64_t sh, int64_t sw, int64_t dh, int64_t dw, int64_t groups) {
  const int64_t K = w.size(1) * w.size(2) * w.size(3);
  float umax = 0.0f, vmax = 0.0f;
  for (int c = 0; c < 256; ++c) {
    umax = std::max(umax, std::fabs(table[c]));
    vmax = std::max(vmax, std::fabs(table[256 + c]));
  }
  TORCH_CHECK(static_cast<double>(K) * umax * vmax < 16777216.0,
              "factored sums would not be exact in float32");
  const std::vector<int64_t> stride{sh, sw}, padding{0, 0}, dilation{dh, dw};
  const at::Tensor xf = x.scalar_type() == at::kFloat ? x : map_codes(x, table);
  const at::Tensor wf = map_codes(w, table + 256);
  if (groups == 1 && x.size(2) == 1 && x.size(3) == 1 && w.size(2) == 1 && w.size(3) == 1) {
    // a linear layer: one GEMM, without the convolution's set-up (about 100 us at 64 x 256);
    // a small one here in this thread (torch's threaded GEMM spent more time starting and
    // joining its threads than multiplying at 64 x 256 x 10)
    const int64_t N = x.size(0), C = x.size(1), M = w.size(0);
    if (N * M * C <= kSmallGemm) {
      at::Tensor out = at::empty({N, M, 1, 1}, xf.options());
#ifdef HWCOST_X86
      if (g_simd >= 2)
        small_gemm_nt_avx512(xf.data_ptr<float>(), wf.data_ptr<float>(), out.data_ptr<float>(),
                             N, M, C);
      else
#endif
        small_gemm_nt(xf.data_ptr<float>(), wf.data_ptr<float>(), out.data_ptr<float>(), N, M,
                      C);
      return out;
    }
    return at::mm(xf.view({N, C}), wf.view({M, C}).t()).view({N, M, 1, 1});
  }
  if (!conv_sums_exact(xf, wf, stride, padding, dilation, groups)) return at::Tensor();
  return at::conv2d(xf, wf, at::Tensor(), stride, padding, dilation, groups).contiguous();
}

// out (N, T * Mw or Mw, P, Q) int32 in conv2d_lut_impl's layout: blocks == 0, every table
// over the whole batch, channels [group][table][weight row]; blocks == 1, the batch as T
// blocks, block t by table t.
// Returns false, out untouched, where torch would not convolve exactly (conv_sums_exact).
bool factored_sums(const at::Tensor& x, const at::Tensor& w, const at::Tensor& factors,
                   int64_t sh, int64_t sw, int64_t dh, int64_t dw, int64_t groups,
                   int64_t blocks, at::Tensor& out) {
  const int64_t T = factors.size(0);
  const int64_t N = x.size(0), Mw = w.size(0);
  const float* fp = factors.data_ptr<float>();
  const int64_t mw = Mw / groups, M = out.size(1), mg = M / groups;
  const int64_t P = out.size(2), Q = out.size(3), L = P * Q;
  const int64_t Nb = blocks ? N / T : N;   // samples each table reads
  int32_t* op = out.data_ptr<int32_t>();
  for (int64_t t = 0; t < T; ++t) {
    const at::Tensor xs = blocks ? x.narrow(0, t * Nb, Nb).contiguous() : x;
    const at::Tensor y = factored_conv(xs, w, fp + t * 512, sh, sw, dh, dw, groups);
    if (!y.defined()) return false;   // the same geometry for every table: t == 0
    const float* yp = y.data_ptr<float>();
    const int64_t n0 = blocks ? t * Nb : 0;
    at::parallel_for(0, Nb * Mw, std::max<int64_t>(1, 16384 / std::max<int64_t>(L, 1)),
                     [&](int64_t b, int64_t e) {
      for (int64_t nm = b; nm < e; ++nm) {
        const int64_t n = nm / Mw, m = nm % Mw, g = m / mw, i = m % mw;
        const int64_t c = blocks ? m : g * mg + t * mw + i;
        int32_t* dst = op + ((n0 + n) * M + c) * L;
        const float* src = yp + nm * L;
        for (int64_t l = 0; l < L; ++l) dst[l] = static_cast<int32_t>(src[l]);
      }
    });
  }
  return true;
}

// lutT: the LUT transposed, (2**b, 2**a): row = weight code, contiguous over activation codes;
// or a stack of T such transposed LUTs, (T, 2**b, 2**a).  With a stack:
//   blocks == 0: every weight row is looked up in each of the T tables, one pass over the
//     same codes; the output has T * M channels in [group][table][channel] order (the caller
//     reorders).
//   blocks == 1: the batch is T equal blocks and block t is looked up in table t only (the
//     candidate multipliers of a search edge, each on its own copy of the activations, with
//     one weight tensor); the output has M channels.
// pack: Pack mode every LUT allows (its entries fit int16 / uint16), decided by the caller.
// What the direct VBMI depthwise path can hand each (sample, group)'s int32 sums to instead
// of copying them out: their rows of `mg` x Lp positions in the input's row pitch, and the
// output tensor's storage.  approx_conv2d finishes its float output there, while the sums
// are in cache.
using DepthwiseEpilogue = std::function<void(int64_t ng, const int32_t* sums, int64_t Lp,
                                             int32_t* out)>;

at::Tensor conv2d_lut_impl(const at::Tensor& x, const at::Tensor& w, const at::Tensor& lutT,
                           const at::Tensor& planes, const at::Tensor& centres, int64_t sh,
                           int64_t sw, int64_t dh, int64_t dw, int64_t groups, int64_t pack,
                           int64_t blocks, const DepthwiseEpilogue* epilogue,
                           bool* epilogue_ran, const at::Tensor& factors) {
  check_operands(x, w, lutT, lutT.size(-1), lutT.size(-2), 4);
  TORCH_CHECK(sh >= 1 && sw >= 1 && dh >= 1 && dw >= 1 && groups >= 1, "bad conv parameters");
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t Mw = w.size(0), Cg = w.size(1), R = w.size(2), S = w.size(3);
  TORCH_CHECK(C % groups == 0 && Mw % groups == 0 && Cg == C / groups, "bad groups");
  const int64_t T = lutT.dim() == 3 ? lutT.size(0) : 1;  // tables
  const int64_t B = lutT.size(-2);                        // weight-code width of a table
  TORCH_CHECK(blocks == 0 || N % T == 0, "the batch must split into one block per table");
  TORCH_CHECK(centres.scalar_type() == at::kInt && centres.is_contiguous() &&
                  centres.numel() == T,
              "centres must be one int32 per table");
  const int64_t sets = blocks ? T : 1;     // table sets (a sample reads one set)
  const int64_t tps = blocks ? 1 : T;      // tables per set
  const int64_t M = tps * Mw;              // output channels
  const int64_t Nset = N / sets;           // samples per set
  const int64_t P = (H - dh * (R - 1) - 1) / sh + 1;
  const int64_t Q = (W - dw * (S - 1) - 1) / sw + 1;
  TORCH_CHECK(H - dh * (R - 1) - 1 >= 0 && W - dw * (S - 1) - 1 >= 0,
              "input smaller than the dilated kernel");
  at::Tensor out = at::empty({N, M, P, Q}, x.options().dtype(at::kInt));
  if (out.numel() == 0) return out;
  if (factors.numel() > 0 && fp32_is_exact()) {
    TORCH_CHECK(factors.scalar_type() == at::kFloat && factors.is_contiguous() &&
                    factors.dim() == 3 && factors.size(0) == T && factors.size(1) == 2 &&
                    factors.size(2) == 256,
                "factors must be (tables, 2, 256) float32");
    if (factored_sums(x, w, factors, sh, sw, dh, dw, groups, blocks, out)) return out;
  }

  const int64_t A = lutT.size(-1);  // activation-code width of every table
  const int64_t mw = Mw / groups;   // weight rows per group
  const int64_t mg = M / groups;    // output rows per group: tps tables x mw weight rows
  const int64_t K = Cg * R * S;
  const int64_t L = P * Q;
  const uint8_t* xp = x.data_ptr<uint8_t>();
  const uint8_t* wp = w.data_ptr<uint8_t>();
  const int32_t* base = lutT.data_ptr<int32_t>();
  const int32_t* cp = centres.data_ptr<int32_t>();
  int32_t* op = out.data_ptr<int32_t>();
  const bool vbmi = vbmi_usable(planes, T, B);

  // Table offsets laid out [set][group][k][j] so a tile's offsets are adjacent; output row
  // j = t * mw + i of a group reads weight row i in table t (t = the set's table in block
  // mode).  VBMI plane offsets share the layout; rbias[set][j] = K * centre of j's table.
  const int64_t cols_per_set = groups * K * mg;
  std::vector<int32_t> toff(static_cast<size_t>(sets * cols_per_set));
  std::vector<int32_t> poff(vbmi ? toff.size() : 0);
  std::vector<int32_t> rbias(static_cast<size_t>(sets * mg));
  for (int64_t st = 0; st < sets; ++st)
    for (int64_t tt = 0; tt < tps; ++tt) {
      const int64_t t = blocks ? st : tt;
      for (int64_t i = 0; i < mw; ++i)
        rbias[st * mg + tt * mw + i] = static_cast<int32_t>(
            static_cast<uint32_t>(K) * static_cast<uint32_t>(cp[t]));
      for (int64_t g = 0; g < groups; ++g)
        for (int64_t i = 0; i < mw; ++i)
          for (int64_t k = 0; k < K; ++k) {
            const int64_t code = t * B + wp[(g * mw + i) * K + k];
            const size_t at = static_cast<size_t>(((st * groups + g) * K + k) * mg + tt * mw + i);
            toff[at] = static_cast<int32_t>(code * A);
            if (vbmi) poff[at] = static_cast<int32_t>(code * 512);
          }
    }
  // Fuse output channels when the LUT allows it and the tables are reused enough (not on the
  // VBMI path, which looks up whole vectors per table column).
  const Tables tb = make_tables(base, toff, sets * groups, K, mg, A, vbmi ? kNoPack : pack,
                                Nset * L);
  const int64_t Jt = tb.J;
  const uint8_t* pl = vbmi ? planes.data_ptr<uint8_t>() : nullptr;
  auto gemm_for = [&](int64_t n, int64_t g, const uint8_t* idx, const int64_t* koff,
                      int32_t* dst, int64_t ldo) {
    const int64_t st = blocks ? n / Nset : 0;
    const int64_t c0 = (st * groups + g) * K;
    LutGemm gm{tb.base, tb.cols + c0 * Jt, Jt, K, idx, koff, dst, ldo, tb.pack, mg, tb.per};
    if (vbmi) {
      gm.planes = pl;
      gm.poff = poff.data() + c0 * mg;
      gm.rbias = rbias.data() + st * mg;
    }
    return gm;
  };

  const int64_t nthreads = at::get_num_threads();
  if (vbmi && Cg == 1) {
    // Direct VBMI path for depthwise (and depth-multiplier) convs.  An im2col would copy as
    // many bytes as the single output row looks up (measured: copying took 4x the look-ups'
    // time).  Instead positions are numbered in the row pitch of the input, l = p * W + q, so
    // at stride 1 tap (r, s) reads the input plane itself from r * dh * W + s * dw on; the
    // W - Q columns past each output row are computed and dropped ((W - Q) / W extra
    // look-ups: 20 % for a padded 5x5 on 16x16).  Strided convs first split each plane into
    // sh x sw phase planes of Hq x Wq (phase (a, b) holds rows a, a + sh, ... and columns
    // b, b + sw, ...), which tap (r, s) reads the same way: phase ((r dh) % sh, (s dw) % sw)
    // from row (r dh) / sh, column (s dw) / sw on, in the phase pitch Wq; the split copies
    // H W bytes where an im2col copies R S P Q (6x more for a 5x5 at stride 2).
    // Bounds: an output kept (p < P, q < Q) reads phase row p + (r dh) / sh, which is input
    // row p sh + r dh <= H - 1, and likewise a real column, so only dropped positions can
    // read a phase's filler past its real rows or columns; the last position read,
    // (P - 1 + (R - 1) dh / sh) Wq + Q - 1 + (S - 1) dw / sw, is inside the phase (at stride
    // 1: H W - 1, the plane's last byte).
    const bool split = sh > 1 || sw > 1;
    const int64_t Hq = (H + sh - 1) / sh, Wq = (W + sw - 1) / sw;
    const int64_t Lp = (P - 1) * Wq + Q;
    std::vector<int64_t> koffd(static_cast<size_t>(K));
    for (int64_t r = 0; r < R; ++r)
      for (int64_t s = 0; s < S; ++s)
        koffd[r * S + s] = (((r * dh) % sh) * sw + (s * dw) % sw) * Hq * Wq +
                           (r * dh) / sh * Wq + (s * dw) / sw;
    // The caller's epilogue expects stride-1 sums in the input's pitch.
    const DepthwiseEpilogue* finish = split ? nullptr : epilogue;
    at::parallel_for(0, N * groups, 1, [&](int64_t b, int64_t e) {
      std::vector<int32_t> buf(static_cast<size_t>(mg * Lp));
      std::vector<uint8_t> phased(split ? static_cast<size_t>(sh * sw * Hq * Wq) : 0, 0);
      for (int64_t ng = b; ng < e; ++ng) {
        const int64_t n = ng / groups, g = ng % groups;
        const uint8_t* src = xp + ng * H * W;
        if (split) {
          for (int64_t h = 0; h < H; ++h) {
            const int64_t a = h % sh, i = h / sh;
            const uint8_t* row = src + h * W;
            for (int64_t ph = 0; ph < sw; ++ph) {
              uint8_t* dst = phased.data() + ((a * sw + ph) * Hq + i) * Wq;
              const int64_t cnt = (W - ph + sw - 1) / sw;
              for (int64_t jx = 0; jx < cnt; ++jx) dst[jx] = row[ph + jx * sw];
            }
          }
          src = phased.data();
        }
        const LutGemm gm = gemm_for(n, g, src, koffd.data(), buf.data(), Lp);
        gemm(gm, 0, Jt, 0, Lp);
        if (finish != nullptr) {
          (*finish)(ng, buf.data(), Lp, op);
          continue;
        }
        for (int64_t j = 0; j < mg; ++j)
          for (int64_t p = 0; p < P; ++p)
            std::memcpy(op + ((n * M + g * mg + j) * P + p) * Q, buf.data() + j * Lp + p * Wq,
                        static_cast<size_t>(Q) * sizeof(int32_t));
      }
    });
    if (epilogue_ran != nullptr) *epilogue_ran = finish != nullptr;
    return out;
  }
  if (vbmi) {
    // Wide GEMMs: a VBMI tile looks up 256 positions per table column it loads, so the
    // columns of several samples (of one table set) are concatenated until a GEMM has
    // at least 512 positions; outputs go through a per-task buffer.  Depthwise convs take
    // this path too (their per-row GEMMs would be a few positions wide).
    int64_t chunk = std::clamp<int64_t>((512 + L - 1) / L, 1, Nset);
    chunk = std::max<int64_t>(1, std::min(chunk, (int64_t{1} << 20) / std::max<int64_t>(1, K * L)));
    const int64_t chunks_per_set = (Nset + chunk - 1) / chunk;
    const int64_t ntasks = sets * chunks_per_set * groups;
    auto run_task = [&](int64_t task, std::vector<uint8_t>& cols, std::vector<int32_t>& buf,
                        bool inner_parallel) {
      const int64_t g = task % groups;
      const int64_t sc = task / groups;
      const int64_t st = sc / chunks_per_set, c = sc % chunks_per_set;
      const int64_t n0 = st * Nset + c * chunk;
      const int64_t nb = std::min(chunk, (st + 1) * Nset - n0);
      const int64_t Lw = nb * L;
      cols.resize(static_cast<size_t>(K * Lw));
      if (nb > 1) buf.resize(static_cast<size_t>(mg * Lw));
      if (L == 1) {
        // 1x1 outputs (linear layers): column k gathers one code per sample.
        if (H * W == 1) {
          // A linear layer: each sample's codes are contiguous, so read them in order.
          uint8_t* o = cols.data();
          for (int64_t i = 0; i < nb; ++i) {
            const uint8_t* in = xp + (n0 + i) * C + g * Cg;
            for (int64_t k = 0; k < K; ++k) o[k * Lw + i] = in[k];
          }
        } else {
          for (int64_t k = 0; k < K; ++k) {
            const int64_t s = k % S, r = (k / S) % R, ch = k / (R * S);
            const uint8_t* in = xp + ((n0 * C + g * Cg + ch) * H + r * dh) * W + s * dw;
            uint8_t* o = cols.data() + k * Lw;
            for (int64_t i = 0; i < nb; ++i) o[i] = in[i * C * H * W];
          }
        }
      } else {
        for (int64_t i = 0; i < nb; ++i)
          for (int64_t k = 0; k < K; ++k) {
            const int64_t s = k % S, r = (k / S) % R, ch = k / (R * S);
            const uint8_t* in = xp + (((n0 + i) * C + g * Cg + ch) * H + r * dh) * W + s * dw;
            copy_rows(cols.data() + k * Lw + i * L, in, P, Q, sh * W, sw);
          }
      }
      std::vector<int64_t> koff(static_cast<size_t>(K));
      for (int64_t k = 0; k < K; ++k) koff[k] = k * Lw;
      // One sample: its output rows are contiguous, so the GEMM writes them in place.
      int32_t* dst = nb == 1 ? op + (n0 * M + g * mg) * L : buf.data();
      const LutGemm gm = gemm_for(n0, g, cols.data(), koff.data(), dst, Lw);
      if (inner_parallel) {
        gemm_parallel(gm, Lw);
      } else {
        gemm(gm, 0, Jt, 0, Lw);
      }
      if (nb == 1) return;
      for (int64_t i = 0; i < nb; ++i)
        for (int64_t j = 0; j < mg; ++j)
          std::memcpy(op + ((n0 + i) * M + g * mg + j) * L, buf.data() + j * Lw + i * L,
                      static_cast<size_t>(L) * sizeof(int32_t));
    };
    if (ntasks >= nthreads || nthreads == 1) {
      at::parallel_for(0, ntasks, 1, [&](int64_t b, int64_t e) {
        std::vector<uint8_t> cols;
        std::vector<int32_t> buf;
        for (int64_t t = b; t < e; ++t) run_task(t, cols, buf, false);
      });
    } else {
      std::vector<uint8_t> cols;
      std::vector<int32_t> buf;
      for (int64_t t = 0; t < ntasks; ++t) run_task(t, cols, buf, true);
    }
    return out;
  }

  if (Cg == 1 && Q >= 8) {
    // Direct path (depthwise and depth-multiplier convs): no im2col.  Each output row is a
    // LUT-GEMM whose index rows are the input rows under each tap.  Horizontal stride is
    // handled by splitting each plane into `sw` column phases so every tap reads contiguously.
    const int64_t Wp = (W + sw - 1) / sw;
    const int64_t plane = sw * H * Wp;
    auto split_phases = [&](const uint8_t* in, uint8_t* o) {
      for (int64_t h = 0; h < H; ++h) {
        const uint8_t* row = in + h * W;
        for (int64_t ph = 0; ph < sw; ++ph) {
          uint8_t* dst = o + (ph * H + h) * Wp;
          const int64_t cnt = (W - ph + sw - 1) / sw;
          for (int64_t jx = 0; jx < cnt; ++jx) dst[jx] = row[ph + jx * sw];
        }
      }
    };
    std::vector<int64_t> koff(static_cast<size_t>(K));
    for (int64_t r = 0; r < R; ++r)
      for (int64_t s = 0; s < S; ++s) {
        const int64_t col = s * dw;
        koff[r * S + s] = ((col % sw) * H + r * dh) * Wp + col / sw;
      }
    auto run_row = [&](int64_t ng, const uint8_t* src_plane, int64_t p) {
      const int64_t g = ng % groups, n = ng / groups;
      const LutGemm gm = gemm_for(n, g, src_plane + p * sh * Wp, koff.data(),
                                  op + ((n * M + g * mg) * P + p) * Q, L);
      gemm(gm, 0, Jt, 0, Q);
    };
    // Row-packed tables (see build_row_packed) when the LUT's entries fit 16 bits, some row
    // class has a group of 4 rows, and there are enough (table set, channel group) tasks to
    // share the threads.  Building costs about one lookup per table word; the rule below (the
    // lookups saved over a filter's positions must exceed the words built) matched the
    // measured break-even on the development machine: 5x5 and 3x3 kernels pay from 8x8
    // outputs at batch 16, stride-2 5x5 kernels (kd = 2) from 16x16.  g_pack_min_reuse == 0
    // (tests) forces it; a huge one (benchmarks) turns it off.
    const int64_t step = dh / std::gcd(dh, sh);
    const int64_t kd = step * sh / dh;
    const int64_t KP = row_pack_steps(R, S, kd);
    const int64_t row_tables = mg * KP * A;  // 64-bit words per task
    const bool row_pack_pays =
        g_pack_min_reuse == 0 ||
        (Nset * L >= g_pack_min_reuse && Nset * L * (4 * R * S - KP) >= 4 * KP * A);
    if (pack != kNoPack && KP > 0 && P >= 3 * step + 1 && row_pack_pays &&
        (sets * groups >= 2 * nthreads || nthreads == 1) && row_tables <= (int64_t{1} << 19)) {
      std::vector<int64_t> koffp(static_cast<size_t>(KP));
      for (int64_t e = 0; e < 3 * kd + R; ++e)
        for (int64_t s = 0; s < S; ++s) {
          const int64_t col = s * dw;
          koffp[e * S + s] = ((col % sw) * H + e * dh) * Wp + col / sw;
        }
      std::vector<int32_t> ptoff(static_cast<size_t>(KP));
      for (int64_t t = 0; t < KP; ++t) ptoff[t] = static_cast<int32_t>(t * 2 * A);
      at::parallel_for(0, sets * groups, 1, [&](int64_t b, int64_t e) {
        std::vector<uint64_t> tables(static_cast<size_t>(row_tables));
        std::vector<uint16_t> taps(static_cast<size_t>((K + 1) * A), 0);  // + zero column
        std::vector<uint8_t> phased(sw > 1 ? static_cast<size_t>(plane) : 0);
        for (int64_t task = b; task < e; ++task) {
          const int64_t st = task / groups, g = task % groups;
          for (int64_t j = 0; j < mg; ++j) {
            for (int64_t k = 0; k < K; ++k)
              narrow_u16(taps.data() + k * A,
                         base + toff[static_cast<size_t>(((st * groups + g) * K + k) * mg + j)],
                         A);
            build_row_packed(tables.data() + j * KP * A, taps.data(), R, S, kd, A);
          }
          for (int64_t n = st * Nset; n < (st + 1) * Nset; ++n) {
            const int64_t ng = n * groups + g;
            const uint8_t* src = xp + ng * H * W;
            if (sw > 1) {
              split_phases(src, phased.data());
              src = phased.data();
            }
            for (int64_t a = 0; a < step; ++a) {
              const int64_t rows_in_class = (P - a + step - 1) / step;
              int64_t i = 0;
              for (; i + 4 <= rows_in_class; i += 4) {
                const int64_t p0 = a + i * step;
                for (int64_t j = 0; j < mg; ++j) {
                  const LutGemm gm{reinterpret_cast<const int32_t*>(tables.data() + j * KP * A),
                                   ptoff.data(), 1, KP, src + p0 * sh * Wp, koffp.data(),
                                   op + ((n * M + g * mg + j) * P + p0) * Q, step * Q,
                                   static_cast<int>(pack), 4, 4};
                  gemm(gm, 0, 1, 0, Q);
                }
              }
              for (; i < rows_in_class; ++i) run_row(ng, src, a + i * step);
            }
          }
        }
      });
      return out;
    }
    if (N * groups >= 2 * nthreads) {
      // One plane per task: its phase split stays in cache.
      at::parallel_for(0, N * groups, 1, [&](int64_t b, int64_t e) {
        std::vector<uint8_t> phased(sw > 1 ? static_cast<size_t>(plane) : 0);
        for (int64_t ng = b; ng < e; ++ng) {
          const uint8_t* src = xp + ng * H * W;
          if (sw > 1) {
            split_phases(src, phased.data());
            src = phased.data();
          }
          for (int64_t p = 0; p < P; ++p) run_row(ng, src, p);
        }
      });
    } else {
      std::vector<uint8_t> phased(sw > 1 ? static_cast<size_t>(N * C * plane) : 0);
      if (sw > 1) {
        at::parallel_for(0, N * C, 1, [&](int64_t b, int64_t e) {
          for (int64_t pl2 = b; pl2 < e; ++pl2)
            split_phases(xp + pl2 * H * W, phased.data() + pl2 * plane);
        });
      }
      const uint8_t* src = sw > 1 ? phased.data() : xp;
      const int64_t pstride = sw > 1 ? plane : H * W;
      at::parallel_for(0, N * groups * P, 1, [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t) run_row(t / P, src + (t / P) * pstride, t % P);
      });
    }
    return out;
  }

  // General path: im2col of uint8 codes (skipped for 1x1 stride-1 kernels, whose input plane
  // already is the column matrix), then a LUT-GEMM per (sample, group).  A task takes a batch
  // of samples (of one table set) and sweeps the table columns outermost, so each column's
  // tables (up to K KiB) stay in cache across the batch instead of being streamed per sample.
  const bool direct_cols = (R == 1 && S == 1 && sh == 1 && sw == 1);
  std::vector<int64_t> koff(static_cast<size_t>(K));
  for (int64_t k = 0; k < K; ++k) koff[k] = k * L;
  auto im2col = [&](int64_t n, int64_t g, uint8_t* cols, int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k) {
      const int64_t s = k % S, r = (k / S) % R, c = k / (R * S);
      const uint8_t* in = xp + ((n * C + g * Cg + c) * H + r * dh) * W + s * dw;
      uint8_t* o = cols + k * L;
      for (int64_t p = 0; p < P; ++p) {
        const uint8_t* row = in + p * sh * W;
        if (sw == 1) {
          std::memcpy(o + p * Q, row, static_cast<size_t>(Q));
        } else {
          for (int64_t q = 0; q < Q; ++q) o[p * Q + q] = row[q * sw];
        }
      }
    }
  };
  auto make_gemm = [&](int64_t n, int64_t g, const uint8_t* cols) {
    return gemm_for(n, g, cols, koff.data(), op + (n * M + g * mg) * L, L);
  };
  // Table columns per register tile: 4 plain, 2 pairs, 1 quad.
  const int64_t jstep = tb.per == 1 ? 4 : (tb.per == 2 ? 2 : 1);
  // Samples per task: their index columns should fit ~256 KiB of cache, and there should be
  // at least two tasks per thread.  A batch never crosses a table set.
  int64_t batch = std::clamp<int64_t>((256 << 10) / (K * L), 1, 16);
  batch = std::min(batch, std::max<int64_t>(1, Nset / (2 * nthreads)));
  const int64_t per_set = (Nset + batch - 1) / batch;
  const int64_t nbatches = sets * per_set;
  if (nbatches * groups >= 2 * nthreads || nthreads == 1) {
    at::parallel_for(0, nbatches * groups, 1, [&](int64_t b, int64_t e) {
      std::vector<uint8_t> cols(direct_cols ? 0 : static_cast<size_t>(batch * K * L));
      std::vector<const uint8_t*> src(static_cast<size_t>(batch));
      for (int64_t t = b; t < e; ++t) {
        const int64_t g = t % groups, bi = t / groups;
        const int64_t n0 = (bi / per_set) * Nset + (bi % per_set) * batch;
        const int64_t nb = std::min(batch, (bi / per_set + 1) * Nset - n0);
        for (int64_t i = 0; i < nb; ++i) {
          if (direct_cols) {
            src[i] = xp + ((n0 + i) * C + g * Cg) * H * W;
          } else {
            im2col(n0 + i, g, cols.data() + i * K * L, 0, K);
            src[i] = cols.data() + i * K * L;
          }
        }
        for (int64_t j = 0; j < Jt; j += jstep)
          for (int64_t i = 0; i < nb; ++i)
            gemm(make_gemm(n0 + i, g, src[i]), j, std::min(Jt, j + jstep), 0, L);
      }
    });
  } else {
    // Few (sample, group) pairs: parallelise inside each one instead.
    std::vector<uint8_t> cols(direct_cols ? 0 : static_cast<size_t>(K * L));
    for (int64_t ng = 0; ng < N * groups; ++ng) {
      const int64_t n = ng / groups, g = ng % groups;
      const uint8_t* c = xp + (n * C + g * Cg) * H * W;
      if (!direct_cols) {
        at::parallel_for(0, K, 16, [&](int64_t b, int64_t e) { im2col(n, g, cols.data(), b, e); });
        c = cols.data();
      }
      gemm_parallel(make_gemm(n, g, c), L);
    }
  }
  return out;
}

at::Tensor conv2d_lut(const at::Tensor& x, const at::Tensor& w, const at::Tensor& lutT,
                      const at::Tensor& planes, const at::Tensor& centres, int64_t sh,
                      int64_t sw, int64_t dh, int64_t dw, int64_t groups, int64_t pack,
                      int64_t blocks, const at::Tensor& factors) {
  return conv2d_lut_impl(x, w, lutT, planes, centres, sh, sw, dh, dw, groups, pack, blocks,
                         nullptr, nullptr, factors);
}

// ---------------------------------------------------------------------------------------------
// linear

at::Tensor linear_lut(const at::Tensor& x, const at::Tensor& w, const at::Tensor& lut,
                      const at::Tensor& lutT, const at::Tensor& planes,
                      const at::Tensor& centres, int64_t pack) {
  check_operands(x, w, lut, lut.size(0), lut.size(1), 2);
  TORCH_CHECK(lutT.scalar_type() == at::kInt && lutT.is_contiguous() &&
                  lutT.size(0) == lut.size(1) && lutT.size(1) == lut.size(0),
              "lutT must be the contiguous transpose of lut");
  TORCH_CHECK(centres.scalar_type() == at::kInt && centres.numel() == 1,
              "centres must be one int32");
  const int64_t N = x.size(0), K = x.size(1), M = w.size(0);
  TORCH_CHECK(w.size(1) == K, "linear: x and w disagree on K");
  at::Tensor out = at::empty({N, M}, x.options().dtype(at::kInt));
  if (out.numel() == 0) return out;
  if (K == 0) {
    std::memset(out.data_ptr<int32_t>(), 0, static_cast<size_t>(N * M) * sizeof(int32_t));
    return out;
  }
  const uint8_t* xp = x.data_ptr<uint8_t>();
  const uint8_t* wp = w.data_ptr<uint8_t>();
  std::vector<int64_t> koff(static_cast<size_t>(K));
  // The side with more rows is vectorised over (the index side); the other picks tables.
  // The VBMI planes are those of lutT (tables by weight code), so they serve by_weight only.
  const bool by_weight = N >= M;
  const int64_t Lv = by_weight ? N : M;   // vectorised positions
  const int64_t J = by_weight ? M : N;    // tables per k
  const uint8_t* ip = by_weight ? xp : wp;
  const uint8_t* tp = by_weight ? wp : xp;
  const int64_t width = by_weight ? lut.size(0) : lut.size(1);
  const bool vbmi = by_weight && vbmi_usable(planes, 1, lut.size(1));
  std::vector<uint8_t> idxT(static_cast<size_t>(K * Lv));
  for (int64_t l = 0; l < Lv; ++l)
    for (int64_t k = 0; k < K; ++k) idxT[k * Lv + l] = ip[l * K + k];
  for (int64_t k = 0; k < K; ++k) koff[k] = k * Lv;
  std::vector<int32_t> toff(static_cast<size_t>(K * J));
  std::vector<int32_t> poff(vbmi ? toff.size() : 0);
  for (int64_t j = 0; j < J; ++j)
    for (int64_t k = 0; k < K; ++k) {
      toff[k * J + j] = static_cast<int32_t>(tp[j * K + k]) * static_cast<int32_t>(width);
      if (vbmi) poff[k * J + j] = static_cast<int32_t>(tp[j * K + k]) * 512;
    }
  const int32_t* base = by_weight ? lutT.data_ptr<int32_t>() : lut.data_ptr<int32_t>();
  const Tables tb = make_tables(base, toff, 1, K, J, width, vbmi ? kNoPack : pack, Lv);
  std::vector<int32_t> rbias(static_cast<size_t>(J),
                             static_cast<int32_t>(static_cast<uint32_t>(K) *
                                                  static_cast<uint32_t>(
                                                      centres.data_ptr<int32_t>()[0])));
  if (by_weight) {
    at::Tensor outT = at::empty({M, N}, out.options());
    LutGemm gm{tb.base, tb.cols, tb.J, K, idxT.data(), koff.data(), outT.data_ptr<int32_t>(),
               N, tb.pack, M, tb.per};
    if (vbmi) {
      gm.planes = planes.data_ptr<uint8_t>();
      gm.poff = poff.data();
      gm.rbias = rbias.data();
    }
    gemm_parallel(gm, N);
    out.copy_(outT.t());
  } else {
    LutGemm gm{tb.base, tb.cols, tb.J, K, idxT.data(), koff.data(), out.data_ptr<int32_t>(),
               M, tb.pack, N, tb.per};
    gemm_parallel(gm, M);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The whole forward of an approximate conv layer in one call.
//
// A small layer's LUT look-ups take tens of microseconds; done as separate torch ops, the
// quantization, padding, zero-point corrections and scaling around them took ~400 us per call
// (dozens of tiny ops, each with its dispatch and allocation).  This does them in one pass
// each, with exactly the arithmetic of the op-by-op path in layers.py:
//   q = clamp(nearbyint(v / s + z)) in float32 (torch.round is round-half-even too);
//   acc = sum lut[codes] - zw[m] * sum_window(qx) - zx * (sum(qw[m]) - K * zw[m])  (int32);
//   out = bias[m] + float(acc) * float32(sx * sw[m]).
// Returns (out, padded activation codes, weight codes): the backward pass reads the codes.

// round(v) clamped to [lo, hi], round half to even like torch.round.  v is clamped to
// [lo - 1, hi + 1] first (same result after the final clamp), which keeps it far below 2**22,
// where adding and subtracting 1.5 * 2**23 rounds to the nearest even integer in the default
// rounding mode.  Unlike std::nearbyint this vectorizes with plain SSE2.
inline float round_clamp(float v, float lo, float hi) {
  constexpr float kMagic = 12582912.0f;  // 1.5 * 2**23
  v = std::min(std::max(v, lo - 1.0f), hi + 1.0f);
  // (v + kMagic) - kMagic is not simplified: this file is built without -ffast-math
  v = (v + kMagic) - kMagic;
  return std::min(std::max(v, lo), hi);
}


// Items per parallel chunk so each chunk has ~16K elements of work: a parallel region costs
// microseconds to open and close, more than a small layer's whole elementwise pass.
inline int64_t grain_for(int64_t work_per_item) {
  return std::max<int64_t>(1, (int64_t{1} << 14) / std::max<int64_t>(1, work_per_item));
}


// Returns whether every input was finite: the check rides along the quantization pass (an
// exponent-bits test that vectorizes), so frozen-range layers need no separate min-max pass.
HWCOST_CLONES bool quantize_row(const float* __restrict in, uint8_t* __restrict out, int64_t n,
                                float s, float z, float lo, float hi, int32_t mask) {
  uint32_t bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, in + i, sizeof bits);
    bad |= static_cast<uint32_t>((bits & 0x7F800000u) == 0x7F800000u);
    out[i] = static_cast<uint8_t>(static_cast<int32_t>(round_clamp(in[i] / s + z, lo, hi)) & mask);
  }
  return bad == 0;
}

// One weight row's codes and the sum of its quantized values: the same arithmetic as the
// activations' (a vectorized clone: per layer call this loop was a fifth of a 256 -> 10
// linear layer's native time at batch 1).
HWCOST_CLONES uint32_t quantize_weight_row(const float* __restrict in, uint8_t* __restrict out,
                                           int64_t n, float s, float z, float lo, float hi,
                                           int32_t mask) {
  uint32_t acc = 0;
  for (int64_t k = 0; k < n; ++k) {
    const int32_t qi = static_cast<int32_t>(round_clamp(in[k] / s + z, lo, hi));
    out[k] = static_cast<uint8_t>(qi & mask);
    acc += static_cast<uint32_t>(qi);
  }
  return acc;
}

// One plane quantized into its padded place, border included, in one call: per-row calls
// (and per-row memset / memcpy) on 16-wide rows cost twice the quantization itself.
HWCOST_CLONES bool quantize_plane(const float* __restrict in, uint8_t* __restrict out,
                                  int64_t H, int64_t W, int64_t ph, int64_t pw, uint8_t zcode,
                                  float s, float z, float lo, float hi, int32_t mask) {
  const int64_t Wp = W + 2 * pw;
  uint32_t bad = 0;
  for (int64_t i = 0; i < ph * Wp; ++i) out[i] = zcode;
  for (int64_t h = 0; h < H; ++h) {
    uint8_t* row = out + (h + ph) * Wp;
    const float* src = in + h * W;
    for (int64_t q = 0; q < pw; ++q) row[q] = zcode;
    for (int64_t q = 0; q < W; ++q) {
      uint32_t bits;
      std::memcpy(&bits, src + q, sizeof bits);
      bad |= static_cast<uint32_t>((bits & 0x7F800000u) == 0x7F800000u);
      row[pw + q] =
          static_cast<uint8_t>(static_cast<int32_t>(round_clamp(src[q] / s + z, lo, hi)) & mask);
    }
    for (int64_t q = 0; q < pw; ++q) row[pw + W + q] = zcode;
  }
  uint8_t* bottom = out + (ph + H) * Wp;
  for (int64_t i = 0; i < ph * Wp; ++i) bottom[i] = zcode;
  return bad == 0;
}

#ifdef HWCOST_X86
// AVX-512 forms of quantize_plane and pitch16_sums (used from the AVX-512 gather level
// up).  On short rows the compiled clones spend most of their time in scalar loop
// tails (GCC vectorizes them 256 bits wide with a scalar epilogue); masked 512-bit loads and
// stores need no tail.  Same arithmetic: round half to even (vrndscaleps is exact where the
// magic-number rounding is), 16-bit wrap-around sums.
HWCOST_AVX512 bool quantize_plane_avx512(const float* __restrict in, uint8_t* __restrict out,
                                         int64_t H, int64_t W, int64_t ph, int64_t pw,
                                         uint8_t zcode, float s, float z, float lo, float hi,
                                         int32_t mask) {
  const int64_t Wp = W + 2 * pw;
  const __m512 vs = _mm512_set1_ps(s), vz = _mm512_set1_ps(z);
  const __m512 vlo1 = _mm512_set1_ps(lo - 1.0f), vhi1 = _mm512_set1_ps(hi + 1.0f);
  const __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
  const __m512i vmask = _mm512_set1_epi32(mask);
  const __m512i vexp = _mm512_set1_epi32(0x7F800000);  // all-ones exponent: inf or NaN
  __mmask16 bad = 0;
  std::memset(out, zcode, static_cast<size_t>(ph * Wp));
  for (int64_t h = 0; h < H; ++h) {
    uint8_t* row = out + (h + ph) * Wp;
    const float* src = in + h * W;
    for (int64_t q = 0; q < pw; ++q) {
      row[q] = zcode;
      row[pw + W + q] = zcode;
    }
    for (int64_t q = 0; q < W; q += 16) {
      const int64_t cnt = std::min<int64_t>(16, W - q);
      const __mmask16 m = static_cast<__mmask16>((1u << cnt) - 1u);
      const __m512 x = _mm512_maskz_loadu_ps(m, src + q);
      bad |= _mm512_mask_cmpeq_epi32_mask(m, _mm512_and_si512(_mm512_castps_si512(x), vexp), vexp);
      __m512 v = _mm512_add_ps(_mm512_div_ps(x, vs), vz);
      v = _mm512_min_ps(_mm512_max_ps(v, vlo1), vhi1);
      v = _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      v = _mm512_min_ps(_mm512_max_ps(v, vlo), vhi);
      const __m512i c = _mm512_and_si512(_mm512_cvttps_epi32(v), vmask);
      _mm_mask_storeu_epi8(row + pw + q, m, _mm512_cvtepi32_epi8(c));
    }
  }
  std::memset(out + (ph + H) * Wp, zcode, static_cast<size_t>(ph * Wp));
  return bad == 0;
}

template <int KIND>
HWCOST_AVX512 inline __m512i widen32(const uint8_t* p, __mmask32 m) {
  const __m256i b = _mm256_maskz_loadu_epi8(m, p);
  return KIND == 0 ? _mm512_cvtepu8_epi16(b) : _mm512_cvtepi8_epi16(b);
}

// The window sums in pitch layout, acc[p * Wp + q] (16-bit lanes), left in `acc`.
template <int KIND>
HWCOST_AVX512 void pitch16_sums_avx512(const uint8_t* __restrict in0, int64_t Cg, int64_t R,
                                       int64_t S, int64_t P, int64_t Q, int64_t Hp,
                                       int64_t Wp, int64_t dh, int64_t dw,
                                       uint16_t* __restrict rows, uint16_t* __restrict acc) {
  const int64_t Lp = (P - 1) * Wp + Q;
  const int64_t Lr = Lp + (R - 1) * dh * Wp;
  auto tail = [](int64_t n) {
    return n >= 32 ? ~__mmask32{0} : static_cast<__mmask32>((1u << n) - 1u);
  };
  for (int64_t c = 0; c < Cg; ++c) {
    const uint8_t* plane = in0 + c * Hp * Wp;
    for (int64_t l = 0; l < Lr; l += 32) {
      const __mmask32 m = tail(Lr - l);
      __m512i t = widen32<KIND>(plane + l, m);
      for (int64_t s = 1; s < S; ++s)
        t = _mm512_add_epi16(t, widen32<KIND>(plane + l + s * dw, m));
      _mm512_mask_storeu_epi16(rows + l, m, t);
    }
    for (int64_t l = 0; l < Lp; l += 32) {
      const __mmask32 m = tail(Lp - l);
      __m512i t = c == 0 ? _mm512_setzero_si512() : _mm512_maskz_loadu_epi16(m, acc + l);
      for (int64_t r = 0; r < R; ++r)
        t = _mm512_add_epi16(t, _mm512_maskz_loadu_epi16(m, rows + l + r * dh * Wp));
      _mm512_mask_storeu_epi16(acc + l, m, t);
    }
  }
}

#endif  // HWCOST_X86

// Window sums of one (sample, group): dst[p * Q + q] += value of every code under the window.
// kind 0: codes are the values (unsigned); 1: int8 two's complement; 2: via `value`.
// Separable: per channel, sums along each input row over the S taps first (`rows`, Hp x Q
// scratch), then over the R rows, so a window costs R + S adds instead of R * S.
HWCOST_CLONES void window_sums(uint32_t* __restrict dst, const uint8_t* __restrict in0,
                               int64_t Cg, int64_t R, int64_t S, int64_t P, int64_t Q,
                               int64_t Hp, int64_t Wp, int64_t sh, int64_t sw, int64_t dh,
                               int64_t dw, int kind, const int32_t* __restrict value,
                               uint32_t* __restrict rows) {
  if (Hp * Wp == 1) {   // a linear layer (1x1 planes): one sum over contiguous channels
    uint32_t t = 0;
    if (kind == 0) {
      for (int64_t c = 0; c < Cg; ++c) t += in0[c];
    } else if (kind == 1) {
      for (int64_t c = 0; c < Cg; ++c)
        t += static_cast<uint32_t>(static_cast<int32_t>(static_cast<int8_t>(in0[c])));
    } else {
      for (int64_t c = 0; c < Cg; ++c) t += static_cast<uint32_t>(value[in0[c]]);
    }
    dst[0] += t;
    return;
  }
  if (R == 1 && S == 1 && sh == 1 && sw == 1 && kind == 0) {   // 1x1: the planes themselves
    for (int64_t c = 0; c < Cg; ++c) {
      const uint8_t* plane = in0 + c * Hp * Wp;
      for (int64_t l = 0; l < P * Q; ++l) dst[l] += plane[l];
    }
    return;
  }
  for (int64_t c = 0; c < Cg; ++c) {
    const uint8_t* plane = in0 + c * Hp * Wp;
    for (int64_t h = 0; h < Hp; ++h) {
      uint32_t* rs = rows + h * Q;
      for (int64_t q = 0; q < Q; ++q) rs[q] = 0;
      for (int64_t s = 0; s < S; ++s) {
        const uint8_t* row = plane + h * Wp + s * dw;
        if (kind == 0 && sw == 1) {
          for (int64_t q = 0; q < Q; ++q) rs[q] += row[q];
        } else if (kind == 1 && sw == 1) {
          for (int64_t q = 0; q < Q; ++q)
            rs[q] += static_cast<uint32_t>(static_cast<int32_t>(static_cast<int8_t>(row[q])));
        } else {
          for (int64_t q = 0; q < Q; ++q) rs[q] += static_cast<uint32_t>(value[row[q * sw]]);
        }
      }
    }
    for (int64_t p = 0; p < P; ++p) {
      uint32_t* d = dst + p * Q;
      for (int64_t r = 0; r < R; ++r) {
        const uint32_t* rs = rows + (p * sh + r * dh) * Q;
        for (int64_t q = 0; q < Q; ++q) d[q] += rs[q];
      }
    }
  }
}

// Stride-1 window sums in 16-bit lanes, for windows of at most 255 codes (kind 0 or 1): the
// sums then fit int16 / uint16, so a vector adds 32 of them at once.  Positions are numbered in
// the input's row pitch (l = p * Wp + q), which turns the short per-row loops of window_sums
// into a few loops over the whole plane (the last row sum read, at (P - 1 + (R - 1) dh) Wp +
// Q - 1 + (S - 1) dw = Hp Wp - 1, lies inside the plane).  Measured 5x faster than
// window_sums on 16x16 depthwise planes, where it had cost as much as the look-ups.
// `rows` holds (P - 1 + (R - 1) dh) Wp + Q entries, `acc` (P - 1) Wp + Q.
// One code's value as a 16-bit lane: kind 0 unsigned, 1 int8 two's complement.
template <int KIND>
inline uint16_t lane16(uint8_t code) {
  return KIND == 0 ? code : static_cast<uint16_t>(static_cast<int16_t>(static_cast<int8_t>(code)));
}

// The two passes of window_sums_pitch16 for one channel: row sums over the S taps, then the
// R rows; each a loop over the whole plane.  (Holding 32 partial sums in registers across
// the taps measured 2x slower: GCC kept the block in memory.)
template <int KIND>
inline void pitch16_channel(uint16_t* __restrict acc, const uint8_t* __restrict plane,
                            uint16_t* __restrict rows, int64_t R, int64_t S, int64_t Lp,
                            int64_t Lr, int64_t dh, int64_t dw, int64_t Wp) {
  for (int64_t l = 0; l < Lr; ++l) rows[l] = lane16<KIND>(plane[l]);
  for (int64_t s = 1; s < S; ++s) {
    const uint8_t* src = plane + s * dw;
    for (int64_t l = 0; l < Lr; ++l) rows[l] = static_cast<uint16_t>(rows[l] + lane16<KIND>(src[l]));
  }
  for (int64_t r = 0; r < R; ++r) {
    const uint16_t* src = rows + r * dh * Wp;
    for (int64_t l = 0; l < Lp; ++l) acc[l] = static_cast<uint16_t>(acc[l] + src[l]);
  }
}

HWCOST_CLONES void pitch16_sums(const uint8_t* __restrict in0, int64_t Cg, int64_t R,
                                int64_t S, int64_t P, int64_t Q, int64_t Hp, int64_t Wp,
                                int64_t dh, int64_t dw, int kind, uint16_t* __restrict rows,
                                uint16_t* __restrict acc) {
  const int64_t Lp = (P - 1) * Wp + Q;
  const int64_t Lr = Lp + (R - 1) * dh * Wp;
  for (int64_t l = 0; l < Lp; ++l) acc[l] = 0;
  for (int64_t c = 0; c < Cg; ++c) {
    const uint8_t* plane = in0 + c * Hp * Wp;
    if (kind == 0) {
      pitch16_channel<0>(acc, plane, rows, R, S, Lp, Lr, dh, dw, Wp);
    } else {
      pitch16_channel<1>(acc, plane, rows, R, S, Lp, Lr, dh, dw, Wp);
    }
  }
}

// pitch16_sums on the best form this CPU and kernel level have.
inline void pitch16_sums_best(const uint8_t* in0, int64_t Cg, int64_t R, int64_t S, int64_t P,
                              int64_t Q, int64_t Hp, int64_t Wp, int64_t dh, int64_t dw,
                              int kind, uint16_t* rows, uint16_t* acc) {
#ifdef HWCOST_X86
  if (g_simd >= 2) {
    if (kind == 0) {
      pitch16_sums_avx512<0>(in0, Cg, R, S, P, Q, Hp, Wp, dh, dw, rows, acc);
    } else {
      pitch16_sums_avx512<1>(in0, Cg, R, S, P, Q, Hp, Wp, dh, dw, rows, acc);
    }
    return;
  }
#endif
  pitch16_sums(in0, Cg, R, S, P, Q, Hp, Wp, dh, dw, kind, rows, acc);
}

// dst[p * Q + q] += acc[p * sh * Wp + q * sw]: the windows an output of stride (sh, sw)
// keeps, from 16-bit sums over the stride-1 grid (int16 when `signed16`).
HWCOST_CLONES void add_sampled_sums(uint32_t* __restrict dst, const uint16_t* __restrict acc,
                                    int64_t P, int64_t Q, int64_t Wp, int64_t sh, int64_t sw,
                                    bool signed16) {
  for (int64_t p = 0; p < P; ++p) {
    uint32_t* d = dst + p * Q;
    const uint16_t* a = acc + p * sh * Wp;
    if (!signed16) {
      for (int64_t q = 0; q < Q; ++q) d[q] += a[q * sw];
    } else {
      for (int64_t q = 0; q < Q; ++q)
        d[q] += static_cast<uint32_t>(static_cast<int32_t>(static_cast<int16_t>(a[q * sw])));
    }
  }
}

// Window sums of windows of at most 255 codes (kind 0 or 1) through the 16-bit pitch sums.
// Strided outputs sample the stride-1 sums every sh-th row and sw-th column: sh sw times the
// sums needed, at 32 per vector add, is still far less than window_sums' strided form.
void window_sums_pitch16(uint32_t* dst, const uint8_t* in0, int64_t Cg, int64_t R, int64_t S,
                         int64_t P, int64_t Q, int64_t Hp, int64_t Wp, int64_t sh, int64_t sw,
                         int64_t dh, int64_t dw, int kind, uint16_t* rows, uint16_t* acc) {
  pitch16_sums_best(in0, Cg, R, S, (P - 1) * sh + 1, (Q - 1) * sw + 1, Hp, Wp, dh, dw, kind,
                    rows, acc);
  add_sampled_sums(dst, acc, P, Q, Wp, sh, sw, kind == 1);
}

// out = float(acc - wterm - zw * sumx) * scale (+ bias), int32 wrap-around via uint32.
HWCOST_CLONES void finish_row(const int32_t* acc, float* out, int64_t n,
                              uint32_t wterm, uint32_t zw, const uint32_t* __restrict sumx,
                              float scale, float bias, bool has_bias) {
  // One pass: the product is rounded to float32 before the bias is added (the file is built
  // with -ffp-contract=off), exactly as the op-by-op path's two steps.
  const float b = has_bias ? bias : 0.0f;
  if (sumx != nullptr) {
    for (int64_t i = 0; i < n; ++i) {
      const uint32_t v = static_cast<uint32_t>(acc[i]) - wterm - zw * sumx[i];
      const float y = static_cast<float>(static_cast<int32_t>(v)) * scale;
      out[i] = has_bias ? y + b : y;
    }
  } else {
    for (int64_t i = 0; i < n; ++i) {
      const uint32_t v = static_cast<uint32_t>(acc[i]) - wterm;
      const float y = static_cast<float>(static_cast<int32_t>(v)) * scale;
      out[i] = has_bias ? y + b : y;
    }
  }
}

// finish_row for exact integer sums held in float32 (a rank-one table's float convolution):
// the same arithmetic after the conversion.
HWCOST_CLONES void finish_row_f32(const float* acc, float* out, int64_t n, uint32_t wterm,
                                  uint32_t zw, const uint32_t* __restrict sumx, float scale,
                                  float bias, bool has_bias) {
  const float b = has_bias ? bias : 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t s = sumx != nullptr ? sumx[i] : 0u;
    const uint32_t v = static_cast<uint32_t>(static_cast<int32_t>(acc[i])) - wterm - zw * s;
    const float y = static_cast<float>(static_cast<int32_t>(v)) * scale;
    out[i] = has_bias ? y + b : y;
  }
}

// finish_row for sums in pitch layout (acc and window sums at p * pitch + q; the window
// sums 16-bit, int16 when `signed16`), writing the P x Q output rows: the same arithmetic.
HWCOST_CLONES void finish_pitch(const int32_t* __restrict acc, float* __restrict out, int64_t P,
                                int64_t Q, int64_t pitch, uint32_t wterm, uint32_t zw,
                                const uint16_t* __restrict sumx, bool signed16, float scale,
                                float bias, bool has_bias) {
  for (int64_t p = 0; p < P; ++p) {
    const int32_t* a = acc + p * pitch;
    float* o = out + p * Q;
    if (sumx == nullptr) {
      for (int64_t q = 0; q < Q; ++q)
        o[q] = static_cast<float>(static_cast<int32_t>(static_cast<uint32_t>(a[q]) - wterm)) * scale;
    } else if (signed16) {
      const uint16_t* sx = sumx + p * pitch;
      for (int64_t q = 0; q < Q; ++q) {
        const uint32_t v = static_cast<uint32_t>(a[q]) - wterm -
                           zw * static_cast<uint32_t>(static_cast<int32_t>(static_cast<int16_t>(sx[q])));
        o[q] = static_cast<float>(static_cast<int32_t>(v)) * scale;
      }
    } else {
      const uint16_t* sx = sumx + p * pitch;
      for (int64_t q = 0; q < Q; ++q) {
        const uint32_t v = static_cast<uint32_t>(a[q]) - wterm - zw * static_cast<uint32_t>(sx[q]);
        o[q] = static_cast<float>(static_cast<int32_t>(v)) * scale;
      }
    }
    if (has_bias)
      for (int64_t q = 0; q < Q; ++q) o[q] = o[q] + bias;   // rows in cache: cheap
  }
}

HWCOST_CLONES void ste_row(const float* __restrict x, const uint8_t* __restrict codes,
                           float* __restrict deq, float* __restrict mask_out, int64_t n, float s,
                           float z, float lo, float hi, int32_t code_mask, bool is_signed) {
  const int32_t half = (code_mask >> 1);
  for (int64_t i = 0; i < n; ++i) {
    int32_t c = codes[i];
    if (is_signed && c > half) c -= code_mask + 1;
    deq[i] = (static_cast<float>(c) - z) * s;
    const float v = x[i] / s + z;
    mask_out[i] = (v >= lo && v <= hi) ? 1.0f : 0.0f;
  }
}

int32_t code_value(uint8_t code, int64_t mask, bool is_signed) {
  const int32_t c = code;
  return (is_signed && c > (mask >> 1)) ? c - static_cast<int32_t>(mask + 1) : c;
}

inline bool quantize_padded(const float* in, uint8_t* out, int64_t H, int64_t W, int64_t ph,
                            int64_t pw, uint8_t zcode, float s, float z, float lo, float hi,
                            int32_t mask) {
#ifdef HWCOST_X86
  if (g_simd >= 2) return quantize_plane_avx512(in, out, H, W, ph, pw, zcode, s, z, lo, hi, mask);
#endif
  return quantize_plane(in, out, H, W, ph, pw, zcode, s, z, lo, hi, mask);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> approx_conv2d(
    const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias, double sx, int64_t zx,
    const at::Tensor& sw_t, const at::Tensor& zw_t, std::vector<int64_t> domain,
    const at::Tensor& lutT, const at::Tensor& planes, const at::Tensor& centres, int64_t pack,
    std::vector<int64_t> geom, const at::Tensor& factors) {
  TORCH_CHECK(x.scalar_type() == at::kFloat && w.scalar_type() == at::kFloat &&
                  x.is_contiguous() && w.is_contiguous() && x.dim() == 4 && w.dim() == 4,
              "approx_conv2d: x and w must be contiguous 4-D float32");
  TORCH_CHECK(domain.size() == 7 && geom.size() == 8, "approx_conv2d: bad domain or geometry");
  const int64_t aqmin = domain[0], aqmax = domain[1], amask = domain[2];
  const int64_t wqmin = domain[3], wqmax = domain[4], wmask = domain[5];
  const bool is_signed = domain[6] != 0;
  const int64_t ph = geom[0], pw = geom[1], sh = geom[2], swd = geom[3], dh = geom[4],
                dw = geom[5], groups = geom[6], blocks = geom[7];
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t M = w.size(0), Cg = w.size(1), R = w.size(2), S = w.size(3);
  const int64_t K = Cg * R * S;
  TORCH_CHECK(sw_t.scalar_type() == at::kFloat && sw_t.is_contiguous() &&
                  zw_t.scalar_type() == at::kLong && zw_t.is_contiguous() &&
                  (sw_t.numel() == 1 || sw_t.numel() == M) && zw_t.numel() == sw_t.numel(),
              "approx_conv2d: weight scales (float32) and zero points (int64), one or one per "
              "output channel");
  const bool has_bias = bias.numel() > 0;
  TORCH_CHECK(!has_bias || (bias.scalar_type() == at::kFloat && bias.numel() == M &&
                            bias.is_contiguous()),
              "approx_conv2d: bias must be float32 with one value per output channel");
  const int64_t Hp = H + 2 * ph, Wp = W + 2 * pw;
  const float xs = static_cast<float>(sx), xz = static_cast<float>(zx);
  const uint8_t zcode = static_cast<uint8_t>(zx & amask);
  // blocks == 2 (replicate): the batch is one block, looked up in every table of the stack
  // in one pass over its codes (conv2d_lut_impl's blocks == 0); the output has reps * M
  // channels in [group][table][weight row] order, output row j of group g being weight row
  // g * mg + j % mg (a per-conv multiplier search mixes the tables' results).
  TORCH_CHECK(blocks >= 0 && blocks <= 2, "approx_conv2d: blocks must be 0, 1 or 2");
  const bool replicate = blocks == 2;
  const int64_t reps = replicate ? (lutT.dim() == 3 ? lutT.size(0) : 1) : 1;
  const int64_t Mo = reps * M;

  // Activation codes, padded with the zero point's code.
  at::Tensor xc = at::empty({N, C, Hp, Wp}, x.options().dtype(at::kByte));
  const float* xp = x.data_ptr<float>();
  uint8_t* xcp = xc.data_ptr<uint8_t>();
  // One rank-one table (see factored_conv): its factor u of every code is written by the
  // quantization pass itself, while the codes are in cache, and the float sums finished
  // straight from float32.
  bool float_sums = factors.numel() > 0 && reps == 1 && blocks == 0 && fp32_is_exact();
  TORCH_CHECK(!float_sums || (factors.scalar_type() == at::kFloat && factors.is_contiguous() &&
                              factors.numel() == 512),
              "factors must be (1, 2, 256) float32");
  const float* ftab = float_sums ? factors.data_ptr<float>() : nullptr;
  const std::optional<CodeMap> umap =
      float_sums ? std::optional<CodeMap>(std::in_place, ftab) : std::nullopt;
  at::Tensor xf = float_sums ? at::empty({N, C, Hp, Wp}, x.options()) : at::Tensor();
  float* xfp = float_sums ? xf.data_ptr<float>() : nullptr;
  std::atomic<bool> finite{true};
  if (ph == 0 && pw == 0) {
    // No padding: one flat range, split in long runs (planes can be a single value).
    at::parallel_for(0, N * C * H * W, 16384, [&](int64_t b, int64_t e) {
      if (!quantize_row(xp + b, xcp + b, e - b, xs, xz, static_cast<float>(aqmin),
                        static_cast<float>(aqmax), static_cast<int32_t>(amask)))
        finite.store(false, std::memory_order_relaxed);
      if (xfp != nullptr) map_codes_into(xcp + b, xfp + b, e - b, *umap);
    });
  } else {
    at::parallel_for(0, N * C, grain_for(Hp * Wp), [&](int64_t b, int64_t e) {
      bool ok = true;
      for (int64_t pl = b; pl < e; ++pl) {
        ok &= quantize_padded(xp + pl * H * W, xcp + pl * Hp * Wp, H, W, ph, pw, zcode, xs,
                              xz, static_cast<float>(aqmin), static_cast<float>(aqmax),
                              static_cast<int32_t>(amask));
        if (xfp != nullptr)
          map_codes_into(xcp + pl * Hp * Wp, xfp + pl * Hp * Wp, Hp * Wp, *umap);
      }
      if (!ok) finite.store(false, std::memory_order_relaxed);
    });
  }
  TORCH_CHECK(finite.load(), "hwcost: non-finite input");
  // Weight codes and the per-channel sums of their values.
  at::Tensor wc = at::empty({M, Cg, R, S}, w.options().dtype(at::kByte));
  const float* wp = w.data_ptr<float>();
  const float* swp = sw_t.data_ptr<float>();
  const int64_t* zwp = zw_t.data_ptr<int64_t>();
  const bool per_channel = sw_t.numel() == M && M > 1;
  uint8_t* wcp = wc.data_ptr<uint8_t>();
  std::vector<uint32_t> sumw(static_cast<size_t>(M));
  std::vector<int32_t> zw(static_cast<size_t>(M));
  std::vector<float> scale(static_cast<size_t>(M));
  bool any_zw = false;
  for (int64_t m = 0; m < M; ++m) {
    const int64_t ci = per_channel ? m : 0;
    const float s = swp[ci], z = static_cast<float>(zwp[ci]);
    zw[m] = static_cast<int32_t>(zwp[ci]);
    any_zw = any_zw || zw[m] != 0;
    scale[m] = xs * s;
    sumw[m] = quantize_weight_row(wp + m * K, wcp + m * K, K, s, z, static_cast<float>(wqmin),
                                  static_cast<float>(wqmax), static_cast<int32_t>(wmask));
  }

  const int64_t mg = M / groups;
  const int64_t mgo = Mo / groups;   // output rows per group
  const int kind = !is_signed ? 0 : (amask == 0xFF ? 1 : 2);
  const bool pitch16 = kind != 2 && K <= 255;
  const uint32_t zxu = static_cast<uint32_t>(zx);
  const float* bp = has_bias ? bias.data_ptr<float>() : nullptr;
  // Where the LUT convolution takes the direct VBMI depthwise path, each (sample, group)'s
  // sums are finished right there (window sums, corrections, scale, bias) while in cache:
  // this saved the copy-out and two passes over the output (about 10 % of a 16x16
  // depthwise layer on the development machine).
  const int64_t Pd = (Hp - dh * (R - 1) - 1) / sh + 1, Qd = (Wp - dw * (S - 1) - 1) / swd + 1;
  const DepthwiseEpilogue epilogue = [&](int64_t ng, const int32_t* sums, int64_t Lp,
                                         int32_t* out_base) {
    thread_local std::vector<uint16_t> rows16, acc16;
    const int64_t n = ng / groups, g = ng % groups;
    const uint16_t* wsum = nullptr;
    if (any_zw) {
      rows16.resize(static_cast<size_t>(Hp * Wp));
      acc16.resize(static_cast<size_t>(Pd * Wp));
      pitch16_sums_best(xcp + (n * C + g * Cg) * Hp * Wp, Cg, R, S, Pd, Qd, Hp, Wp, dh, dw,
                        kind, rows16.data(), acc16.data());
      wsum = acc16.data();
    }
    for (int64_t j = 0; j < mgo; ++j) {
      const int64_t m = g * mg + j % mg;
      const uint32_t zwu = static_cast<uint32_t>(zw[m]);
      const uint32_t wterm = zxu * (sumw[m] - static_cast<uint32_t>(K) * zwu);
      finish_pitch(sums + j * Lp,
                   reinterpret_cast<float*>(out_base) + (n * Mo + g * mgo + j) * Pd * Qd, Pd,
                   Qd, Wp, wterm, zwu, wsum, kind == 1, scale[m], bp ? bp[m] : 0.0f,
                   bp != nullptr);
    }
  };
  bool finished = false;
  at::Tensor acc;
  const bool float_tried = float_sums;
  if (float_sums) {
    acc = factored_conv(xf, wc, ftab, sh, swd, dh, dw, groups);
    float_sums = acc.defined();   // else torch would not convolve exactly: look up
  }
  if (!float_sums) {   // the factors again only for the multi-table forms not tried above
    acc = conv2d_lut_impl(xc, wc, lutT, planes, centres, sh, swd, dh, dw, groups, pack,
                          replicate ? 0 : blocks, (!any_zw || pitch16) ? &epilogue : nullptr,
                          &finished, float_tried ? at::Tensor() : factors);
  }
  if (finished) return {acc.view(at::kFloat), xc, wc};
  const int64_t P = acc.size(2), Q = acc.size(3), L = P * Q;
  // Window sums of the activation values (one per group and position), only when a weight
  // zero point needs them, then the float output, which overwrites the int32 sums in place
  // (same size, element by element).  With enough (sample, group) pairs each task sums one
  // group's windows into a small buffer and finishes that group's rows at once: a buffer
  // for the whole batch (N * groups * L words) cost an allocation, its page faults and a
  // pass over memory per call.
  int32_t value[256];
  for (int c = 0; c < 256; ++c) value[c] = code_value(static_cast<uint8_t>(c), amask, is_signed);
  struct Scratch {
    std::vector<uint32_t> rows;
    std::vector<uint16_t> rows16, acc16;
  };
  auto make_scratch = [&]() {
    Scratch sc;
    if (pitch16) {
      sc.rows16.resize(static_cast<size_t>(Hp * Wp));
      sc.acc16.resize(static_cast<size_t>(Hp * Wp));   // the stride-1 grid of strided windows
    } else {
      sc.rows.resize(static_cast<size_t>(Hp * Q));
    }
    return sc;
  };
  auto sum_windows = [&](uint32_t* dst, int64_t ng, Scratch& sc) {
    const int64_t n = ng / groups, g = ng % groups;
    const uint8_t* in = xcp + (n * C + g * Cg) * Hp * Wp;
    if (pitch16) {
      window_sums_pitch16(dst, in, Cg, R, S, P, Q, Hp, Wp, sh, swd, dh, dw, kind,
                          sc.rows16.data(), sc.acc16.data());
    } else {
      window_sums(dst, in, Cg, R, S, P, Q, Hp, Wp, sh, swd, dh, dw, kind, value,
                  sc.rows.data());
    }
  };
  at::Tensor out = float_sums ? acc : acc.view(at::kFloat);
  const int32_t* ap = float_sums ? nullptr : acc.data_ptr<int32_t>();
  const float* fap = float_sums ? acc.data_ptr<float>() : nullptr;
  float* op = out.data_ptr<float>();
  auto finish = [&](int64_t nm, const uint32_t* sx_row) {
    const int64_t c = nm % Mo, m = c / mgo * mg + c % mgo % mg;
    const uint32_t zwu = static_cast<uint32_t>(zw[m]);
    const uint32_t wterm = zxu * (sumw[m] - static_cast<uint32_t>(K) * zwu);
    if (fap != nullptr)
      finish_row_f32(fap + nm * L, op + nm * L, L, wterm, zwu, sx_row, scale[m],
                     bp ? bp[m] : 0.0f, bp != nullptr);
    else
      finish_row(ap + nm * L, op + nm * L, L, wterm, zwu, sx_row, scale[m], bp ? bp[m] : 0.0f,
                 bp != nullptr);
  };
  const int64_t nthreads = at::get_num_threads();
  if (N * groups >= 2 * nthreads || nthreads == 1) {
    at::parallel_for(0, N * groups, grain_for((any_zw ? K : 0) * L + mgo * L),
                     [&](int64_t b, int64_t e) {
      Scratch sc = any_zw ? make_scratch() : Scratch{};
      std::vector<uint32_t> sums(any_zw ? static_cast<size_t>(L) : 0);
      for (int64_t ng = b; ng < e; ++ng) {
        if (any_zw) {
          std::fill(sums.begin(), sums.end(), 0u);
          sum_windows(sums.data(), ng, sc);
        }
        const int64_t n = ng / groups, g = ng % groups;
        for (int64_t j = 0; j < mgo; ++j)
          finish(n * Mo + g * mgo + j, any_zw ? sums.data() : nullptr);
      }
    });
  } else {
    // Few (sample, group) pairs (a single sample through a dense layer): the sums for all
    // of them first, then the rows in parallel.
    std::vector<uint32_t> sumx(any_zw ? static_cast<size_t>(N * groups * L) : 0, 0u);
    if (any_zw) {
      at::parallel_for(0, N * groups, 1, [&](int64_t b, int64_t e) {
        Scratch sc = make_scratch();
        for (int64_t ng = b; ng < e; ++ng) sum_windows(sumx.data() + ng * L, ng, sc);
      });
    }
    at::parallel_for(0, N * Mo, grain_for(L), [&](int64_t b, int64_t e) {
      for (int64_t nm = b; nm < e; ++nm) {
        const int64_t n = nm / Mo, c = nm % Mo;
        finish(nm, any_zw ? sumx.data() + (n * groups + c / mgo) * L : nullptr);
      }
    });
  }
  return {out, xc, wc};
}

// The straight-through backward's operands, rebuilt from what the forward kept (inputs and
// codes) in one pass each: dequantized activations (unpadded) and weights, and the masks of
// where each quantizer did not clip (v within half a step of the domain), as float 0/1.
// x_layout: 0 no dequantized activations (an empty tensor: the weight gradient is not
// wanted), 1 NCHW, 2 channels-last (what the backward's convolution runs in, written directly
// instead of copied).
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> ste_operands(
    const at::Tensor& x, const at::Tensor& w, const at::Tensor& xc, const at::Tensor& wc,
    double sx, int64_t zx, const at::Tensor& sw_t, const at::Tensor& zw_t,
    std::vector<int64_t> domain, int64_t ph, int64_t pw, int64_t x_layout) {
  TORCH_CHECK(x.scalar_type() == at::kFloat && w.scalar_type() == at::kFloat &&
                  x.is_contiguous() && w.is_contiguous() && xc.is_contiguous() &&
                  wc.is_contiguous() && domain.size() == 7,
              "ste_operands: bad arguments");
  const int64_t aqmin = domain[0], aqmax = domain[1], amask = domain[2];
  const int64_t wqmin = domain[3], wqmax = domain[4], wmask = domain[5];
  const bool is_signed = domain[6] != 0;
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t Hp = xc.size(2), Wp = xc.size(3);
  const int64_t M = w.size(0), K = w.numel() / std::max<int64_t>(1, M);
  const float xs = static_cast<float>(sx), xz = static_cast<float>(zx);
  TORCH_CHECK(x_layout >= 0 && x_layout <= 2, "ste_operands: bad x_layout");
  at::Tensor xd = x_layout == 0 ? at::empty({0}, x.options())
                  : x_layout == 1 ? at::empty_like(x)
                                  : at::empty_like(x, at::MemoryFormat::ChannelsLast);
  at::Tensor xm = at::empty_like(x);
  at::Tensor wd = at::empty_like(w), wm = at::empty_like(w);
  const float* xp = x.data_ptr<float>();
  const uint8_t* xcp = xc.data_ptr<uint8_t>();
  float* xdp = xd.data_ptr<float>();
  float* xmp = xm.data_ptr<float>();
  const float alo = static_cast<float>(aqmin) - 0.5f, ahi = static_cast<float>(aqmax) + 0.5f;
  at::parallel_for(0, N * C, grain_for(H * W), [&](int64_t b, int64_t e) {
    std::vector<float> row(x_layout == 1 ? 0 : static_cast<size_t>(W));
    for (int64_t pl = b; pl < e; ++pl)
      for (int64_t h = 0; h < H; ++h) {
        const int64_t o = (pl * H + h) * W;
        float* deq = x_layout == 1 ? xdp + o : row.data();
        ste_row(xp + o, xcp + (pl * Hp + h + ph) * Wp + pw, deq, xmp + o, W, xs, xz, alo,
                ahi, static_cast<int32_t>(amask), is_signed);
        if (x_layout == 2) {   // element (n, c, h, w) at ((n * H + h) * W + w) * C + c
          const int64_t n = pl / C, c = pl % C;
          float* dst = xdp + (n * H + h) * W * C + c;
          for (int64_t q = 0; q < W; ++q) dst[q * C] = row[q];
        }
      }
  });
  const float* wp = w.data_ptr<float>();
  const uint8_t* wcp = wc.data_ptr<uint8_t>();
  const float* swp = sw_t.data_ptr<float>();
  const int64_t* zwp = zw_t.data_ptr<int64_t>();
  const bool per_channel = sw_t.numel() == M && M > 1;
  float* wdp = wd.data_ptr<float>();
  float* wmp = wm.data_ptr<float>();
  const float wlo = static_cast<float>(wqmin) - 0.5f, whi = static_cast<float>(wqmax) + 0.5f;
  for (int64_t m = 0; m < M; ++m) {
    const float s = swp[per_channel ? m : 0], z = static_cast<float>(zwp[per_channel ? m : 0]);
    for (int64_t k = 0; k < K; ++k) {
      const float q = static_cast<float>(code_value(wcp[m * K + k], wmask, is_signed));
      wdp[m * K + k] = (q - z) * s;
      const float v = wp[m * K + k] / s + z;
      wmp[m * K + k] = (v >= wlo && v <= whi) ? 1.0f : 0.0f;
    }
  }
  return {xd, wd, xm, wm};
}

// ---------------------------------------------------------------------------------------------
// Observe, pick quantizer parameters and convolve in one call.
//
// A search step runs ~1,100 small conv layers; done in Python, the range reductions, observer
// updates and parameter arithmetic around each fused call cost ~270 us a layer on the
// development machine, more than many of the convolutions.  This op does them here, for the
// configuration searches and training use (running min-max observers, already initialized,
// activations per tensor, weights per tensor or per output channel); the layer keeps the
// Python path for everything else.  The arithmetic is multiplier_lib.emulate.quant.qparams_np
// step for step in float32 (tests compare the two on random and edge-case ranges).

struct QParams {
  float scale;
  int64_t zp;
};

// numpy's minimum / maximum: NaN wins, otherwise the smaller / larger (second on ties).
inline float np_min(float a, float b) { return (a < b || std::isnan(a)) ? a : b; }
inline float np_max(float a, float b) { return (a > b || std::isnan(a)) ? a : b; }

QParams qparams_f32(float lo, float hi, int64_t qmin, int64_t qmax, int64_t bits,
                    bool is_signed, bool symmetric) {
  const float eps = std::numeric_limits<float>::epsilon();
  lo = np_min(lo, 0.0f);
  hi = np_max(hi, 0.0f);
  float scale;
  int64_t zp = 0;
  if (symmetric) {
    const float amax = np_max(-lo, hi);
    if (is_signed) {
      scale = amax / static_cast<float>(qmax);
    } else if (lo >= 0.0f) {
      scale = hi / static_cast<float>(qmax);
    } else {
      const int64_t half = int64_t{1} << (bits - 1);
      scale = amax / static_cast<float>(half > 1 ? half - 1 : 1);
      zp = half;
    }
  } else {
    scale = (hi - lo) / static_cast<float>(qmax - qmin);
    const float safe = np_max(scale, eps);
    const float z = static_cast<float>(qmin) - std::nearbyint(lo / safe);
    // numpy casts NaN to INT64_MIN, which the clip turns into qmin
    zp = std::isnan(z) ? qmin
                       : std::clamp<int64_t>(static_cast<int64_t>(std::clamp(
                                                 z, static_cast<float>(qmin) - 1.0f,
                                                 static_cast<float>(qmax) + 1.0f)),
                                             qmin, qmax);
  }
  return {np_max(scale, eps), zp};
}

inline int64_t domain_bits(int64_t mask) {
  int64_t bits = 0;
  while (mask >> bits) ++bits;
  return bits;
}

// qflags: (observe activations, observe weights, activations symmetric, weights symmetric).
// amin/amax: the activation observer's range, float32 (1,); wmin/wmax: the weight observer's,
// float32 (1,) or (M,); updated in place when observing.  Raises "hwcost: non-finite input"
// (the layer turns it into its one-line error) before changing anything when x holds NaN or
// an infinity.  Returns approx_conv2d's three tensors, then (sx, zx) as float64 (2,) and the
// weight scales (float32) and zero points (int64), one or one per output channel.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>
approx_conv2d_observed(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias,
                       const at::Tensor& amin, const at::Tensor& amax, const at::Tensor& wmin,
                       const at::Tensor& wmax, std::vector<int64_t> qflags,
                       std::vector<int64_t> domain, const at::Tensor& lutT,
                       const at::Tensor& planes, const at::Tensor& centres, int64_t pack,
                       std::vector<int64_t> geom, const at::Tensor& factors) {
  TORCH_CHECK(qflags.size() == 4 && domain.size() == 7, "approx_conv2d_observed: bad flags");
  TORCH_CHECK(x.scalar_type() == at::kFloat && w.scalar_type() == at::kFloat && w.dim() == 4,
              "approx_conv2d_observed: x and w must be float32");
  const int64_t M = w.size(0);
  const int64_t rows = wmin.numel();
  for (const at::Tensor* t : {&amin, &amax, &wmin, &wmax})
    TORCH_CHECK(t->scalar_type() == at::kFloat && t->is_contiguous() && t->dim() == 1,
                "approx_conv2d_observed: observer ranges must be contiguous float32 vectors");
  TORCH_CHECK(amin.numel() == 1 && amax.numel() == 1 && wmax.numel() == rows &&
                  (rows == 1 || rows == M),
              "approx_conv2d_observed: ranges must be per tensor (activations) and per "
              "tensor or per output channel (weights)");
  const bool observe_act = qflags[0] != 0, observe_w = qflags[1] != 0;
  const bool act_sym = qflags[2] != 0, w_sym = qflags[3] != 0;
  const bool is_signed = domain[6] != 0;

  // Observed ranges are computed here but stored only once the convolution has succeeded:
  // a non-finite input (refused by the min-max below, or by approx_conv2d's quantization
  // pass when the activation range is frozen) leaves every observer as it was.
  float* amn = amin.data_ptr<float>();
  float* amx = amax.data_ptr<float>();
  float alo = amn[0], ahi = amx[0];
  if (observe_act) {
    const auto x_range = at::aminmax(x);
    const float xlo = std::get<0>(x_range).item<float>(), xhi = std::get<1>(x_range).item<float>();
    TORCH_CHECK(std::isfinite(xlo) && std::isfinite(xhi), "hwcost: non-finite input");
    alo = np_min(alo, xlo);
    ahi = np_max(ahi, xhi);
  }
  float* wmn_store = wmin.data_ptr<float>();
  float* wmx_store = wmax.data_ptr<float>();
  std::vector<float> wlo(wmn_store, wmn_store + rows), whi(wmx_store, wmx_store + rows);
  float* wmn = wlo.data();
  float* wmx = whi.data();
  if (observe_w) {
    const auto w_range = at::aminmax(w.reshape({rows, -1}), 1);
    const at::Tensor lo = std::get<0>(w_range).contiguous(), hi = std::get<1>(w_range).contiguous();
    const float* lp = lo.data_ptr<float>();
    const float* hp = hi.data_ptr<float>();
    for (int64_t r = 0; r < rows; ++r) {
      wmn[r] = np_min(wmn[r], lp[r]);
      wmx[r] = np_max(wmx[r], hp[r]);
    }
  }
  const QParams aq = qparams_f32(alo, ahi, domain[0], domain[1], domain_bits(domain[2]),
                                 is_signed, act_sym);
  at::Tensor sw = at::empty({rows}, w.options());
  at::Tensor zw = at::empty({rows}, w.options().dtype(at::kLong));
  float* swp = sw.data_ptr<float>();
  int64_t* zwp = zw.data_ptr<int64_t>();
  const int64_t wbits = domain_bits(domain[5]);
  for (int64_t r = 0; r < rows; ++r) {
    const QParams q = qparams_f32(wmn[r], wmx[r], domain[3], domain[4], wbits, is_signed, w_sym);
    swp[r] = q.scale;
    zwp[r] = q.zp;
  }
  auto [out, xc, wc] = approx_conv2d(x, w, bias, static_cast<double>(aq.scale), aq.zp, sw, zw,
                                     domain, lutT, planes, centres, pack, geom,
                                     factors);
  amn[0] = alo;
  amx[0] = ahi;
  std::copy(wlo.begin(), wlo.end(), wmn_store);
  std::copy(whi.begin(), whi.end(), wmx_store);
  at::Tensor axq = at::empty({2}, x.options().dtype(at::kDouble));
  axq.data_ptr<double>()[0] = static_cast<double>(aq.scale);
  axq.data_ptr<double>()[1] = static_cast<double>(aq.zp);
  return {out, xc, wc, axq, sw, zw};
}

int64_t simd_level() { return g_simd; }

int64_t set_pack_min_reuse(int64_t reuse) {
  const int64_t previous = g_pack_min_reuse;
  g_pack_min_reuse = std::max<int64_t>(0, reuse);
  return previous;
}

int64_t set_simd_level(int64_t level) {
  const int previous = g_simd;
  g_simd = static_cast<int>(std::max<int64_t>(0, std::min<int64_t>(level, kDetectedSimd)));
  return previous;
}

}  // namespace

TORCH_LIBRARY(HWCOST_NS, m) {
  m.def("conv2d_lut(Tensor x, Tensor w, Tensor lutT, Tensor planes, Tensor centres, int sh, "
        "int sw, int dh, int dw, int groups, int pack, int blocks, Tensor factors) -> Tensor",
        &conv2d_lut);
  m.def("linear_lut(Tensor x, Tensor w, Tensor lut, Tensor lutT, Tensor planes, "
        "Tensor centres, int pack) -> Tensor",
        &linear_lut);
  m.def("approx_conv2d(Tensor x, Tensor w, Tensor bias, float sx, int zx, Tensor sw, "
        "Tensor zw, int[] domain, Tensor lutT, Tensor planes, Tensor centres, int pack, "
        "int[] geom, Tensor factors) -> (Tensor, Tensor, Tensor)",
        &approx_conv2d);
  m.def("approx_conv2d_observed(Tensor x, Tensor w, Tensor bias, Tensor(a!) amin, "
        "Tensor(b!) amax, Tensor(c!) wmin, Tensor(d!) wmax, int[] qflags, int[] domain, "
        "Tensor lutT, Tensor planes, Tensor centres, int pack, int[] geom, Tensor factors) -> "
        "(Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)",
        &approx_conv2d_observed);
  m.def("ste_operands(Tensor x, Tensor w, Tensor xc, Tensor wc, float sx, int zx, Tensor sw, "
        "Tensor zw, int[] domain, int ph, int pw, int x_layout) -> "
        "(Tensor, Tensor, Tensor, Tensor)",
        &ste_operands);
  m.def("set_pack_min_reuse(int reuse) -> int", &set_pack_min_reuse);
  m.def("simd_level() -> int", &simd_level);
  m.def("fp32_is_exact() -> bool", &fp32_is_exact);
  m.def("set_simd_level(int level) -> int", &set_simd_level);
}

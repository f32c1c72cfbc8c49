#pragma once
// The ternary product (quant.h's scheme ternary): int8 activations times weights in {-1, 0, +1},
// without a multiplication, by table lookup (the way T-MAC and bitnet.cpp's TL1 kernels go).
// Internal to models/; no Torch.
//
// Packed form (what a checkpoint stores): 2 bits a weight, [out, Bytes(in)] bytes, weight i of a
// row in byte i / 4 at bits 2 (i % 4): code 0 is 0, 1 is +1, 2 is -1 (3 is invalid).
//
// Kernel: for each pair of inputs (x0, x1) of an activation row, a table of the nine sums
// t0 x0 + t1 x1 over (t0, t1) in {-1, 0, +1}^2, at index 3 (t0 + 1) + (t1 + 1); a pair of weights
// is stored as that 4-bit index. The sums need 16 bits, so each table is kept as 16 low bytes and
// 16 high bytes: one byte shuffle (vpshufb) looks up 64 outputs' pairs at once (32 on AVX2) in each,
// and interleaving the two results gives the 16-bit sums. Those are added in 16 bits (exact: a
// partial sum over 256 inputs is at most 127 x 256 < 2^15 in magnitude) and widened to 32 bits every
// 256 inputs. Every instruction set computes the same integers, and the same floats from them.
#include <cstdint>
#include <vector>

namespace bitbyte::models::ternary {

inline constexpr int64_t kBlock = 64;  // outputs a block of the kernel's layout

// Bytes of a packed row of `in` weights.
inline int64_t Bytes(int64_t in) { return (in + 3) / 4; }
// The packed form of t [out, in] (values -1, 0, +1) into packed [out, Bytes(in)].
void Pack(const int8_t* t, int64_t out, int64_t in, uint8_t* packed);
// Weight i of a packed row (-1, 0 or +1; code 3 reads as 0: FindInvalid finds it).
int Weight(const uint8_t* row, int64_t i);
// The first byte offset in packed [rows, Bytes(in)] that holds code 3, or -1 when none does.
int64_t FindInvalid(const uint8_t* packed, int64_t rows, int64_t in);

// The packed weights re-laid for the kernel (built once per layer). Outputs in blocks of 64, inputs
// in quads (padded with zero weights to a multiple of 4); per block and quad 64 bytes: byte p holds
// the index of the quad's first pair in its low nibble and of its second pair in its high one, for
// output block * 64 + Lane(p) (zero weights past `out`).
// Also, for products of many rows (where oneDNN's integer GEMM is the faster way to the same
// sums), the weights one a byte, and the scales one per output.
struct Tiles {
  int64_t out = 0, in = 0, blocks = 0, quads = 0;
  std::vector<uint8_t> idx;   // [blocks, quads, 64]
  std::vector<int8_t> dense;  // [out, in], -1, 0 or +1
  std::vector<float> gamma;   // [out]
};
// The output of a block whose pairs byte position p (0..63) holds: the order the kernels' 16-bit
// interleave produces, so that each 16 (AVX2: 8) consecutive outputs come out of one register.
int Lane(int p);
// From packed [out, Bytes(in)] and `scales` gammas: one (per tensor) or `out` (per channel).
Tiles Build(const uint8_t* packed, int64_t out, int64_t in, const float* gamma, int64_t scales);

// y[r, o] = sx[r] gamma[o] sum_i q[r, i] t[o, i] + bias[o] (added to y with `accumulate`), for
// int8 activation rows q [rows, in] and their scales sx; as a fused multiply-add of the exact
// integer sum with sx[r] gamma[o] (rounded once), on every instruction set (Epilogue). bias may be
// null. Runs on ATen's threads when the product is large; the floats do not depend on the thread
// count.
void Product(const Tiles& t, const int8_t* q, const float* sx, int64_t rows, const float* bias, float* y,
             bool accumulate);
// That last step for rows r0..r1 and outputs o0..o1 of y [rows, out], from their integer sums
// dots[(r - r0) stride + o - o0]: y = fma(dot, sx[r] gamma[o], bias[o]) (+ y with `accumulate`).
void Epilogue(const int32_t* dots, int64_t stride, const float* sx, const float* gamma, const float* bias, int64_t out,
              float* y, bool accumulate, int64_t r0, int64_t r1, int64_t o0, int64_t o1);

}  // namespace bitbyte::models::ternary

#pragma once
// K/C/S telemetry of a model on a text (docs/tracks.md, "Telemetry"), from the model's bit
// predictions along it. Torch-free: the model side hands over, for each bit i of the scored bytes
// (8 a byte, most significant first),
//   q_i = the model's probability that bit i is 1 given everything before it (for a byte track,
//         derived from its 256-way distribution: the mass of the bytes that continue the bits so
//         far with a 1, over the mass of those that continue them at all);
//   r_i = the same conditional under the reference distribution: the text's own byte frequencies
//         (add-1/2 smoothed);
//   b_i = the model's bit: its most likely bit (q_i > 1/2) when scoring a given text, the bit it
//         produced when scoring its own generation.
// Then, over the n bits:
//   K = 1 - mean_i H(q_i)                      negentropy, H the binary entropy in bits; 0 for a
//                                              model that always says 1/2, 1 for a certain one
//   C = c_LZ76(b) log2(n) / n                  Lempel-Ziv (1976) complexity of b normalised by its
//                                              value for random bits: near 1 random, near 0 regular
//   S = 2^(-mean_i KL(r_i || q_i))             symbiosis: 1 when the model's bit conditionals are
//                                              the text's own statistics, towards 0 as they part
#include <cstdint>
#include <string>
#include <vector>

#include "train/train_config.pb.h"

namespace bitbyte::train {

struct Telemetry {
  double k = 0, c = 0, s = 0;
  int64_t bits = 0;    // n
  double seconds = 0;  // to compute (the model's passes included)
};

// The binary entropy of p in bits (0 at p = 0 or 1).
double BinaryEntropy(double p);
// KL(r || q) of two Bernoulli distributions in bits; q is kept inside [1e-12, 1 - 1e-12].
double BinaryKl(double r, double q);
// The number of phrases of the Lempel-Ziv (1976) parsing of `bits` (Kaspar and Schuster's
// algorithm): each phrase the shortest that does not occur earlier (overlaps allowed).
int64_t Lz76Phrases(const std::vector<uint8_t>& bits);
// Lz76Phrases(bits) * log2(n) / n (0 for n < 2).
double NormalisedLz76(const std::vector<uint8_t>& bits);

// K, C and S as above; q, r and b of equal length n >= 1.
Telemetry ComputeTelemetry(const std::vector<double>& q, const std::vector<double>& r, const std::vector<uint8_t>& b);

// The reference of the formulas above for a text: its byte frequencies plus 1/2 each, normalised.
std::vector<double> ReferenceByteDistribution(const std::string& text);

// "" when every value is within telemetry's bounds; else the first that is not, as
// "K 0.93 above telemetry.k_max 0.9".
std::string GateViolation(const pb::TelemetryConfig& bounds, const Telemetry& t);

}  // namespace bitbyte::train

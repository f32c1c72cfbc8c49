// The selective scan: kFused and kChunked against kReference (outputs and all six gradients, float
// and double), kFused against finite differences, causality, the recurrent step against the
// scan, and the argument checks.
#include "models/selective_scan.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "base/error.h"

namespace bitbyte::models {
namespace {

struct Shape {
  int64_t b, d, t, n;
};

std::string Str(const Shape& s) {
  return "B=" + std::to_string(s.b) + " D=" + std::to_string(s.d) + " T=" + std::to_string(s.t) +
         " N=" + std::to_string(s.n);
}

// T = 1, odd sizes, N off the specialised sizes, T across several chunks with a ragged end.
const std::vector<Shape> kShapes = {{1, 1, 1, 1},  {2, 3, 1, 4},   {1, 5, 7, 3},   {3, 4, 17, 16}, {2, 6, 40, 8},
                                    {1, 2, 33, 5}, {2, 3, 20, 32}, {1, 7, 64, 16}, {2, 1, 9, 13}};

// u, delta, A, Bm, C, Dskip as in a Mamba block: delta > 0, A < 0 (a few slightly positive).
// Bm and C are transposes of [B, T, N] tensors, as a model passes them (not contiguous).
std::array<torch::Tensor, 6> RandomInputs(const Shape& s, torch::Dtype dtype, uint64_t seed) {
  torch::manual_seed(seed);
  const auto o = torch::TensorOptions().dtype(dtype);
  torch::Tensor u = torch::randn({s.b, s.d, s.t}, o);
  torch::Tensor delta = torch::softplus(torch::randn({s.b, s.d, s.t}, o) - 1.0);
  torch::Tensor a = -torch::exp(torch::randn({s.d, s.n}, o)) + 0.1;
  torch::Tensor bm = torch::randn({s.b, s.t, s.n}, o).transpose(1, 2);
  torch::Tensor c = torch::randn({s.b, s.t, s.n}, o).transpose(1, 2);
  torch::Tensor dskip = torch::randn({s.d}, o);
  return {u, delta, a, bm, c, dskip};
}

const char* const kNames[6] = {"u", "delta", "A", "Bm", "C", "Dskip"};

// y and the gradients of <y, gy> with respect to all six inputs.
std::vector<torch::Tensor> OutputAndGrads(const std::array<torch::Tensor, 6>& in, const torch::Tensor& gy,
                                          ScanImpl impl) {
  std::vector<torch::Tensor> leaves;
  for (const auto& x : in) leaves.push_back(x.detach().requires_grad_(true));
  const torch::Tensor y = SelectiveScan(leaves[0], leaves[1], leaves[2], leaves[3], leaves[4], leaves[5], impl);
  std::vector<torch::Tensor> out = {y.detach()};
  for (auto& g : torch::autograd::grad({y}, leaves, {gy}, /*retain_graph=*/false, /*create_graph=*/false,
                                       /*allow_unused=*/true))
    out.push_back(g.defined() ? g : torch::Tensor());
  return out;
}

// max |a - b| / (1 + max |b|)
double RelDiff(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.numel() == 0) return 0;
  return (a - b).abs().max().item<double>() / (1.0 + b.abs().max().item<double>());
}

void ExpectMatchesReference(torch::Dtype dtype, double tol) {
  uint64_t seed = 10;
  for (const Shape& s : kShapes) {
    const auto in = RandomInputs(s, dtype, ++seed);
    const torch::Tensor gy = torch::randn({s.b, s.d, s.t}, torch::TensorOptions().dtype(dtype));
    const auto ref = OutputAndGrads(in, gy, ScanImpl::kReference);
    for (ScanImpl impl : {ScanImpl::kFused, ScanImpl::kChunked}) {
      const char* name = impl == ScanImpl::kFused ? "kFused" : "kChunked";
      const auto got = OutputAndGrads(in, gy, impl);
      ASSERT_EQ(got[0].sizes(), in[0].sizes()) << name << " " << Str(s);
      EXPECT_EQ(got[0].scalar_type(), dtype);
      EXPECT_LE(RelDiff(got[0], ref[0]), tol) << name << " y, " << Str(s);
      for (int i = 0; i < 6; ++i) {
        ASSERT_TRUE(got[i + 1].defined() && ref[i + 1].defined()) << name << " d" << kNames[i] << ", " << Str(s);
        ASSERT_EQ(got[i + 1].sizes(), in[i].sizes()) << name << " d" << kNames[i] << ", " << Str(s);
        EXPECT_LE(RelDiff(got[i + 1], ref[i + 1]), tol) << name << " d" << kNames[i] << ", " << Str(s);
      }
    }
  }
}

TEST(SelectiveScan, FusedAndChunkedMatchReferenceInDouble) { ExpectMatchesReference(torch::kDouble, 1e-10); }

TEST(SelectiveScan, FusedAndChunkedMatchReferenceInFloat) { ExpectMatchesReference(torch::kFloat, 5e-6); }

// Big enough that the backward's threads run at once: the per-task partial sums of dBm and dC
// (summed over channels) and of dA, dDskip (summed over batch) must lose nothing, and come out the
// same every time.
TEST(SelectiveScan, FusedBackwardOnSeveralThreadsIsExactAndDeterministic) {
  const int before = at::get_num_threads();
  at::set_num_threads(std::max(2, before));
  for (const Shape& s : std::vector<Shape>{{1, 24, 300, 16}, {3, 5, 200, 8}}) {
    const auto in = RandomInputs(s, torch::kDouble, 90);
    const torch::Tensor gy = torch::randn({s.b, s.d, s.t}, torch::kDouble);
    const auto ref = OutputAndGrads(in, gy, ScanImpl::kReference);
    const auto first = OutputAndGrads(in, gy, ScanImpl::kFused);
    for (int rep = 0; rep < 3; ++rep) {
      const auto again = OutputAndGrads(in, gy, ScanImpl::kFused);
      for (int i = 0; i < 7; ++i) {
        EXPECT_LE(RelDiff(again[i], ref[i]), 1e-10) << (i ? kNames[i - 1] : "y") << ", " << Str(s);
        EXPECT_TRUE(torch::equal(again[i], first[i]))
            << (i ? kNames[i - 1] : "y") << " differs between runs, " << Str(s);
      }
    }
  }
  at::set_num_threads(before);
}

// A NaN in A reaches the outputs of its channel (and only those), as in the reference: the fused
// float exp must not turn it into a number.
TEST(SelectiveScan, NanInAReachesItsChannel) {
  for (torch::Dtype dtype : {torch::kFloat, torch::kDouble}) {
    auto in = RandomInputs({2, 3, 6, 5}, dtype, 3);
    in[2] = in[2].clone();
    in[2][1][2] = std::nan("");
    for (ScanImpl impl : {ScanImpl::kReference, ScanImpl::kFused, ScanImpl::kChunked}) {
      const torch::Tensor y = SelectiveScan(in[0], in[1], in[2], in[3], in[4], in[5], impl);
      EXPECT_TRUE(torch::isnan(y.select(1, 1)).all().item<bool>()) << "impl " << int(impl);
      EXPECT_TRUE(torch::isfinite(y.select(1, 0)).all().item<bool>()) << "impl " << int(impl);
      EXPECT_TRUE(torch::isfinite(y.select(1, 2)).all().item<bool>()) << "impl " << int(impl);
    }
  }
}

TEST(SelectiveScan, AutoIsFusedOnCpu) {
  auto in = RandomInputs({2, 3, 5, 4}, torch::kFloat, 1);
  in[0].requires_grad_(true);
  const torch::Tensor y = SelectiveScan(in[0], in[1], in[2], in[3], in[4], in[5]);
  ASSERT_TRUE(y.grad_fn());
  EXPECT_NE(y.grad_fn()->name().find("FusedScan"), std::string::npos) << y.grad_fn()->name();
}

// Central differences of L = <y, gy> in double against kFused's backward, every element of every
// input.
TEST(SelectiveScan, FusedGradientsMatchFiniteDifferences) {
  uint64_t seed = 40;
  for (const Shape& s : std::vector<Shape>{{2, 3, 5, 4}, {1, 2, 6, 3}, {2, 1, 1, 2}}) {
    auto in = RandomInputs(s, torch::kDouble, ++seed);
    for (auto& x : in) x = x.contiguous();
    const torch::Tensor gy = torch::randn({s.b, s.d, s.t}, torch::kDouble);
    const auto analytic = OutputAndGrads(in, gy, ScanImpl::kFused);
    auto loss = [&] {
      torch::NoGradGuard no_grad;
      return (SelectiveScan(in[0], in[1], in[2], in[3], in[4], in[5], ScanImpl::kFused) * gy).sum().item<double>();
    };
    const double eps = 1e-6;
    for (int i = 0; i < 6; ++i) {
      auto flat = in[i].view({-1});
      auto grad = analytic[i + 1].reshape({-1});
      for (int64_t j = 0; j < flat.numel(); ++j) {
        const double keep = flat[j].item<double>();
        flat[j] = keep + eps;
        const double up = loss();
        flat[j] = keep - eps;
        const double down = loss();
        flat[j] = keep;
        const double numeric = (up - down) / (2 * eps), exact = grad[j].item<double>();
        EXPECT_NEAR(exact, numeric, 1e-6 * (1 + std::abs(numeric))) << "d" << kNames[i] << "[" << j << "], " << Str(s);
      }
    }
  }
}

TEST(SelectiveScan, ChangingLaterPositionsNeverChangesEarlierOutputs) {
  std::mt19937_64 rng(5);
  for (ScanImpl impl : {ScanImpl::kReference, ScanImpl::kFused, ScanImpl::kChunked}) {
    for (int rep = 0; rep < 4; ++rep) {
      const Shape s{1 + int64_t(rng() % 2), 1 + int64_t(rng() % 4), 2 + int64_t(rng() % 40), 1 + int64_t(rng() % 9)};
      const auto in = RandomInputs(s, torch::kDouble, 60 + rep);
      const int64_t k = 1 + rng() % (s.t - 1);  // positions < k must not move
      auto changed = in;
      for (int i : {0, 1, 3, 4}) {  // u, delta, Bm, C at t >= k
        changed[i] = in[i].clone();
        changed[i].narrow(2, k, s.t - k).copy_(torch::rand_like(in[i].narrow(2, k, s.t - k)) + 0.5);
      }
      const torch::Tensor y0 = SelectiveScan(in[0], in[1], in[2], in[3], in[4], in[5], impl);
      const torch::Tensor y1 =
          SelectiveScan(changed[0], changed[1], changed[2], changed[3], changed[4], changed[5], impl);
      EXPECT_LE((y0.narrow(2, 0, k) - y1.narrow(2, 0, k)).abs().max().item<double>(), 1e-12)
          << "positions >= " << k << " leaked into earlier outputs, " << Str(s) << " impl " << int(impl);
      EXPECT_GT((y0.narrow(2, k, s.t - k) - y1.narrow(2, k, s.t - k)).abs().max().item<double>(), 1e-6)
          << "changed inputs changed nothing, " << Str(s) << " impl " << int(impl);
    }
  }
}

TEST(SelectiveScan, StepIteratedEqualsScan) {
  uint64_t seed = 80;
  for (torch::Dtype dtype : {torch::kDouble, torch::kFloat}) {
    const double tol = dtype == torch::kDouble ? 1e-10 : 5e-6;
    for (const Shape& s : kShapes) {
      const auto in = RandomInputs(s, dtype, ++seed);
      const torch::Tensor want = SelectiveScan(in[0], in[1], in[2], in[3], in[4], in[5]);
      torch::Tensor h = torch::zeros({s.b, s.d, s.n}, torch::TensorOptions().dtype(dtype));
      std::vector<torch::Tensor> ys;
      for (int64_t t = 0; t < s.t; ++t)
        ys.push_back(SelectiveScanStep(h, in[0].select(2, t), in[1].select(2, t), in[2], in[3].select(2, t),
                                       in[4].select(2, t), in[5]));
      const torch::Tensor got = torch::stack(ys, 2);
      ASSERT_EQ(got.sizes(), want.sizes());
      EXPECT_LE(RelDiff(got, want), tol) << Str(s);
    }
  }
}

// `what` must name the argument: "SelectiveScan: Bm must ...".
template <typename F>
void ExpectInvalid(F&& f, const std::string& fn, const std::string& name) {
  try {
    f();
    ADD_FAILURE() << fn << " accepted a bad " << name;
  } catch (const InternalError& e) {
    EXPECT_EQ(std::string(e.what()).rfind(fn + ": " + name + " ", 0), 0u) << e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not InternalError for a bad " << name << ": " << e.what();
  }
}

TEST(SelectiveScan, BadArgumentsThrowInvalidArgumentNamingThem) {
  const auto good = RandomInputs({2, 3, 5, 4}, torch::kFloat, 7);
  // One bad argument at a time: a wrong shape, then a wrong dtype, for each of the six.
  const std::array<torch::Tensor, 6> wrong_shape = {torch::zeros({2, 3}),    torch::zeros({2, 3, 6}),
                                                    torch::zeros({4, 4}),    torch::zeros({2, 5, 5}),
                                                    torch::zeros({1, 4, 5}), torch::zeros({3, 1})};
  for (int i = 0; i < 6; ++i) {
    for (const torch::Tensor& bad :
         {wrong_shape[i], good[i].to(i == 0 ? torch::kInt : torch::kDouble), torch::Tensor()}) {
      auto in = good;
      in[i] = bad;
      for (ScanImpl impl : {ScanImpl::kAuto, ScanImpl::kReference, ScanImpl::kFused, ScanImpl::kChunked})
        ExpectInvalid([&] { SelectiveScan(in[0], in[1], in[2], in[3], in[4], in[5], impl); }, "SelectiveScan",
                      kNames[i]);
    }
  }
  // The step: h and each of the others.
  std::array<torch::Tensor, 6> step = {good[0].select(2, 0), good[1].select(2, 0), good[2],
                                       good[3].select(2, 0), good[4].select(2, 0), good[5]};
  const std::array<torch::Tensor, 6> wrong_step = {torch::zeros({2}),    torch::zeros({2, 4}), torch::zeros({3}),
                                                   torch::zeros({2, 5}), torch::zeros({3, 4}), torch::zeros({4})};
  torch::Tensor h = torch::zeros({2, 3, 4});
  for (int i = 0; i < 6; ++i) {
    auto in = step;
    in[i] = wrong_step[i];
    ExpectInvalid([&] { SelectiveScanStep(h, in[0], in[1], in[2], in[3], in[4], in[5]); }, "SelectiveScanStep",
                  kNames[i]);
  }
  for (torch::Tensor bad : {torch::zeros({2, 3, 5}), torch::zeros({2, 3, 4}, torch::kDouble), torch::Tensor()})
    ExpectInvalid([&] { SelectiveScanStep(bad, step[0], step[1], step[2], step[3], step[4], step[5]); },
                  "SelectiveScanStep", "h");
  EXPECT_TRUE(torch::equal(h, torch::zeros({2, 3, 4}))) << "a refused step changed h";
}

}  // namespace
}  // namespace bitbyte::models

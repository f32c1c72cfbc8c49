#include "models/reversible.h"

#include <ATen/autocast_mode.h>

#include <cstdint>

#include "models/precision.h"

namespace bitbyte::models {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The stack as one autograd node: it saves only its outputs, and its backward rebuilds each block's
// inputs and gradients from them. The blocks travel as a pointer to the caller's list (saved_data
// holds IValues only); RunRevStack's contract keeps them alive.
class RevStackFn : public torch::autograd::Function<RevStackFn> {
 public:
  static variable_list forward(AutogradContext* ctx, const torch::Tensor& x1, const torch::Tensor& x2,
                               at::TensorList /*params*/, int64_t blocks_address) {
    const auto& blocks = *reinterpret_cast<const std::vector<RevBlock*>*>(blocks_address);
    ctx->saved_data["blocks"] = blocks_address;
    ctx->saved_data["autocast"] = x1.is_cuda() ? at::autocast::is_enabled() : CpuAutocastEnabled();
    ctx->saved_data["device"] = x1.device();
    torch::Tensor a = x1, b = x2;
    for (RevBlock* block : blocks) {
      a = a + block->F(b);
      b = b + block->G(a);
    }
    ctx->save_for_backward({a, b});
    return {a, b};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto& blocks = *reinterpret_cast<const std::vector<RevBlock*>*>(ctx->saved_data["blocks"].toInt());
    const variable_list saved = ctx->get_saved_variables();
    torch::Tensor y1 = saved[0], y2 = saved[1];
    torch::Tensor dy1 = grads[0].defined() ? grads[0] : torch::zeros_like(y1);
    torch::Tensor dy2 = grads[1].defined() ? grads[1] : torch::zeros_like(y2);
    Bf16Scope scope(ctx->saved_data["device"].toDevice(), ctx->saved_data["autocast"].toBool());
    torch::AutoGradMode grad_mode(true);
    std::vector<variable_list> param_grads(blocks.size());
    for (size_t i = blocks.size(); i-- > 0;) {
      RevBlock& block = *blocks[i];
      const variable_list params = block.BlockParameters();
      variable_list& pg = param_grads[i];
      pg.assign(params.size(), torch::Tensor());
      // G: y2 = x2 + G(y1).
      const torch::Tensor y1d = y1.detach().requires_grad_(true);
      const torch::Tensor g = block.G(y1d);
      variable_list inputs = {y1d};
      inputs.insert(inputs.end(), params.begin(), params.end());
      variable_list d = torch::autograd::grad({g}, inputs, {dy2}, false, false, true);
      torch::Tensor dx1 = d[0].defined() ? dy1 + d[0] : dy1;
      for (size_t k = 0; k < params.size(); ++k) pg[k] = d[k + 1];
      const torch::Tensor x2 = (y2 - g.detach()).detach();
      // F: y1 = x1 + F(x2).
      const torch::Tensor x2d = x2.requires_grad_(true);
      const torch::Tensor f = block.F(x2d);
      inputs[0] = x2d;
      d = torch::autograd::grad({f}, inputs, {dx1}, false, false, true);
      const torch::Tensor dx2 = d[0].defined() ? dy2 + d[0] : dy2;
      for (size_t k = 0; k < params.size(); ++k)
        if (d[k + 1].defined()) pg[k] = pg[k].defined() ? pg[k] + d[k + 1] : d[k + 1];
      y1 = (y1 - f.detach()).detach();
      y2 = x2.detach();
      dy1 = dx1;
      dy2 = dx2;
    }
    variable_list out = {dy1, dy2};
    for (variable_list& pg : param_grads) out.insert(out.end(), pg.begin(), pg.end());
    out.emplace_back();  // blocks_address
    return out;
  }
};

}  // namespace

std::vector<torch::Tensor> RunRevStack(const std::vector<RevBlock*>& blocks, const torch::Tensor& x1,
                                       const torch::Tensor& x2, bool reversible) {
  if (!reversible || !torch::GradMode::is_enabled()) {
    torch::Tensor a = x1, b = x2;
    for (RevBlock* block : blocks) {
      a = a + block->F(b);
      b = b + block->G(a);
    }
    return {a, b};
  }
  std::vector<torch::Tensor> params;
  for (RevBlock* block : blocks) {
    std::vector<torch::Tensor> p = block->BlockParameters();
    params.insert(params.end(), p.begin(), p.end());
  }
  return RevStackFn::apply(x1, x2, at::TensorList(params), reinterpret_cast<int64_t>(&blocks));
}

}  // namespace bitbyte::models

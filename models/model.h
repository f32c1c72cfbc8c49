#pragma once
// The interface every track implements. A ByteModel maps bytes to next-byte logits; the
// training stack, evaluation and generation use nothing else.
#include <torch/torch.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

namespace bitbyte::models {
namespace qat {
class QatModel;
}

class ByteModel : public torch::nn::Module {
 public:
  // bytes: [B, T] int64 in [0, 256), T <= context(). Returns logits [B, T, 256] (float32):
  // position t predicts byte t + 1 from bytes 0..t only.
  virtual torch::Tensor forward(const torch::Tensor& bytes) = 0;

  virtual int64_t context() const = 0;

  // The training loss: the mean over the B x T predicted bytes of -log p(y | x) in nats, a float32
  // scalar with gradients. x [B, T] bytes, y [B, T] the byte after each (y[:, t] = x[:, t + 1]
  // inside a window). Default: cross-entropy of forward()'s logits. A track that predicts bits sums
  // the 8 bits' -log p of each byte, so every track's loss is on the same per-byte scale.
  virtual torch::Tensor Loss(const torch::Tensor& x, const torch::Tensor& y);
  // The sum of -log p(y | x) in nats over the B x T predicted bytes (evaluation; no gradient),
  // in float64 where the model's output allows. Default: log-softmax of forward()'s logits.
  virtual double Nats(const torch::Tensor& x, const torch::Tensor& y);
  // The logits [B, 256] of the byte after each row of `bytes` [B, T] (T >= 1, T <= context()):
  // forward()'s last position, which is what the default computes.
  virtual torch::Tensor NextLogits(const torch::Tensor& bytes);
  // The model's probability that each bit of each target byte is 1 given all before it (the bytes
  // before, and the byte's own earlier bits, most significant first): [B, T, 8] float64, for x and
  // y as Loss takes them. Telemetry (train/telemetry.h). Default: from forward()'s distributions
  // (BitConditionals).
  virtual torch::Tensor BitProbabilities(const torch::Tensor& x, const torch::Tensor& y);
  // Runs every layer over `bytes` [B, T] with no result wanted: calibration passes that record
  // what layers see. Default: forward().
  virtual void Trace(const torch::Tensor& bytes);

  // Whether AdamW's weight decay applies to this parameter. Default: matrices, except embeddings.
  virtual bool Decays(const std::string& name, const torch::Tensor& param) const;

  // One line: track, sizes and parameter count.
  virtual std::string Describe() const = 0;

  // Recurrent generation: continues `batch` sequences one byte at a time with O(1) work and
  // state per byte. Step(bytes [B] int64) returns the logits [B, 256] predicting the next byte
  // after all bytes stepped so far; they equal forward()'s logits at that position.
  class Stepper {
   public:
    virtual ~Stepper() = default;
    virtual torch::Tensor Step(const torch::Tensor& bytes) = 0;
    // Steps bytes [B, T] (T >= 1) in order and returns the logits after the last; a track may do it
    // in one pass (BitByteLM fills its cache from one forward pass over a prompt).
    virtual torch::Tensor Feed(const torch::Tensor& bytes) {
      torch::Tensor last;
      for (int64_t t = 0; t < bytes.size(1); ++t) last = Step(bytes.select(1, t));
      return last;
    }
  };
  // nullptr (the default): the model has no recurrent form, and generation re-runs forward over
  // a sliding window of context() bytes. `window`: the longest run of positions the stepper may
  // use (the training windows; a model with positions never goes beyond them).
  virtual std::unique_ptr<Stepper> MakeStepper(int64_t /*batch*/, int64_t /*window*/) { return nullptr; }

  int64_t ParameterCount() const;

  // Progressive depth (growth.depth in the training config): the model runs only its first
  // `depth` blocks (negative: all); the blocks above cost nothing and get no gradient.
  virtual void SetActiveDepth(int64_t depth) { active_depth_ = depth; }
  // How many of `blocks` blocks run.
  int64_t ActiveBlocks(int64_t blocks) const { return active_depth_ < 0 ? blocks : std::min(active_depth_, blocks); }
  // Makes blocks `first`.. the identity: the weights and biases of their residual output
  // projections (ResidualOutputs) zero, so that a block switched on later leaves the function as it was.
  void IdentityBlocksFrom(int64_t first);
  // The names, within a block "blocks.<i>.", of the layers that write into the residual stream.
  virtual std::vector<std::string> ResidualOutputs() const { return {"proj.", "fc2."}; }

  // Whether the model generates by iterative denoising (BitTransformerLM's diffusion mode) rather
  // than byte after byte: it then has no next-byte distribution (forward, NextLogits, MakeStepper
  // refuse) and generates with Denoise.
  virtual bool Denoises() const { return false; }
  struct Denoised {
    torch::Tensor bytes;  // [n] int64
    torch::Tensor q;      // [n, 8] float64: the probability of a 1 each bit was drawn with (before temperature)
  };
  // n bytes after `context` [1, C] by `steps` denoising steps; temperature 0 is greedy. Default:
  // InternalError (only models that Denoises()).
  virtual Denoised Denoise(const torch::Tensor& context, int64_t n, int64_t steps, double temperature,
                           at::Generator& gen);

  // probs [..., 256] byte distributions (rows summing to 1), bytes [...] int64: for each row, the
  // probability that bit k (most significant first) of its byte is 1 given the byte's bits before
  // k, under that row's distribution: [..., 8] float64.
  static torch::Tensor BitConditionals(const torch::Tensor& probs, const torch::Tensor& bytes);

  // Quantization-aware training (model.qat, models/qat.h): set by CreateModel when the config asks
  // for it; null otherwise. While the model lives, its Linear layers run quantized when active.
  qat::QatModel* qat() const { return qat_.get(); }
  void set_qat(std::shared_ptr<qat::QatModel> q) { qat_ = std::move(q); }

 private:
  std::shared_ptr<qat::QatModel> qat_;
  int64_t active_depth_ = -1;
};

}  // namespace bitbyte::models

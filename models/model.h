#pragma once
// The interface every track implements. A ByteModel maps bytes to next-byte logits; the
// training stack, evaluation and generation use nothing else.
#include <torch/torch.h>

#include <memory>
#include <string>

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

  // Quantization-aware training (model.qat, models/qat.h): set by CreateModel when the config asks
  // for it; null otherwise. While the model lives, its Linear layers run quantized when active.
  qat::QatModel* qat() const { return qat_.get(); }
  void set_qat(std::shared_ptr<qat::QatModel> q) { qat_ = std::move(q); }

 private:
  std::shared_ptr<qat::QatModel> qat_;
};

}  // namespace bitbyte::models

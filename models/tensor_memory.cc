#include "models/tensor_memory.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>

#include <atomic>
#include <mutex>
#include <unordered_map>
#include <utility>

namespace bitbyte::models::tensor_memory {
namespace {

std::atomic<int64_t> current{0}, peak{0};
std::atomic<bool> installed{false};

// The live counted allocations: the underlying allocation (freed with the entry) and its size, by
// data pointer. LibTorch's raw_allocate wants a storage's context to be its data pointer, so the
// size cannot travel in the context.
struct Live {
  std::mutex mu;
  std::unordered_map<void*, std::pair<c10::DataPtr, int64_t>> map;
};

Live& live() {
  static Live* l = new Live;  // never destroyed: storages may be freed during static destruction
  return *l;
}

void Release(void* data) {
  std::pair<c10::DataPtr, int64_t> entry;
  {
    Live& l = live();
    std::lock_guard<std::mutex> lock(l.mu);
    auto it = l.map.find(data);
    if (it == l.map.end()) return;
    entry = std::move(it->second);
    l.map.erase(it);
  }
  current.fetch_sub(entry.second, std::memory_order_relaxed);
}  // entry.first frees the memory through its own deleter

class CountingAllocator : public c10::Allocator {
 public:
  explicit CountingAllocator(c10::Allocator* inner) : inner_(inner) {}

  c10::DataPtr allocate(size_t n) const override {
    c10::DataPtr p = inner_->allocate(n);
    void* data = p.get();
    if (data == nullptr) return p;  // empty storages: nothing to count
    const c10::Device device = p.device();
    const auto bytes = static_cast<int64_t>(n);
    {
      Live& l = live();
      std::lock_guard<std::mutex> lock(l.mu);
      l.map.emplace(data, std::make_pair(std::move(p), bytes));
    }
    const int64_t now = current.fetch_add(bytes, std::memory_order_relaxed) + bytes;
    int64_t seen = peak.load(std::memory_order_relaxed);
    while (now > seen && !peak.compare_exchange_weak(seen, now, std::memory_order_relaxed)) {
    }
    return {data, data, &Release, device};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &Release; }

 private:
  c10::Allocator* inner_;
};

}  // namespace

void Install() {
  if (installed.exchange(true)) return;
  static CountingAllocator allocator(c10::GetCPUAllocator());
  c10::SetAllocator(c10::DeviceType::CPU, &allocator, /*priority=*/1);
  ResetPeak();
}

bool Installed() { return installed.load(); }

int64_t Current() { return current.load(std::memory_order_relaxed); }

int64_t Peak() { return peak.load(std::memory_order_relaxed); }

void ResetPeak() { peak.store(current.load(std::memory_order_relaxed), std::memory_order_relaxed); }

}  // namespace bitbyte::models::tensor_memory

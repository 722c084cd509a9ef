// What tch 0.24 does not bind. tch::autocast only switches CUDA autocast on,
// with its default dtype (fp16); bf16, and autocast on CPU at all, need these.
#include <ATen/autocast_mode.h>

extern "C" {

// device: 0 = CPU, 1 = CUDA. dtype: 0 = bfloat16, 1 = float16.
void curate_autocast_enter(int device, int dtype) {
    auto dev = device == 1 ? at::kCUDA : at::kCPU;
    at::autocast::set_autocast_dtype(dev, dtype == 1 ? at::kHalf : at::kBFloat16);
    at::autocast::set_autocast_enabled(dev, true);
    at::autocast::increment_nesting();
}

// Autocast caches the low-precision copies of the weights it casts; they go
// stale once the optimizer updates the weights, so the cache is dropped when
// the outermost region ends, as torch.autocast's __exit__ does.
void curate_autocast_exit(int device) {
    auto dev = device == 1 ? at::kCUDA : at::kCPU;
    at::autocast::set_autocast_enabled(dev, false);
    if (at::autocast::decrement_nesting() == 0) {
        at::autocast::clear_cache();
    }
}

}

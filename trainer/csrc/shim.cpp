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

// torch.optim.AdamW(fused=True)'s kernel, on CPU and CUDA: one call updates
// every parameter of a group, where an op-by-op AdamW reads and writes each
// tensor ten times (and, on a GPU, launches ten kernels per parameter).
#include <ATen/core/Tensor.h>
#include <ATen/ops/_fused_adamw.h>

#include <cstring>
#include <exception>
#include <vector>

extern "C" {

// `step` is one scalar float tensor holding the update count, on the
// parameters' device; the kernel reads it for the bias corrections.
// Returns 0, or 1 with the exception's message in `error`.
int curate_fused_adamw(at::Tensor** params, at::Tensor** grads, at::Tensor** exp_avgs, at::Tensor** exp_avg_sqs,
                       at::Tensor* step, int n, double lr, double beta1, double beta2, double weight_decay,
                       double eps, char* error, int error_len) {
    try {
        std::vector<at::Tensor> p, g, m, v, s;
        for (int i = 0; i < n; i++) {
            p.push_back(*params[i]);
            g.push_back(*grads[i]);
            m.push_back(*exp_avgs[i]);
            v.push_back(*exp_avg_sqs[i]);
            s.push_back(*step);
        }
        at::_fused_adamw_(p, g, m, v, {}, s, lr, beta1, beta2, weight_decay, eps, false, false);
        return 0;
    } catch (const std::exception& e) {
        std::strncpy(error, e.what(), error_len - 1);
        error[error_len - 1] = 0;
        return 1;
    }
}

// `param.grad = None`: the next backward pass stores its gradient instead
// of adding it to zeros, which saves a pass over every gradient.
void curate_reset_grad(at::Tensor* t) {
    t->mutable_grad().reset();
}

}

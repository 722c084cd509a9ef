// c10d from Rust: PyTorch's own TCPStore, Gloo (CPU) and NCCL (CUDA)
// process groups, and a gradient reducer that sends buckets while the
// backward pass is still running, as DistributedDataParallel's does.
//
// Every entry point returns 0, or 1 with a message in `error` (the
// exception's text without its C++ backtrace). The Rust side
// (src/distributed/) names the rank and the collective around it.

#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef CURATE_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

namespace {

int fail(char* error, int error_len, const std::string& message) {
    std::strncpy(error, message.c_str(), error_len - 1);
    error[error_len - 1] = 0;
    return 1;
}

// Runs `body`; an exception becomes 1 and its message.
template <typename F>
int guarded(char* error, int error_len, F body) {
    try {
        body();
        return 0;
    } catch (const c10::Error& e) {
        return fail(error, error_len, e.what_without_backtrace());
    } catch (const std::exception& e) {
        return fail(error, error_len, e.what());
    }
}

}  // namespace

struct curate_store {
    c10::intrusive_ptr<c10d::TCPStore> store;
};

struct curate_group {
    c10::intrusive_ptr<c10d::Store> store;
    c10::intrusive_ptr<c10d::Backend> backend;
    int rank;
    int size;
};

extern "C" {

int curate_nccl_available() {
#ifdef CURATE_NCCL
    return 1;
#else
    return 0;
#endif
}

// A store server that no rank owns, as torchrun's agent hosts one: the
// ranks all connect to it as clients (TORCHELASTIC_USE_AGENT_STORE).
// `port` 0 picks a free one, written to `port_out`.
int curate_store_serve(int port, int timeout_ms, curate_store** out, int* port_out, char* error, int error_len) {
    return guarded(error, error_len, [&] {
        c10d::TCPStoreOptions opts;
        opts.port = static_cast<uint16_t>(port);
        opts.isServer = true;
        opts.waitWorkers = false;
        opts.timeout = std::chrono::milliseconds(timeout_ms);
        auto store = c10::make_intrusive<c10d::TCPStore>("127.0.0.1", opts);
        *port_out = store->getPort();
        *out = new curate_store{store};
    });
}

void curate_store_free(curate_store* s) {
    delete s;
}

// Joins the group: rank 0 hosts the store unless `agent_store`; keys live
// under `prefix` (torchrun's "/worker/attempt_N"). backend: 0 Gloo, 1 NCCL.
// `device` is the CUDA device of this rank (NCCL) or ignored (Gloo).
int curate_group_new(const char* host, int port, int agent_store, const char* prefix, int rank, int size,
                     int backend, int device, int timeout_ms, curate_group** out, char* error, int error_len) {
    return guarded(error, error_len, [&] {
        auto timeout = std::chrono::milliseconds(timeout_ms);
        c10d::TCPStoreOptions opts;
        opts.port = static_cast<uint16_t>(port);
        opts.isServer = !agent_store && rank == 0;
        opts.numWorkers = agent_store ? std::nullopt : std::optional<std::size_t>(size);
        opts.waitWorkers = !agent_store;
        opts.timeout = timeout;
        c10::intrusive_ptr<c10d::Store> store = c10::make_intrusive<c10d::TCPStore>(std::string(host), opts);
        store = c10::make_intrusive<c10d::PrefixStore>(std::string(prefix), store);
        c10::intrusive_ptr<c10d::Backend> pg;
        if (backend == 1) {
#ifdef CURATE_NCCL
            auto options = c10d::ProcessGroupNCCL::Options::create();
            options->timeout = timeout;
            c10::cuda::set_device(static_cast<c10::DeviceIndex>(device));
            pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, size, options);
#else
            throw std::runtime_error("this curate-train was built without NCCL (no CUDA headers at build time)");
#endif
        } else {
            auto options = c10d::ProcessGroupGloo::Options::create(timeout);
            const char* iface = std::getenv("GLOO_SOCKET_IFNAME");
            std::string h(host);
            if (iface != nullptr && *iface != 0) {
                options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(iface));
            } else if (h == "127.0.0.1" || h == "localhost") {
                options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
            } else {
                options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
            }
            pg = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, size, options);
        }
        *out = new curate_group{store, pg, rank, size};
    });
}

void curate_group_free(curate_group* g) {
    delete g;
}

// op: 0 sum, 1 max.
int curate_all_reduce(curate_group* g, at::Tensor* t, int op, char* error, int error_len) {
    return guarded(error, error_len, [&] {
        std::vector<at::Tensor> tensors{*t};
        c10d::AllreduceOptions opts;
        opts.reduceOp = op == 1 ? c10d::ReduceOp::MAX : c10d::ReduceOp::SUM;
        g->backend->allreduce(tensors, opts)->wait();
    });
}

int curate_broadcast(curate_group* g, at::Tensor* t, int root, char* error, int error_len) {
    return guarded(error, error_len, [&] {
        std::vector<at::Tensor> tensors{*t};
        c10d::BroadcastOptions opts;
        opts.rootRank = root;
        g->backend->broadcast(tensors, opts)->wait();
    });
}

// `output` holds size × input.numel() elements: rank r's input lands at r.
int curate_all_gather(curate_group* g, at::Tensor* output, at::Tensor* input, char* error, int error_len) {
    return guarded(error, error_len, [&] { g->backend->_allgather_base(*output, *input)->wait(); });
}

// Sums `input` (size × output.numel()) over ranks; rank r keeps chunk r.
int curate_reduce_scatter(curate_group* g, at::Tensor* output, at::Tensor* input, char* error, int error_len) {
    return guarded(error, error_len, [&] { g->backend->_reduce_scatter_base(*output, *input)->wait(); });
}

// Rank `root` receives every rank's `input` into `output` (size × numel),
// which the other ranks pass as null.
int curate_gather(curate_group* g, at::Tensor* input, at::Tensor* output, int root, char* error, int error_len) {
    return guarded(error, error_len, [&] {
        std::vector<at::Tensor> inputs{*input};
        std::vector<std::vector<at::Tensor>> outputs;
        if (g->rank == root) {
            outputs.emplace_back(output->chunk(g->size));
        }
        c10d::GatherOptions opts;
        opts.rootRank = root;
        g->backend->gather(outputs, inputs, opts)->wait();
    });
}

int curate_barrier(curate_group* g, char* error, int error_len) {
    return guarded(error, error_len, [&] { g->backend->barrier()->wait(); });
}

}  // extern "C"

// The reducer. Parameters are laid out, in the order their gradients
// become ready, in buckets (the layout is computed on the Rust side from
// the order recorded by a calibration pass). When the last gradient of a
// bucket has been accumulated, the bucket is copied into a flat buffer,
// divided by the world size and sent: all-reduced (data parallel, ZeRO-1)
// or reduce-scattered into this rank's share of it (ZeRO-2). Buckets are sent in
// layout order only, so every rank issues the same collectives in the
// same sequence.
namespace {

struct Bucket {
    int64_t start = 0;
    int64_t len = 0;
    std::vector<int> members;
    int64_t expected = 0;
    int64_t pending = 0;
    at::Tensor flat;
    c10::intrusive_ptr<c10d::Work> work;
    // All-reduced in place, this rank's share still to be taken (mode 2
    // without a native reduce-scatter).
    bool take_share = false;
    // Mode 2: this rank's share of the averaged bucket, made as the bucket
    // completes, so that it grows with the backward pass like the buckets.
    at::Tensor share;
};

}  // namespace

struct curate_reducer {
    curate_group* group;
    std::vector<at::Tensor> params;
    // Calibration: the order gradients became ready, and how many times each
    // was accumulated in one backward pass (twice for a tied embedding under
    // activation checkpointing, which runs backward in pieces).
    bool calibrating = false;
    std::vector<int> order;
    std::vector<int> counts;
    // The layout.
    int mode = 0;  // 1 all-reduce, 2 reduce-scatter into each bucket's `share`
    std::vector<int> bucket_of;
    std::vector<int64_t> offset_of;  // in the flat layout
    std::vector<int> expected_of;
    std::vector<Bucket> buckets;
    bool native_reduce_scatter = false;  // NCCL's; Gloo's is an all-reduce
    bool armed = false;
    size_t next = 0;
    std::string error;

    void ready(int index) {
        if (calibrating) {
            if (counts[index]++ == 0) {
                order.push_back(index);
            }
            return;
        }
        if (!armed || !error.empty() || buckets.empty()) {
            return;
        }
        buckets[bucket_of[index]].pending -= 1;
        while (next < buckets.size() && buckets[next].pending <= 0) {
            launch(next++);
        }
    }

    // After a bucket's collective: this rank's share kept (when it was
    // all-reduced), and the bucket's buffer dropped.
    void complete(Bucket& bucket) {
        if (bucket.take_share) {
            int64_t n = bucket.len / group->size;
            bucket.share = bucket.flat.narrow(0, group->rank * n, n).clone();
            bucket.take_share = false;
        }
        bucket.work.reset();
        bucket.flat = at::Tensor();
    }

    // Under ZeRO-2 a bucket's buffer is only needed until its collective is
    // done: those that are done are dropped before the next one is made, so
    // at most the buckets in flight are held.
    void release_sent() {
        for (size_t i = 0; i < next; i++) {
            Bucket& done = buckets[i];
            if (done.work && done.work->isCompleted()) {
                done.work->wait();  // rethrows a failure
                complete(done);
            }
        }
    }

    void launch(size_t b) {
        try {
            at::NoGradGuard no_grad;
            if (mode == 2) {
                release_sent();
            }
            Bucket& bucket = buckets[b];
            const at::Tensor& first = params[bucket.members.front()];
            // Every element is written below: a gradient, or zeros for a
            // gradient that did not arrive and for the padding at the end.
            bucket.flat = at::empty({bucket.len}, first.options().requires_grad(false));
            int64_t end = 0;
            for (int m : bucket.members) {
                const at::Tensor& grad = params[m].grad();
                at::Tensor slot = bucket.flat.narrow(0, offset_of[m] - bucket.start, params[m].numel());
                if (grad.defined()) {
                    slot.copy_(grad.reshape(-1));
                } else {
                    slot.zero_();
                }
                end = std::max(end, offset_of[m] - bucket.start + params[m].numel());
                // The bucket holds the gradient now: dropping `.grad` at once
                // keeps one copy of the gradients alive, not two, while the
                // rest of the backward pass runs. (finish() puts views of
                // the averaged bucket back, or nothing under ZeRO-2.)
                params[m].mutable_grad().reset();
            }
            bucket.flat.narrow(0, end, bucket.len - end).zero_();
            bucket.flat.div_(group->size);
            std::vector<at::Tensor> tensors{bucket.flat};
            if (mode == 2 && native_reduce_scatter) {
                bucket.share = at::empty({bucket.len / group->size}, bucket.flat.options());
                bucket.work = group->backend->_reduce_scatter_base(bucket.share, bucket.flat);
            } else {
                // c10d's Gloo reduce-scatter works on a copy of its input
                // (measured: twice the bucket's memory held during the
                // backward pass). All-reducing the bucket in place and
                // keeping this rank's share holds it once.
                bucket.work = group->backend->allreduce(tensors);
                bucket.take_share = mode == 2;
            }
        } catch (const c10::Error& e) {
            error = std::string(mode == 2 && native_reduce_scatter ? "reduce-scatter" : "all-reduce") +
                    " of gradient bucket " +
                    std::to_string(b + 1) + " of " + std::to_string(buckets.size()) + ": " + e.what_without_backtrace();
        } catch (const std::exception& e) {
            error = std::string("gradient bucket ") + std::to_string(b + 1) + ": " + e.what();
        }
    }
};

namespace {

struct ReadyHook : torch::autograd::PostAccumulateGradHook {
    curate_reducer* reducer;
    int index;
    ReadyHook(curate_reducer* r, int i) : reducer(r), index(i) {}
    void operator()(const torch::autograd::Variable&) override {
        reducer->ready(index);
    }
};

}  // namespace

extern "C" {

int curate_reducer_new(curate_group* g, at::Tensor** params, int n, curate_reducer** out, char* error,
                       int error_len) {
    return guarded(error, error_len, [&] {
        auto* r = new curate_reducer();
        r->group = g;
        r->counts.assign(n, 0);
        for (int i = 0; i < n; i++) {
            r->params.push_back(*params[i]);
            torch::autograd::impl::set_post_acc_grad_hooks(*params[i], std::make_unique<ReadyHook>(r, i));
        }
        *out = r;
    });
}

void curate_reducer_free(curate_reducer* r) {
    for (auto& p : r->params) {
        torch::autograd::impl::set_post_acc_grad_hooks(p, nullptr);
    }
    delete r;
}

// on: start recording; off: stop. `order` (n entries, -1 past the end)
// and `counts` receive what was recorded.
void curate_reducer_calibrate(curate_reducer* r, int on, int* order, int* counts) {
    r->calibrating = on != 0;
    if (on) {
        r->order.clear();
        r->counts.assign(r->params.size(), 0);
        return;
    }
    for (size_t i = 0; i < r->params.size(); i++) {
        order[i] = i < r->order.size() ? r->order[i] : -1;
        counts[i] = r->counts[i];
    }
}

// The layout: parameter i sits at flat offset `offset[i]` in bucket
// `bucket[i]` and is accumulated `expected[i]` times per backward pass;
// bucket b spans [starts[b], starts[b] + lens[b]), each len a multiple of
// the world size.
int curate_reducer_layout(curate_reducer* r, int mode, const int* bucket, const int64_t* offset, const int* expected,
                          int n_buckets, const int64_t* starts, const int64_t* lens, char* error, int error_len) {
    return guarded(error, error_len, [&] {
        r->mode = mode;
        r->bucket_of.assign(bucket, bucket + r->params.size());
        r->offset_of.assign(offset, offset + r->params.size());
        r->expected_of.assign(expected, expected + r->params.size());
        r->buckets.assign(n_buckets, Bucket());
        for (int b = 0; b < n_buckets; b++) {
            r->buckets[b].start = starts[b];
            r->buckets[b].len = lens[b];
        }
        for (size_t i = 0; i < r->params.size(); i++) {
            r->buckets[r->bucket_of[i]].members.push_back(static_cast<int>(i));
            r->buckets[r->bucket_of[i]].expected += r->expected_of[i];
        }
        for (auto& b : r->buckets) {
            TORCH_CHECK(!b.members.empty(), "a gradient bucket without parameters");
        }
        r->native_reduce_scatter = r->group->backend->getBackendName() != "gloo";
    });
}

// Arms the reducer for the next backward pass (the last micro-batch of a
// step); unarmed, gradients accumulate locally and nothing is sent.
void curate_reducer_arm(curate_reducer* r) {
    r->armed = true;
    r->next = 0;
    r->error.clear();
    for (auto& b : r->buckets) {
        b.pending = b.expected;
        b.flat = at::Tensor();
        b.work.reset();
        b.take_share = false;
        b.share = at::Tensor();
    }
}

// Sends what the backward pass left unsent (gradients that did not arrive),
// waits for every bucket, and leaves the averaged gradients in `.grad`
// (mode 1, as views of the bucket) or in the buckets' shares (mode 2, see
// curate_reducer_take_share).
int curate_reducer_finish(curate_reducer* r, char* error, int error_len) {
    if (!r->armed) {
        return 0;
    }
    r->armed = false;
    while (r->error.empty() && r->next < r->buckets.size()) {
        r->launch(r->next++);
    }
    if (!r->error.empty()) {
        return fail(error, error_len, r->error);
    }
    const char* what = r->mode == 2 && r->native_reduce_scatter ? "reduce-scatter" : "all-reduce";
    for (size_t b = 0; b < r->buckets.size(); b++) {
        auto& bucket = r->buckets[b];
        if (!bucket.work) {
            continue;  // done, and released during the backward pass
        }
        int failed = guarded(error, error_len, [&] { bucket.work->wait(); });
        if (failed) {
            std::string message = std::string(what) + " of gradient bucket " + std::to_string(b + 1) + " of " +
                                  std::to_string(r->buckets.size()) + ": " + error;
            return fail(error, error_len, message);
        }
        if (r->mode == 1) {
            for (int m : bucket.members) {
                at::Tensor& p = r->params[m];
                p.mutable_grad() = bucket.flat.narrow(0, r->offset_of[m] - bucket.start, p.numel()).view(p.sizes());
            }
        }
        r->complete(bucket);
    }
    return 0;
}

// Mode 2, after finish: bucket b's share, handed over (a new handle the
// caller owns, or null when there is none).
at::Tensor* curate_reducer_take_share(curate_reducer* r, int b) {
    at::Tensor share = std::move(r->buckets[b].share);
    r->buckets[b].share = at::Tensor();
    return share.defined() ? new at::Tensor(std::move(share)) : nullptr;
}

}  // extern "C"

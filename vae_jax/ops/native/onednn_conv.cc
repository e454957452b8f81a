// The 4x4, stride-2, padding-1 convolution of the conv encoder and deconv decoder,
// computed by oneDNN (the library behind PyTorch's CPU convolutions) and exposed to
// XLA:CPU as three FFI handlers: forward, gradient w.r.t. the input ("backward
// data", which is also the transposed convolution) and gradient w.r.t. the kernel.
// Data is NHWC and kernels HWIO, as flax and lax use them. Built by
// `python -m vae_jax.ops.native` against the pinned oneDNN 3 wheel; used through
// vae_jax/ops/onednn.py.
//
// Each shape's primitives are created once and cached (the cache under a mutex). The
// scratchpad is user-managed on purpose: in oneDNN's default ("library") mode the
// scratchpad is a thread-local buffer sized when a primitive is *created*, but XLA runs
// custom calls on whichever pool thread is free, so a primitive created on one thread
// and executed on another found a missing or too small scratchpad ("could not execute a
// primitive", or heap corruption where the kernel wrote past it). Kernels that need no
// scratchpad (most AVX-512 ones) hid it. Each call allocates its own scratchpad, so the
// same primitive can run on several threads at once (oneDNN's rule for concurrent
// execution): XLA's devices of one process (a sweep over 8 host devices, say) call the
// handlers concurrently and wait for each other in collectives, so no call may hold a
// lock for the length of a convolution.
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>

#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

namespace {

dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

struct Conv {
  dnnl::convolution_forward::primitive_desc fwd_pd;
  dnnl::convolution_backward_data::primitive_desc bwd_data_pd;
  dnnl::convolution_backward_weights::primitive_desc bwd_weights_pd;
  dnnl::convolution_forward fwd;
  dnnl::convolution_backward_data bwd_data;
  dnnl::convolution_backward_weights bwd_weights;
  memory::desc src, dst, user_weights;
};

std::mutex mu;

// Key: batch, input channels, input height, input width, output channels. Entries are never
// removed, so a reference stays valid after the lock is released.
const Conv& GetConv(int64_t b, int64_t c, int64_t h, int64_t w, int64_t o) {
  static std::map<std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t>, std::unique_ptr<Conv>> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto key = std::make_tuple(b, c, h, w, o);
  auto it = cache.find(key);
  if (it != cache.end()) return *it->second;
  auto conv = std::make_unique<Conv>();
  const memory::dims strides = {2, 2}, pad = {1, 1};
  conv->src = memory::desc({b, c, h, w}, dt::f32, tag::nhwc);
  conv->dst = memory::desc({b, o, h / 2, w / 2}, dt::f32, tag::nhwc);
  conv->user_weights = memory::desc({o, c, 4, 4}, dt::f32, tag::hwio);
  const memory::desc any_weights({o, c, 4, 4}, dt::f32, tag::any);
  auto& eng = Engine();
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  const auto algo = dnnl::algorithm::convolution_direct;
  conv->fwd_pd = dnnl::convolution_forward::primitive_desc(eng, dnnl::prop_kind::forward_training, algo,
                                                           conv->src, any_weights, conv->dst, strides, pad,
                                                           pad, attr);
  conv->bwd_data_pd = dnnl::convolution_backward_data::primitive_desc(
      eng, algo, conv->src, any_weights, conv->dst, strides, pad, pad, conv->fwd_pd, attr);
  conv->bwd_weights_pd = dnnl::convolution_backward_weights::primitive_desc(
      eng, algo, conv->src, any_weights, conv->dst, strides, pad, pad, conv->fwd_pd, attr);
  conv->fwd = dnnl::convolution_forward(conv->fwd_pd);
  conv->bwd_data = dnnl::convolution_backward_data(conv->bwd_data_pd);
  conv->bwd_weights = dnnl::convolution_backward_weights(conv->bwd_weights_pd);
  return *(cache[key] = std::move(conv));
}

// A scratchpad of this call's own for a primitive.
template <typename PrimitiveDesc>
memory Scratchpad(const PrimitiveDesc& pd) {
  return memory(pd.scratchpad_desc(), Engine());
}

// The user's HWIO kernel in the layout a primitive wants (a reorder when they differ).
memory WeightsFor(const memory::desc& want, const memory::desc& user, void* data, dnnl::stream& s) {
  memory user_mem(user, Engine(), data);
  if (want == user) return user_mem;
  memory mem(want, Engine());
  dnnl::reorder(user_mem, mem).execute(s, user_mem, mem);
  return mem;
}

// A oneDNN failure becomes an XLA error (a Python exception), not an abort.
template <typename Body>
ffi::Error Guarded(Body body) {
  try {
    body();
    return ffi::Error::Success();
  } catch (const std::exception& e) {
    return ffi::Error::Internal(std::string("vae_jax oneDNN convolution: ") + e.what());
  }
}

// y = conv(x, k): x [B, H, W, C], k [4, 4, C, O] -> y [B, H/2, W/2, O].
ffi::Error ConvFwdImpl(ffi::BufferR4<ffi::F32> x, ffi::BufferR4<ffi::F32> k, ffi::ResultBufferR4<ffi::F32> y) {
  return Guarded([&] {
    auto xd = x.dimensions();
    auto kd = k.dimensions();
    const Conv& conv = GetConv(xd[0], xd[3], xd[1], xd[2], kd[3]);
    dnnl::stream s(Engine());
    memory src(conv.src, Engine(), x.typed_data());
    memory dst(conv.dst, Engine(), y->typed_data());
    memory wei = WeightsFor(conv.fwd_pd.weights_desc(), conv.user_weights, k.typed_data(), s);
    memory scratch = Scratchpad(conv.fwd_pd);  // alive until s.wait()
    conv.fwd.execute(s, {{DNNL_ARG_SRC, src},
                         {DNNL_ARG_WEIGHTS, wei},
                         {DNNL_ARG_DST, dst},
                         {DNNL_ARG_SCRATCHPAD, scratch}});
    s.wait();
  });
}

// dx = conv^T(dy, k): dy [B, H/2, W/2, O], k [4, 4, C, O] -> dx [B, H, W, C].
ffi::Error ConvBwdDataImpl(ffi::BufferR4<ffi::F32> dy, ffi::BufferR4<ffi::F32> k,
                           ffi::ResultBufferR4<ffi::F32> dx) {
  return Guarded([&] {
    auto xd = dx->dimensions();
    auto kd = k.dimensions();
    const Conv& conv = GetConv(xd[0], xd[3], xd[1], xd[2], kd[3]);
    dnnl::stream s(Engine());
    memory diff_dst(conv.dst, Engine(), dy.typed_data());
    memory diff_src(conv.src, Engine(), dx->typed_data());
    memory wei = WeightsFor(conv.bwd_data_pd.weights_desc(), conv.user_weights, k.typed_data(), s);
    memory scratch = Scratchpad(conv.bwd_data_pd);  // alive until s.wait()
    conv.bwd_data.execute(s, {{DNNL_ARG_DIFF_DST, diff_dst},
                              {DNNL_ARG_WEIGHTS, wei},
                              {DNNL_ARG_DIFF_SRC, diff_src},
                              {DNNL_ARG_SCRATCHPAD, scratch}});
    s.wait();
  });
}

// dk = sum over the batch of x (x) dy: x [B, H, W, C], dy [B, H/2, W/2, O] -> dk [4, 4, C, O].
ffi::Error ConvBwdWeightsImpl(ffi::BufferR4<ffi::F32> x, ffi::BufferR4<ffi::F32> dy,
                              ffi::ResultBufferR4<ffi::F32> dk) {
  return Guarded([&] {
    auto xd = x.dimensions();
    auto yd = dy.dimensions();
    const Conv& conv = GetConv(xd[0], xd[3], xd[1], xd[2], yd[3]);
    dnnl::stream s(Engine());
    memory src(conv.src, Engine(), x.typed_data());
    memory diff_dst(conv.dst, Engine(), dy.typed_data());
    memory user(conv.user_weights, Engine(), dk->typed_data());
    auto want = conv.bwd_weights_pd.diff_weights_desc();
    memory diff_wei = want == conv.user_weights ? user : memory(want, Engine());
    memory scratch = Scratchpad(conv.bwd_weights_pd);  // alive until s.wait()
    conv.bwd_weights.execute(s, {{DNNL_ARG_SRC, src},
                                 {DNNL_ARG_DIFF_DST, diff_dst},
                                 {DNNL_ARG_DIFF_WEIGHTS, diff_wei},
                                 {DNNL_ARG_SCRATCHPAD, scratch}});
    if (!(want == conv.user_weights)) dnnl::reorder(diff_wei, user).execute(s, diff_wei, user);
    s.wait();
  });
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(VaeConvFwd, ConvFwdImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::BufferR4<ffi::F32>>()
                                  .Arg<ffi::BufferR4<ffi::F32>>()
                                  .Ret<ffi::BufferR4<ffi::F32>>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(VaeConvBwdData, ConvBwdDataImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::BufferR4<ffi::F32>>()
                                  .Arg<ffi::BufferR4<ffi::F32>>()
                                  .Ret<ffi::BufferR4<ffi::F32>>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(VaeConvBwdWeights, ConvBwdWeightsImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::BufferR4<ffi::F32>>()
                                  .Arg<ffi::BufferR4<ffi::F32>>()
                                  .Ret<ffi::BufferR4<ffi::F32>>());

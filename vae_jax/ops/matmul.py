"""4x4, stride-2 convolutions and transposed convolutions written as matrix products.

The conv encoder and deconv decoder are stacks of 4x4, stride-2, 'SAME' layers.
XLA:CPU runs these through its generic convolution kernels, whose gradients are
slow for the small channel counts of these networks. Each layer here computes exactly the same function
with one matrix product that XLA hands to its fast GEMM, plus cheap shifts:

* Convolution (`conv_4x4_s2`): pad by 1 and fold each 2x2 pixel block into the
  channels (space-to-depth); the layer becomes a 2x2 stride-1 convolution, i.e.
  one product `[B*(H/2+1)*(W/2+1), 4C] @ [4C, 4*O]` (the four 2x2 taps side by side),
  after which each output pixel sums its four taps read at shifted positions.
  With very few input channels (the image layer, C=1) the 16 taps are gathered
  first (im2col) instead: a `[B*H*W/4, 16C] @ [16C, O]` product.
* Transposed convolution (`conv_transpose_4x4_s2`): one product
  `[B*H*W, C] @ [C, 16*O]` gives every input pixel's contribution to each of the
  16 kernel taps; output pixel (2k+s, 2l+t) sums the four taps of its parity read
  at shifted positions (col2im), written straight into the interleaved layout.

Both match `lax.conv_general_dilated` / `lax.conv_transpose` ('SAME', stride 2,
HWIO kernel, as `nn.Conv` / `nn.ConvTranspose` use them) to float rounding;
autodiff of these forms is again products and shifts (tests/test_ops.py proves
values and gradients equal). `conv_same` does the same for the VQ-VAE's stride-1
1x1 and 3x3 layers (im2col + one product), which XLA:CPU otherwise runs through
its generic convolution inside `lax.scan`.
"""

import jax
import jax.numpy as jnp
from jax import lax

# At or below this many input channels the convolution gathers its 16 taps (im2col).
IM2COL_MAX_CHANNELS = 4


def _check_even(x: jax.Array) -> None:
    if x.shape[1] % 2 or x.shape[2] % 2:
        raise ValueError(f"a stride-2 4x4 layer needs even height and width, got {x.shape[1:3]}")


# Layouts. A 4x4 stride-2 convolution of x [B, H, W, C] (padding 1) is a 2x2 stride-1
# convolution of xs = _s2d_pad(x) [B, H/2+1, W/2+1, (r, s, c)]: tap (2a + r, 2b + s) of output
# pixel (k, l) reads xs[k + a, l + b]. With the kernel as the matrix K [(r, s, c), (a, b, o)]
# (`_kernel_matrix`), out = _sum_taps(xs @ K). Everything below is products plus these
# four index maps, which come in adjoint pairs: _s2d_pad / _d2s_crop and _sum_taps / _stack_taps.


def _s2d_pad(x: jax.Array) -> jax.Array:
    """[B, H, W, C] -> [B, H/2+1, W/2+1, 4C]: pad by 1, fold 2x2 blocks into channels (r, s, c)."""
    b, h, w, c = x.shape
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    xs = xp.reshape(b, h // 2 + 1, 2, w // 2 + 1, 2, c).transpose(0, 1, 3, 2, 4, 5)
    return xs.reshape(b, h // 2 + 1, w // 2 + 1, 4 * c)


def _d2s_crop(xs: jax.Array) -> jax.Array:
    """The adjoint of _s2d_pad: [B, H/2+1, W/2+1, 4C] -> [B, H, W, C]."""
    b, hs, ws, c4 = xs.shape
    c = c4 // 4
    x = xs.reshape(b, hs, ws, 2, 2, c).transpose(0, 1, 3, 2, 4, 5).reshape(b, 2 * hs, 2 * ws, c)
    return x[:, 1:-1, 1:-1]


def _sum_taps(y: jax.Array) -> jax.Array:
    """[B, ho+1, wo+1, (a, b, O)] -> [B, ho, wo, O]: out[k, l] = sum_{a, b} y[k + a, l + b, (a, b)]."""
    bsz, hs, ws, o4 = y.shape
    ho, wo, o = hs - 1, ws - 1, o4 // 4
    y = y.reshape(bsz, hs, ws, 2, 2, o)
    return sum(y[:, a : a + ho, s : s + wo, a, s] for a in (0, 1) for s in (0, 1))


def _stack_taps(g: jax.Array) -> jax.Array:
    """The adjoint of _sum_taps: [B, ho, wo, O] -> [B, ho+1, wo+1, (a, b, O)]."""
    blocks = [jnp.pad(g, ((0, 0), (a, 1 - a), (s, 1 - s), (0, 0))) for a in (0, 1) for s in (0, 1)]
    return jnp.concatenate(blocks, axis=-1)


def _kernel_matrix(kernel: jax.Array) -> jax.Array:
    """[4, 4, C, O] (taps (2a + r, 2b + s)) -> [(r, s, c), (a, b, o)]."""
    _, _, c, o = kernel.shape
    return kernel.reshape(2, 2, 2, 2, c, o).transpose(1, 3, 4, 0, 2, 5).reshape(4 * c, 4 * o)


def _matrix_kernel(k: jax.Array, c: int, o: int) -> jax.Array:
    """The inverse of _kernel_matrix."""
    return k.reshape(2, 2, c, 2, 2, o).transpose(3, 0, 4, 1, 2, 5).reshape(4, 4, c, o)


def flip_swap(kernel: jax.Array) -> jax.Array:
    """The kernel whose convolution is the adjoint of this kernel's transposed convolution."""
    return kernel[::-1, ::-1].transpose(0, 1, 3, 2)


def _mm(a: jax.Array, b: jax.Array) -> jax.Array:
    """[..., K] @ [K, N] over all leading axes, as one 2-D product."""
    return (a.reshape(-1, a.shape[-1]) @ b).reshape(*a.shape[:-1], b.shape[-1])


def _mm_t(a: jax.Array, b: jax.Array) -> jax.Array:
    """a^T b over all leading axes: [..., M], [..., N] -> [M, N]."""
    return a.reshape(-1, a.shape[-1]).T @ b.reshape(-1, b.shape[-1])


@jax.custom_vjp
def _conv_s2d(x: jax.Array, kernel: jax.Array) -> jax.Array:
    return _sum_taps(_mm(_s2d_pad(x), _kernel_matrix(kernel)))


def _conv_s2d_fwd(x, kernel):
    xs, k = _s2d_pad(x), _kernel_matrix(kernel)
    return _sum_taps(_mm(xs, k)), (xs, k)


def _conv_s2d_bwd(res, g):
    xs, k = res
    gs = _stack_taps(g)  # shared by both gradients
    dx = _d2s_crop(_mm(gs, k.T))
    dk = _mm_t(xs, gs)
    return dx, _matrix_kernel(dk, xs.shape[-1] // 4, g.shape[-1])


_conv_s2d.defvjp(_conv_s2d_fwd, _conv_s2d_bwd)


@jax.custom_vjp
def _conv_transpose_s2d(x: jax.Array, kernel: jax.Array) -> jax.Array:
    return _d2s_crop(_mm(_stack_taps(x), _kernel_matrix(flip_swap(kernel)).T))


def _conv_transpose_s2d_fwd(x, kernel):
    xt, k = _stack_taps(x), _kernel_matrix(flip_swap(kernel))  # k: [(r, s, o), (a, b, c)]
    return _d2s_crop(_mm(xt, k.T)), (xt, k)


def _conv_transpose_s2d_bwd(res, g):
    xt, k = res
    gs = _s2d_pad(g)  # shared by both gradients
    dx = _sum_taps(_mm(gs, k))
    dk = _mm_t(gs, xt)  # [(r, s, o), (a, b, c)]
    o, c = gs.shape[-1] // 4, xt.shape[-1] // 4
    return dx, flip_swap(_matrix_kernel(dk, o, c))


_conv_transpose_s2d.defvjp(_conv_transpose_s2d_fwd, _conv_transpose_s2d_bwd)


def conv_4x4_s2(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """`lax.conv_general_dilated(x, kernel, (2, 2), ((1, 1), (1, 1)))`, NHWC/HWIO, as products."""
    _check_even(x)
    b, h, w, c = x.shape
    if c > IM2COL_MAX_CHANNELS:
        return _conv_s2d(x, kernel)
    # Few input channels (the image): gather the 16 taps, one [B*H*W/4, 16C] @ [16C, O] product.
    ho, wo = h // 2, w // 2
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    taps = [xp[:, i : i + 2 * ho : 2, j : j + 2 * wo : 2] for i in range(4) for j in range(4)]
    return _mm(jnp.concatenate(taps, axis=-1), kernel.reshape(16 * c, -1))


def _shift(a: jax.Array, d: int, axis: int) -> jax.Array:
    """out[k] = a[k + d] along `axis` (d in -1, 0, 1), zero where k + d is outside."""
    if d == 0:
        return a
    n = a.shape[axis]
    pad = [(0, 0)] * a.ndim
    pad[axis] = (1, 0) if d < 0 else (0, 1)
    kept = lax.slice_in_dim(a, 0, n - 1, axis=axis) if d < 0 else lax.slice_in_dim(a, 1, n, axis=axis)
    return jnp.pad(kept, pad)


# Output parity -> the (tap, shift) pairs that reach it: out[2k + p] = sum y[k + shift, tap].
_PARITY_TAPS = {0: ((1, 0), (3, -1)), 1: ((2, 0), (0, 1))}


@jax.custom_vjp
def _col2im(y: jax.Array) -> jax.Array:
    """[B, h, w, 4, 4, O] -> [B, 2h, 2w, O]: out[2k + p, 2l + q] sums y[k + di, l + dj, i, j] over the
    taps (i, di) of row parity p and (j, dj) of column parity q."""
    b, h, w, _, _, o = y.shape
    rows = []
    for p in (0, 1):
        cols = []
        for q in (0, 1):
            terms = [
                _shift(_shift(y[:, :, :, i, j], di, 1), dj, 2)
                for i, di in _PARITY_TAPS[p]
                for j, dj in _PARITY_TAPS[q]
            ]
            cols.append(sum(terms))
        rows.append(jnp.stack(cols, axis=3))  # [B, h, w, 2 (q), O]
    return jnp.stack(rows, axis=2).reshape(b, 2 * h, 2 * w, o)  # [B, h, 2 (p), w, 2 (q), O]


def _col2im_fwd(y):
    return _col2im(y), None


def _col2im_bwd(_, g):
    """The adjoint (a gather), written in one pass; autodiff of the slices above would build
    one full-size, mostly-zero array per tap and add them up."""
    b, h2, w2, o = g.shape
    g = g.reshape(b, h2 // 2, 2, w2 // 2, 2, o)
    tap_of = {i: (p, di) for p, taps in _PARITY_TAPS.items() for i, di in taps}
    rows = []
    for i in range(4):
        p, di = tap_of[i]
        cols = [_shift(_shift(g[:, :, p, :, tap_of[j][0]], -di, 1), -tap_of[j][1], 2) for j in range(4)]
        rows.append(jnp.stack(cols, axis=3))
    return (jnp.stack(rows, axis=3),)


_col2im.defvjp(_col2im_fwd, _col2im_bwd)


def conv_transpose_4x4_s2(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """`lax.conv_transpose(x, kernel, (2, 2), 'SAME')`, NHWC/HWIO, as products."""
    c, o = kernel.shape[2:]
    if 4 * o > c:
        return _conv_transpose_s2d(x, kernel)
    # Few output channels (the image layer): every pixel's 16 tap contributions, then col2im.
    return _col2im(jnp.einsum("bhwc,ijco->bhwijo", x, kernel[::-1, ::-1]))


def conv_same(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """A stride-1 'SAME' convolution (odd kernel, NHWC/HWIO) as one product: the kh*kw taps are
    gathered side by side (im2col), `[B*H*W, kh*kw*C] @ [kh*kw*C, O]`; a 1x1 kernel is a plain
    product over channels. Used for the VQ-VAE's small spatial layers (1x1 and 3x3 on 7x7 grids),
    whose gradients XLA:CPU leaves to its generic convolution inside loops (`lax.scan`)."""
    kh, kw, c, o = kernel.shape
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"conv_same needs an odd kernel, got {kh}x{kw}")
    if (kh, kw) == (1, 1):
        return _mm(x, kernel.reshape(c, o))
    b, h, w, _ = x.shape
    xp = jnp.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
    taps = [xp[:, i : i + h, j : j + w] for i in range(kh) for j in range(kw)]
    return _mm(jnp.concatenate(taps, axis=-1), kernel.reshape(kh * kw * c, o))

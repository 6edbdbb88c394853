"""Useful FLOPs of conv2d and adaptive_conv2d, counted analytically (a multiply-add counts 2).

The benchmark divides these counts by the measured times to get GFLOP/s; the counts
themselves are checked by hand in tests/test_bench.py.

This file imports nothing from the engine: step_worker.py loads it next to another
checkout of the engine (`bench --compare`).
"""
from __future__ import annotations


def conv_output_size(size: int, kernel_size: int, stride: int, padding: int) -> int:
    """(size + 2*padding - m) // stride + 1, as in functional/im2col.py."""
    return (size + 2 * padding - kernel_size) // stride + 1


def _sizes(N: int, C: int, H: int, W: int, m: int, stride: int = 1, padding: int = 0) -> tuple[int, int]:
    """R = N*Ho*Wo locations and D = C*m*m numbers per patch."""
    ho, wo = conv_output_size(H, m, stride, padding), conv_output_size(W, m, stride, padding)
    return N * ho * wo, C * m * m


def conv2d_flops(N: int, C: int, H: int, W: int, m: int, O: int, stride: int = 1, padding: int = 0) -> dict:
    """Useful FLOPs of conv2d; a multiply-add counts 2, R = N*Ho*Wo, D = C*m*m.

        forward   Y   = P Wf^T     2*R*O*D
        backward  dWf = G^T P      2*R*O*D
                  dP  = G Wf       2*R*O*D

    Not counted: the bias (R*O adds forward, R*O for db), im2col/col2im and layout
    copies (they move numbers; they do no arithmetic the convolution needs).
    """
    R, D = _sizes(N, C, H, W, m, stride, padding)
    forward = 2 * R * O * D
    backward = 2 * R * O * D + 2 * R * O * D
    return {"forward": forward, "backward": backward, "forward_backward": forward + backward}


def adaptive_conv2d_flops(N: int, C: int, H: int, W: int, m: int, O: int, stride: int = 1,
                          padding: int = 0) -> dict:
    """Useful FLOPs of adaptive_conv2d with a static kernel w; R = N*Ho*Wo, D = C*m*m.

        forward   Z = P Qs^T           2*R*O*D^2   every dynamic kernel Q_o p_r
                  rowsum_d(Z * P)      2*R*O*D     p_r^T (Q_o p_r)
                  P w^T                2*R*O*D     the static kernel
        backward  dQ = GP^T P          2*R*O*D^2
                  dP = GP Ss + G w     2*R*O*D^2 + 2*R*O*D
                  dw = G^T P           2*R*O*D

    Not counted: forming GP[r, (o,d)] = G[r,o] P[r,d] (R*O*D multiplies that only
    rearrange the gradient), Ss = Q + Q^T, the bias, im2col/col2im and layout copies.
    """
    R, D = _sizes(N, C, H, W, m, stride, padding)
    forward = 2 * R * O * D * D + 2 * R * O * D + 2 * R * O * D
    backward = 2 * R * O * D * D + (2 * R * O * D * D + 2 * R * O * D) + 2 * R * O * D
    return {"forward": forward, "backward": backward, "forward_backward": forward + backward}


FLOP_COUNTS = {"conv2d": conv2d_flops, "adaptive_conv2d": adaptive_conv2d_flops}


def layer_step_flops(kind: str, in_shape: tuple, out_shape: tuple, weight_shape: tuple,
                     has_static: bool = True, input_grad: bool = True) -> int:
    """Useful FLOPs of one layer in one training step (forward + backward), from its shapes.

    kind: "Conv2d", "AdaptiveConv2d" or "Linear"; in_shape (N, C, H, W) or (N, F_in),
    out_shape (N, O, Ho, Wo) or (N, F_out); weight_shape (O, C, m, m), (O, D, D) or
    (F_out, F_in). The counts are those of conv2d_flops and adaptive_conv2d_flops (and
    2*N*F_in*F_out for each of y = x W^T, dW = g^T x, dx = g W), except that the products
    for dx are left out when the layer's input needs no gradient (the first layer:
    input_grad=False), because the engine then skips them. Pooling, activations, the loss
    and the optimiser do no multiply-adds and count 0.
    """
    if kind == "Linear":
        product = 2 * in_shape[0] * weight_shape[1] * weight_shape[0]
        return product * (3 if input_grad else 2)
    N, O, Ho, Wo = out_shape
    R = N * Ho * Wo
    if kind == "Conv2d":
        D = weight_shape[1] * weight_shape[2] * weight_shape[3]
        return 2 * R * O * D * (3 if input_grad else 2)
    if kind == "AdaptiveConv2d":
        D = weight_shape[1]
        static = 2 * R * O * D if has_static else 0
        forward = 2 * R * O * D * D + 2 * R * O * D + static     # Z = P Qs^T, rowsum, P w^T
        backward = 2 * R * O * D * D + static                     # dQ = GP^T P, dw = G^T P
        if input_grad:
            backward += 2 * R * O * D * D + static                # dP = GP Ss (+ G w)
        return forward + backward
    raise ValueError(f"no FLOP count for a {kind} layer")

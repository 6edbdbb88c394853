"""Useful FLOPs of conv2d and adaptive_conv2d, counted analytically (a multiply-add counts 2).

The benchmark divides these counts by the measured times to get GFLOP/s; the counts
themselves are checked by hand in tests/test_bench.py.
"""
from __future__ import annotations

from ...functional.im2col import conv_output_size


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

"""3x3 'same' convolutions of 7x7 maps by Winograd's minimal filtering F(7x7, 3x3) (Lavin & Gray,
arXiv:1509.09308), for the BabyAI encoder's FiLM blocks on CPU.

A direct 3x3 convolution of a zero-padded 7x7 map costs 49 x 9 = 441 multiply-adds per (input,
output) channel pair. Winograd's algorithm gets the same 49 outputs from 81 products:

    Y = A^T [ (G W G^T) (.) (B^T X B) ] A        X: the 9x9 padded input, W: the 3x3 kernel,

where (.) is elementwise per point and summed over input channels, i.e. one [N, C_in] @ [C_in, C_out]
matrix product per point (81 of them, `torch.bmm`). The matrices come from Toom-Cook interpolation at
the points below plus infinity. With the 7x7 cells first and channels last ([49, N, C]), each
one-sided transform is one matmul over every frame and channel at once (`two_sided`); the padding
ring is zero, so B^T keeps only its 7 inner columns. Two 1-D passes cost 2.4x less than one matmul
by the Kronecker product (81 x 49 per channel), which was as slow as the 81 products themselves.

Same function, other rounding: the transforms amplify float32 rounding; with these points the
largest error is ~4e-5 of the output's scale (a direct float32 convolution: ~8e-7; bfloat16 rounds
at 4e-3), checked in tests/nn/test_winograd.py. The points: {0, 1, -1} and 5 of {+-1/2, +-2, +-3/2,
+-2/3, +-1/3, +-3, +-1/4, +-3/4, +-4/3}, the 5 picked by that error on random inputs (3.6e-5; the
best set scored 3.2e-5; the textbook {0, +-1, +-2, +-1/2, 3} 2.2e-4).
"""

import functools
from fractions import Fraction

import numpy as np
import torch
from torch import Tensor, nn

POINTS = (0, 1, -1, Fraction(1, 2), Fraction(3, 2), Fraction(-1, 3), -3, Fraction(-4, 3))
OUT, TAPS = 7, 3
SIZE = OUT + TAPS - 1  # 9 points: the 8 above and infinity


def toom_cook(points=POINTS, m: int = OUT, r: int = TAPS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A^T [m, n], G [n, r], B^T [n, n] of the correlation y_i = sum_k g_k d_{i+k} (n = m + r - 1).

    Linear convolution by Toom-Cook is c = V^-1 [(E_m u) (.) (E_r g)] with E_k the [n, k] evaluation
    matrices at the points (infinity: the leading coefficient) and V = E_n; correlation is its
    transpose in u, so y = E_m^T [(E_r g) (.) (V^-T d)]."""
    def evaluation(k: int) -> np.ndarray:
        rows = [[Fraction(p) ** j for j in range(k)] for p in points] + [[0] * (k - 1) + [1]]
        return np.array(rows, dtype=np.float64)
    return evaluation(m).T, evaluation(r), np.linalg.inv(evaluation(m + r - 1)).T


@functools.cache
def transforms(device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
    """B^T [9, 7] (input cells -> points, padding columns dropped), A^T [7, 9] (points -> output
    cells), G [9, 3] (kernel taps -> points)."""
    at, g, bt = toom_cook()
    return tuple(torch.tensor(m, dtype=dtype, device=device) for m in (bt[:, 1:SIZE - 1], at, g))


def two_sided(m: Tensor, x: Tensor) -> Tensor:
    """m X m^T for every trailing column: m [a, b], x [b, b, K] -> [a, a, K] (two 1-D passes)."""
    a, b = m.shape
    rows = (m @ x.reshape(b, -1)).view(a, b, -1)
    return torch.matmul(m, rows)


def conv3x3_7x7(x: Tensor, conv: nn.Conv2d) -> Tensor:
    """conv(x) of a 3x3, stride-1, padding-1 `conv` on 7x7 maps, cells-first layout:
    x [49, N, C_in] (row-major cells, then frames, then channels) -> [49, N, C_out]."""
    _, n, c_in = x.shape
    c_out = conv.out_channels
    bt, at, g = transforms(x.device, x.dtype)
    # G W G^T for every (out, in) pair, as [81, C_in, C_out]
    taps = conv.weight.permute(2, 3, 0, 1).reshape(TAPS, TAPS, c_out * c_in)
    weights = two_sided(g, taps).view(SIZE * SIZE, c_out, c_in).transpose(1, 2)
    points = two_sided(bt, x.view(OUT, OUT, n * c_in)).view(SIZE * SIZE, n, c_in)
    products = torch.bmm(points, weights).view(SIZE, SIZE, n * c_out)
    return two_sided(at, products).view(OUT * OUT, n, c_out) + conv.bias

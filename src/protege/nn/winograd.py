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

A convolution of summed embeddings (`embedded_conv3x3_7x7`, the encoder's first one) needs no input
transform of the features: the cells are a few table rows each, so B^T X B is the transform of the
cells' row counts (data, no gradient) times the rows, and its products are [N, U] x [U, C_out] per
point with U the rows that occur in the batch (13 of 48 in BabyAI batches), against
[N, C_in] x [C_in, C_out]. Same function again: exact in float64, float32 rounding in float32.
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


def winograd_weights(conv: nn.Conv2d) -> Tensor:
    """G W G^T of a 3x3 `conv` for every (in, out) channel pair, as [81, C_in, C_out] (contiguous:
    as a transposed view, its gradient was copied back, ~1 ms a convolution)."""
    _, _, g = transforms(conv.weight.device, conv.weight.dtype)
    c_out, c_in = conv.out_channels, conv.in_channels
    taps = conv.weight.permute(2, 3, 1, 0).reshape(TAPS, TAPS, c_in * c_out)
    return two_sided(g, taps).view(SIZE * SIZE, c_in, c_out)


def to_points(x: Tensor) -> Tensor:
    """B^T X B of every frame and channel: x [49, N, C] -> [81, N, C]."""
    _, n, c = x.shape
    bt, _, _ = transforms(x.device, x.dtype)
    return two_sided(bt, x.reshape(OUT, OUT, n * c)).view(SIZE * SIZE, n, c)


def from_points(products: Tensor) -> Tensor:
    """A^T P A of every frame and channel: products [81, N, C] -> [49, N, C]."""
    _, n, c = products.shape
    _, at, _ = transforms(products.device, products.dtype)
    return two_sided(at, products.view(SIZE, SIZE, n * c)).view(OUT * OUT, n, c)


def conv3x3_7x7(x: Tensor, conv: nn.Conv2d) -> Tensor:
    """conv(x) of a 3x3, stride-1, padding-1 `conv` on 7x7 maps, cells-first layout:
    x [49, N, C_in] (row-major cells, then frames, then channels) -> [49, N, C_out]."""
    return from_points(torch.bmm(to_points(x), winograd_weights(conv))) + conv.bias


def embedded_conv3x3_7x7(table: Tensor, indices: Tensor, conv: nn.Conv2d) -> tuple[Tensor, Tensor]:
    """Cells that are sums of embedding rows, and their convolution, without the input transform:
    table [V, C_in], indices [49, N, K] (cells first; each cell is the sum of its K rows) ->
    x [49, N, C_in] = sum_k table[indices[..., k]] and conv(x) [49, N, C_out] (as `conv3x3_7x7(x)`).

    With R [49, N, U] the count of each used row in each cell (U: the rows that occur), x = R @ rows
    and B^T X B = (B^T R B) @ rows, so the products are (B^T R B) @ (rows @ G W G^T) per point:
    the data's transform has no gradient and the inner dimension is U, not C_in."""
    cells, n, k = indices.shape
    flat = indices.reshape(cells * n, k)
    present = torch.zeros(len(table), dtype=torch.bool, device=table.device)
    present[flat.reshape(-1)] = True
    used = present.nonzero().squeeze(1)
    slot = present.long().cumsum(0) - 1  # row index -> column of R
    counts = torch.zeros(cells * n, len(used), dtype=table.dtype, device=table.device)
    counts.scatter_add_(1, slot[flat], torch.ones(flat.shape, dtype=table.dtype, device=table.device))
    rows = table[used]
    x = (counts @ rows).view(cells, n, -1)
    products = torch.bmm(to_points(counts.view(cells, n, -1)), row_weights(rows, conv))
    return x, from_points(products) + conv.bias


def row_weights(rows: Tensor, conv: nn.Conv2d) -> Tensor:
    """rows @ G W G^T for every point, as [81, U, C_out]: the kernel applied to each row first (G is
    linear), so the [81, C_in, C_out] weights are never formed."""
    _, _, g = transforms(conv.weight.device, conv.weight.dtype)
    u, c_out = len(rows), conv.out_channels
    taps = rows @ conv.weight.transpose(0, 1).reshape(conv.in_channels, c_out * TAPS * TAPS)  # [U, C_out * 9]
    taps = taps.view(u * c_out, TAPS * TAPS).t().reshape(TAPS, TAPS, u * c_out)
    return two_sided(g, taps).view(SIZE * SIZE, u, c_out)

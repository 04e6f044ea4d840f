"""The Reporter of a Planner-Actor-Reporter (arXiv:2302.00763): the Actor's last view -> a choice
among K fixed text reports. Trained by RL on the Planner's success, it has to find out by itself
which cell of the view and which channel value matter (and what each means) for the Planner.

    view [7, 7, 3] (object, colour, state) -> an embedding per channel value [7, 7, 3, D]
    -> flatten -> MLP -> logits [K]

Channels are embedded side by side, not summed (as the policy's encoder does): a sum mixes the
state with the colour and type, and the Reporter's gradient (a policy gradient, noisy) then
separates them far more slowly.

A flat MLP over the whole view rather than a convolution: the report is about one fixed cell (the
one the Actor faces), which position-specific weights find directly."""

import torch
from torch import Tensor, nn

GRID_VALUES = 16  # minigrid's symbolic cells: object < 11, colour < 6, state < 16 here


class ReportPolicy(nn.Module):
    def __init__(self, n_reports: int, dim: int = 8, hidden: int = 64):
        super().__init__()
        self.cell_emb = nn.Embedding(3 * GRID_VALUES, dim)
        self.mlp = nn.Sequential(nn.Linear(49 * 3 * dim, hidden), nn.Tanh(), nn.Linear(hidden, n_reports))

    def forward(self, images: Tensor) -> Tensor:
        """images [N, 7, 7, 3] uint8 -> report logits [N, K]"""
        cells = images.long().clamp_max(GRID_VALUES - 1) + torch.arange(3) * GRID_VALUES
        return self.mlp(self.cell_emb(cells).flatten(1))

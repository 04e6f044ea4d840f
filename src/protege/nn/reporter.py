"""The Reporter of a Planner-Actor-Reporter (arXiv:2302.00763): what the Actor faces at the end of
an instruction -> a choice among K fixed text reports. Trained by RL on the Planner's success, it
has to find out which channel of the cell matters (object, colour or state) and what each of its
values means for the Planner.

    faced cell (object, colour, state): each (channel, value) is one indicator feature
    logits [K] = bias + sum over the 3 channels of W[channel, value]                   (linear)

Why the faced cell and a linear policy (the alternatives were tried, docs/results/par.md): the
report depends on one fact, and a policy gradient on the Planner's episode success is noisy. Over the
whole 7x7 view, the 146 irrelevant (cell, channel) features each take a noisy step per update and
their sum drowns the one that matters: with the same learning rate and 1280 episodes, a linear policy
over the whole view reported the truth 24% of the time against 84% for this one, and an MLP over the
view learnt nothing in 4800 episodes. Zero-initialised: the untrained Reporter is uniform."""

import torch
from torch import Tensor, nn

GRID_VALUES = 16  # minigrid's symbolic cells: object < 11, colour < 6, state < 16 here
FACED = (3, 5)  # (x, y) of the faced cell in the 7x7 egocentric view (the agent is at (3, 6))


class ReportPolicy(nn.Module):
    def __init__(self, n_reports: int):
        super().__init__()
        self.weights = nn.Embedding(3 * GRID_VALUES, n_reports)
        self.bias = nn.Parameter(torch.zeros(n_reports))
        nn.init.zeros_(self.weights.weight)
        self.register_buffer("offsets", torch.arange(3) * GRID_VALUES, persistent=False)

    def forward(self, images: Tensor) -> Tensor:
        """images [N, 7, 7, 3] uint8 (the Actor's views) -> report logits [N, K]"""
        cell = images[:, FACED[0], FACED[1]].long().clamp_max(GRID_VALUES - 1)
        return self.weights(cell + self.offsets).sum(1) + self.bias

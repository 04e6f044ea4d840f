"""A learned success detector: (instruction, observation sequence) -> probability that the
instruction was achieved (the learned judge of arXiv:2205.13274 / arXiv:2012.05672, framed as in
SuccessVQA, arXiv:2303.07280, as binary classification of an episode).

    instruction words -> GRU -> h_instr                                         (B, D)
    each observation (7x7 symbolic view + heading) -> FiLM(h_instr) grid encoder (B, T, D)
        (`ViewEncoder` of the BabyAI policy: the instruction decides what to look for; with
        `positions`, each cell's place in the view is embedded too: `PlacedViewEncoder`)
    -> GRU over the T observations -> its state after each episode's last real observation
    -> MLP -> one logit

Padding is on the right: `lengths[b]` observations of row b are real. Only real frames are encoded
(`ViewEncoder`'s mask), and the sequence GRU is packed, so padding cannot change a prediction.
"""

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from protege.core.config_help import check_fields
from protege.nn.babyai_policy import GRID_VALUES, PolicyConfig, ViewEncoder, tokenize


@dataclass
class DetectorConfig:
    dim: int = 32
    """width of the word, cell, FiLM and sequence features"""
    n_film: int = 2
    """FiLM-conditioned residual blocks over each observation"""
    positions: bool = True
    """add a learned embedding of each of the 7x7 cells' place in the view before the convolutions"""

    def __post_init__(self):
        check_fields(self, dim=">=1", n_film=">=0")


class PlacedViewEncoder(ViewEncoder):
    """`ViewEncoder` with a learned embedding of each cell's place added to its features. The
    policy's encoder max-pools over cells, which keeps what is in view but not where; a judge
    needs where: the agent sits at a fixed cell of its egocentric view, so "the object is in the
    cell in front" (GoTo's success) or "the agent holds it" (Pickup's) is a matter of place."""

    def __init__(self, cfg: PolicyConfig):
        super().__init__(cfg)
        self.place = nn.Parameter(torch.zeros(cfg.dim, 7, 7))
        nn.init.normal_(self.place, std=0.02)

    def frames(self, images: Tensor, directions: Tensor, h_instr: Tensor) -> Tensor:
        cells = images.long().clamp_max(GRID_VALUES - 1) + torch.arange(3) * GRID_VALUES
        x = self.cell_emb(cells).sum(3).permute(0, 3, 1, 2) + self.place
        for film in self.films:
            x = film(x, h_instr)
        return x.amax(dim=(2, 3)) + self.direction_emb(directions.long())


class SuccessDetector(nn.Module):
    def __init__(self, cfg: DetectorConfig | None = None):
        super().__init__()
        cfg = cfg or DetectorConfig()
        self.cfg = cfg
        encoder = PlacedViewEncoder if cfg.positions else ViewEncoder
        self.encoder = encoder(PolicyConfig(dim=cfg.dim, n_film=cfg.n_film))
        self.sequence = nn.GRU(cfg.dim, cfg.dim, batch_first=True)
        self.head = nn.Sequential(nn.Linear(2 * cfg.dim, cfg.dim), nn.ReLU(), nn.Linear(cfg.dim, 1))

    def forward(self, images: Tensor, directions: Tensor, tokens: Tensor, lengths: Tensor) -> Tensor:
        """images [B, T, 7, 7, 3] uint8, directions [B, T], tokens [B, L] (`tokenize`), lengths [B]
        (>= 1 real observations per row, from the left) -> success logits [B]."""
        T = directions.shape[1]
        lengths = lengths.clamp(1, T)
        mask = torch.arange(T, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)
        h_instr = self.encoder.instruction(tokens)
        frames = self.encoder(images, directions, h_instr, mask)
        packed = nn.utils.rnn.pack_padded_sequence(frames, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, h = self.sequence(packed)
        return self.head(torch.cat([h[0], h_instr], -1)).squeeze(-1)

    @torch.no_grad()
    def probability(self, images: Tensor, directions: Tensor, missions: list[str], lengths: Tensor) -> Tensor:
        """Success probabilities [B] of a batch given instructions as text."""
        return torch.sigmoid(self(images, directions, tokenize(missions), lengths))

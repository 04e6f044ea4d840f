"""A utility model over (instruction, observation history) for BabyAI: one score per episode prefix.

    instruction + each frame -> the BabyAI policy's `ViewEncoder` (GRU words, FiLM grid)   (B, T+1, D)
    -> LSTM over the frames (the history) -> MLP head -> o_f, one scalar per prefix x_{<=f}  (B, T+1)

What o_f means is the learning method's choice (`losses/bradley_terry.py`): for inter-temporal
Bradley-Terry it is the utility U(x_{<=f}) and a step's reward is o_{t+1} - o_t; for the per-step
and episode-preference baselines it is the score of the step that led to frame f, r_t = o_{t+1}.
Same network for all three, so a comparison isolates the loss.

`step_with_memory` scores frames one rollout step at a time (the LSTM state carried by the caller),
for a frozen model rewarding PPO's rollouts.
"""

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from protege.core.config_help import check_fields
from protege.nn.babyai_policy import PolicyConfig, ViewEncoder, reset_state


@dataclass
class UtilityConfig:
    dim: int = 64
    """width of the word, cell, FiLM and memory features"""
    n_film: int = 2
    """FiLM-conditioned residual blocks over the grid"""

    def __post_init__(self):
        check_fields(self, dim=">=1", n_film=">=0")


class UtilityModel(nn.Module):
    def __init__(self, cfg: UtilityConfig = UtilityConfig()):
        super().__init__()
        self.cfg = cfg
        self.encoder = ViewEncoder(PolicyConfig(dim=cfg.dim, n_film=cfg.n_film))
        self.memory = nn.LSTM(cfg.dim, cfg.dim, batch_first=True)
        self.head = nn.Sequential(nn.Linear(cfg.dim, 64), nn.Tanh(), nn.Linear(64, 1))

    def forward(self, images: Tensor, directions: Tensor, tokens: Tensor,
                mask: Tensor | None = None) -> Tensor:
        """Whole episodes from their first frame: images [B, F, 7, 7, 3] uint8, directions [B, F],
        tokens [B, L], mask [B, F] bool (the real frames of padded episodes; optional).
        Returns o [B, F], one score per prefix (meaningless where mask is false)."""
        feats = self.encoder(images, directions, self.encoder.instruction(tokens), mask)
        out, _ = self.memory(feats)
        return self.head(out).squeeze(-1)

    def frames(self, images: Tensor, directions: Tensor, tokens: Tensor) -> Tensor:
        """Features of N single frames (images [N, 7, 7, 3], directions [N], tokens [N, L]) -> [N, D]."""
        return self.encoder.frames(images, directions, self.encoder.instruction(tokens))

    def step_with_memory(self, feats: Tensor, state, starts: Tensor):
        """Segments of rollouts: feats [N, T, D] (`frames` of each step's observation), state: the
        memory (h, c) before step 0 or None, starts [N, T] bool (a new episode begins: memory
        zeroed). Returns o [N, T], the memory after every step (h, c) each [N, T, D], and the
        final memory."""
        hs, cs, outs = [], [], []
        for t in range(feats.shape[1]):  # stepwise: nn.LSTM cannot reset its memory mid-sequence
            state = reset_state(state, starts[:, t])
            out, state = self.memory(feats[:, t:t + 1], state)
            outs.append(out)
            hs.append(state[0][0]); cs.append(state[1][0])
        o = self.head(torch.cat(outs, 1)).squeeze(-1)
        return o, (torch.stack(hs, 1), torch.stack(cs, 1)), state

    def extend(self, feats: Tensor, memory: tuple[Tensor, Tensor]) -> Tensor:
        """o of one more frame after a known memory: feats [M, D], memory (h, c) each [M, D] -> [M]."""
        out, _ = self.memory(feats.unsqueeze(1), (memory[0].unsqueeze(0).contiguous(),
                                                   memory[1].unsqueeze(0).contiguous()))
        return self.head(out[:, 0]).squeeze(-1)

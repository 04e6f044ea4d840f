"""Offline BC and IQ-Learn on BabyAI demonstrations: whole episodes as sequence batches [B, T].

A batch is B episodes padded to the longest (T steps). The LSTM starts fresh at each episode's
first step, so a row is exactly what the policy sees when acting. Loss: the shared
`protege.losses.iqlearn.iqlearn_loss` (lambda = 0 is behavioural cloning, i.e. `mle_loss`).
"""

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from protege.losses.iqlearn import iqlearn_loss
from protege.nn.babyai_policy import BabyAIPolicy, tokenize
from protege.worlds.babyai.demos import Demos


@dataclass(frozen=True)
class SequenceBatch:
    """B episodes padded to T steps.
        images [B, T, 7, 7, 3] uint8, directions [B, T], actions [B, T] (-1 at padding),
        mask [B, T] bool (true on real steps), terminal [B, T] bool (true where s_{t+1} is terminal),
        tokens [B, L] instruction words."""
    images: Tensor
    directions: Tensor
    actions: Tensor
    mask: Tensor
    terminal: Tensor
    tokens: Tensor


def make_batch(demos: Demos, indices: np.ndarray) -> SequenceBatch:
    lengths, starts = demos.lengths[indices], demos.starts[indices]
    B, T = len(indices), int(lengths.max())
    images = np.zeros((B, T, 7, 7, 3), np.uint8)
    directions = np.zeros((B, T), np.int64)
    actions = np.full((B, T), -1, np.int64)
    terminal = np.zeros((B, T), bool)
    for row, (s, n, ep) in enumerate(zip(starts, lengths, indices)):
        images[row, :n] = demos.images[s:s + n]
        directions[row, :n] = demos.directions[s:s + n]
        actions[row, :n] = demos.actions[s:s + n]
        # the bot's episodes end in success (terminal, V = 0). Were one truncated, its last state
        # would not be terminal, but no next step exists in the row, so V(s') reads 0 all the same.
        terminal[row, n - 1] = True
    mask = np.arange(T)[None, :] < lengths[:, None]
    return SequenceBatch(torch.from_numpy(images), torch.from_numpy(directions),
                         torch.from_numpy(actions), torch.from_numpy(mask), torch.from_numpy(terminal),
                         tokenize([str(m) for m in demos.missions[indices]]))


def sequence_loss(model: BabyAIPolicy, batch: SequenceBatch, lam: float, gamma: float):
    """IQ-Learn (BC when lam = 0) on a sequence batch; returns (loss, metrics)."""
    logits, _, _ = model(batch.images, batch.directions, batch.tokens, mask=batch.mask)
    loss, metrics = iqlearn_loss(logits, batch.actions, batch.mask, batch.terminal, lam=lam, gamma=gamma)
    correct = (logits.argmax(-1) == batch.actions) & batch.mask
    metrics["train/accuracy"] = correct.sum().float() / batch.mask.sum().clamp_min(1)
    metrics["train/frames"] = batch.mask.sum().float()
    return loss, metrics

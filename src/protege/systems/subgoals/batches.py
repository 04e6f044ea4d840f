"""Training batches for the hierarchical agent, all cut from the same B episodes of a `SubgoalData`.

    chooser  whole episodes [B, T]: views o_0..o_{T-1}, the mission, the bot's phrase id per step
    actor    the episodes' subgoal segments [S, Ts]: views, actions, the segment's phrase; its memory
             starts fresh at each segment, as when acting
    done     every step s = 1..T (or a seeded sample of them): (view o_s, phrase_{s-1}) -> 1 if a new subgoal starts at s (s = T,
             the episode's end, counts as reached)
"""

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from protege.nn.babyai_policy import tokenize
from protege.worlds.babyai.subgoals import SubgoalData


@dataclass(frozen=True)
class HierarchyBatch:
    ep_images: Tensor       # [B, T, 7, 7, 3] uint8
    ep_directions: Tensor   # [B, T]
    ep_phrases: Tensor      # [B, T] phrase index, -1 at padding
    ep_mask: Tensor         # [B, T] bool
    missions: Tensor        # [B, L] mission tokens
    seg_images: Tensor      # [S, Ts, 7, 7, 3]
    seg_directions: Tensor  # [S, Ts]
    seg_actions: Tensor     # [S, Ts], -1 at padding
    seg_mask: Tensor        # [S, Ts] bool
    seg_tokens: Tensor      # [S, L'] phrase tokens
    done_images: Tensor     # [M, 7, 7, 3]
    done_directions: Tensor  # [M]
    done_tokens: Tensor     # [M, L'] the phrase being pursued
    done_labels: Tensor     # [M] float


def segments(boundary: np.ndarray) -> list[tuple[int, int]]:
    """(start, length) of each run of steps under one phrase, from per-step boundary flags."""
    starts = np.flatnonzero(boundary).tolist() + [len(boundary)]
    return [(a, b - a) for a, b in zip(starts[:-1], starts[1:])]


def make_batch(data: SubgoalData, indices: np.ndarray, phrase_index: dict[str, int],
               done_frames: int = 0) -> HierarchyBatch:
    """The batch of episodes `indices`; `done_frames` > 0 keeps that many of the done head's
    examples, drawn uniformly (the head sees every view otherwise: a third of the cost for a
    one-frame classifier), with a generator seeded by the indices, so a resumed run draws the same."""
    starts, obs_starts = data.starts[indices], data.obs_starts[indices]
    lengths = data.lengths[indices]
    B, T = len(indices), int(lengths.max())
    ep_images = np.zeros((B, T, 7, 7, 3), np.uint8)
    ep_directions = np.zeros((B, T), np.int64)
    ep_phrases = np.full((B, T), -1, np.int64)
    segs, done_obs, done_phrase, done_label = [], [], [], []
    for row, (s, o, n) in enumerate(zip(starts, obs_starts, lengths)):
        ep_images[row, :n] = data.images[o:o + n]
        ep_directions[row, :n] = data.directions[o:o + n]
        phrases = data.phrases[s:s + n]
        ep_phrases[row, :n] = [phrase_index.get(p, -1) for p in phrases]
        for a, m in segments(data.boundary[s:s + n]):
            segs.append((s + a, o + a, m, str(phrases[a])))
        done_obs += range(o + 1, o + n + 1)
        done_phrase += [str(p) for p in phrases]
        done_label += data.boundary[s + 1:s + n].tolist() + [True]
    if done_frames and len(done_obs) > done_frames:
        keep = np.sort(np.random.default_rng(indices.tolist()).choice(len(done_obs), done_frames, replace=False))
        done_obs = [done_obs[k] for k in keep]
        done_phrase = [done_phrase[k] for k in keep]
        done_label = [done_label[k] for k in keep]
    mask = np.arange(T)[None, :] < lengths[:, None]
    Ts = max(m for _, _, m, _ in segs)
    seg_images = np.zeros((len(segs), Ts, 7, 7, 3), np.uint8)
    seg_directions = np.zeros((len(segs), Ts), np.int64)
    seg_actions = np.full((len(segs), Ts), -1, np.int64)
    for row, (s, o, m, _) in enumerate(segs):
        seg_images[row, :m] = data.images[o:o + m]
        seg_directions[row, :m] = data.directions[o:o + m]
        seg_actions[row, :m] = data.actions[s:s + m]
    seg_mask = np.arange(Ts)[None, :] < np.asarray([m for _, _, m, _ in segs])[:, None]
    t = torch.from_numpy
    return HierarchyBatch(
        t(ep_images), t(ep_directions), t(ep_phrases), t(mask),
        tokenize([str(m) for m in data.missions[indices]]),
        t(seg_images), t(seg_directions), t(seg_actions), t(seg_mask),
        tokenize([p for _, _, _, p in segs]),
        t(data.images[done_obs]), t(data.directions[done_obs]), tokenize(done_phrase),
        torch.tensor(done_label, dtype=torch.float32))

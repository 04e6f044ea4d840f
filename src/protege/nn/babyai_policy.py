"""A language-conditioned recurrent policy in the spirit of the BabyAI baseline (arXiv:1810.08272,
arXiv:2007.12770: "bow_endpool_res" image encoder, GRU instruction encoder, FiLM, LSTM memory).

    instruction words -> embedding -> GRU -> h_instr                               (B, D)
    grid cells (object, colour, state) -> 3 summed embeddings -> x                 (B*T, D, 7, 7)
    x -> n_film x [conv3x3 -> relu -> conv3x3 -> FiLM(h_instr) -> relu, + residual]
      -> max-pool over the 7x7 cells -> + direction embedding                      (B, T, D)
    -> LSTM memory -> actor head: logits (= soft Q-values for IQ-Learn), critic head: value (for PPO)

Without the baseline's BatchNorm: padded steps of short episodes would enter the batch statistics
and PPO's one-step rollouts would see different statistics from training.

Speed: the four 3x3 convolutions are ~80% of training time. On CPU in float32, for batches of at
least WINOGRAD_MIN_FRAMES frames, the encoder runs them by Winograd's F(7x7, 3x3)
(`protege.nn.winograd`: 81 products per channel pair instead of 441, one matmul per transform pass
over the whole batch), the first one straight from the cells' embedding rows (`cell_table`: no input
transform, and the 13 rows a batch uses instead of D channels per product);
`ViewEncoder.frames_reference` is the direct convolution, the same function up to rounding (~4e-5
of scale), used for a few frames (acting), under autocast and on GPUs.
"""

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from minigrid.core.actions import Actions
from torch import Tensor, nn

from protege.core.config_help import check_fields
from protege.nn.winograd import conv3x3_7x7, embedded_conv3x3_7x7

# The words of the BabyAI grammar (every level's instructions use only these); others map to <unk>.
VOCAB = ["<pad>", "<unk>", ",", "a", "after", "and", "ball", "behind", "blue", "box", "door", "front",
         "go", "green", "grey", "in", "key", "left", "next", "object", "of", "on", "open", "pick",
         "purple", "put", "red", "right", "the", "then", "to", "up", "yellow", "you", "your"]
WORD_INDEX = {w: i for i, w in enumerate(VOCAB)}
# minigrid's symbolic cells: object index < 11, colour index < 6, state index < 3.
GRID_VALUES = 16
# Below this many frames a call's fixed cost (weight transforms, small matmuls) makes Winograd slower
# than the direct convolutions (CPU, width 64: 2.4 vs 0.9 ms at 1 frame, equal at ~16, 0.7x at 64):
# acting in a few environments stays direct, training batches (hundreds of frames) go Winograd.
WINOGRAD_MIN_FRAMES = 32


@dataclass
class PolicyConfig:
    dim: int = 128
    """width of the word, cell, FiLM and memory features"""
    n_film: int = 2
    """FiLM-conditioned residual blocks over the grid"""

    def __post_init__(self):
        check_fields(self, dim=">=1", n_film=">=0")


def tokenize(missions: list[str]) -> Tensor:
    """Word indices [B, L] (0-padded) of each instruction; at least one token per row."""
    rows = [[WORD_INDEX.get(w, 1) for w in m.replace(",", " , ").split()] or [1] for m in missions]
    out = torch.zeros(len(rows), max(len(r) for r in rows), dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, :len(r)] = torch.tensor(r)
    return out


def view_tensors(obs: list[dict]) -> tuple[Tensor, Tensor]:
    """(images [B, 7, 7, 3], directions [B] long) of a batch of BabyAI observations, as the policies
    take them."""
    return torch.from_numpy(np.stack([o["image"] for o in obs])), torch.tensor([int(o["direction"]) for o in obs])


def read_words(gru: nn.GRU, words: Tensor, tokens: Tensor) -> Tensor:
    """A GRU over each row's words (embedded [B, L, E]; tokens [B, L], 0 = padding) -> its state
    after the row's last word, [B, H]: packed, so the padding never enters the state."""
    lengths = (tokens != 0).sum(1).clamp_min(1).cpu()
    packed = nn.utils.rnn.pack_padded_sequence(words, lengths, batch_first=True, enforce_sorted=False)
    return gru(packed)[1][0]


class FiLMBlock(nn.Module):
    """conv -> relu -> conv -> gamma(h) * x + beta(h) -> relu, with a residual connection."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv1 = nn.Conv2d(dim, dim, 3, padding=1)
        self.conv2 = nn.Conv2d(dim, dim, 3, padding=1)
        self.film = nn.Linear(dim, 2 * dim)

    def forward(self, x: Tensor, h: Tensor) -> Tensor:  # x (N, D, 7, 7), h (N, D)
        gamma, beta = self.film(h).unsqueeze(-1).unsqueeze(-1).chunk(2, dim=1)
        y = self.conv2(F.relu(self.conv1(x)))
        return x + F.relu(gamma * y + beta)

    def forward_cells(self, x: Tensor, h: Tensor, conv1_x: Tensor | None = None) -> Tensor:
        """The same block on the cells-first layout: x [49, N, D], h [N, D] -> [49, N, D];
        conv1_x: conv1(x) when the caller has it already (the encoder's first block)."""
        gamma, beta = self.film(h).chunk(2, dim=1)
        if conv1_x is None:
            conv1_x = conv3x3_7x7(x, self.conv1)
        y = conv3x3_7x7(F.relu(conv1_x), self.conv2)
        return x + F.relu(gamma * y + beta)


class ViewEncoder(nn.Module):
    """Instruction GRU + FiLM-conditioned grid encoder, shared by the policy and the discriminator."""

    winograd = True
    """run the convolutions by Winograd on CPU in float32; False: always the direct reference"""
    cell_table = True
    """with `winograd`: the first convolution from the cells' embedding rows (no input transform)"""

    def __init__(self, cfg: PolicyConfig):
        super().__init__()
        d = cfg.dim
        self.word_emb = nn.Embedding(len(VOCAB), d, padding_idx=0)
        self.instr_gru = nn.GRU(d, d, batch_first=True)
        self.cell_emb = nn.Embedding(3 * GRID_VALUES, d)
        self.direction_emb = nn.Embedding(4, d)
        self.films = nn.ModuleList([FiLMBlock(d) for _ in range(cfg.n_film)])

    def instruction(self, tokens: Tensor) -> Tensor:
        """tokens [B, L] -> the GRU state after each row's last word, [B, D]."""
        return read_words(self.instr_gru, self.word_emb(tokens), tokens)

    def frames(self, images: Tensor, directions: Tensor, h_instr: Tensor) -> Tensor:
        """N single frames: images [N, 7, 7, 3] uint8, directions [N], h_instr [N, D] -> [N, D]."""
        if (not self.winograd or len(images) < WINOGRAD_MIN_FRAMES or images.device.type != "cpu"
                or h_instr.dtype != torch.float32 or torch.is_autocast_enabled("cpu")):
            return self.frames_reference(images, directions, h_instr)  # Winograd needs float32 rounding
        cells = images.long().clamp_max(GRID_VALUES - 1) + torch.arange(3) * GRID_VALUES
        # cells first ([7, 7, N, 3] -> [49, N, 3]): each Winograd pass is one matmul over all frames
        cells = cells.permute(1, 2, 0, 3).flatten(0, 1)
        films, conv1_x = list(self.films), None
        if self.cell_table and films:
            x, conv1_x = embedded_conv3x3_7x7(self.cell_emb.weight, cells, films[0].conv1)
        else:
            x = self.cell_emb(cells).sum(2)
        for film in films:
            x, conv1_x = film.forward_cells(x, h_instr, conv1_x), None
        return x.amax(0) + self.direction_emb(directions.long())

    def frames_reference(self, images: Tensor, directions: Tensor, h_instr: Tensor) -> Tensor:
        """`frames` by direct convolutions (the reference: same function, float32 rounding)."""
        cells = images.long().clamp_max(GRID_VALUES - 1) + torch.arange(3) * GRID_VALUES
        # (N, 7, 7, D) viewed as (N, D, 7, 7) is the channels-last layout; oneDNN's CPU convolutions
        # keep it (no copy), ~5% faster than a contiguous NCHW copy at dim 64.
        x = self.cell_emb(cells).sum(3).permute(0, 3, 1, 2)
        for film in self.films:
            x = film(x, h_instr)
        return x.amax(dim=(2, 3)) + self.direction_emb(directions.long())

    def forward(self, images: Tensor, directions: Tensor, h_instr: Tensor,
                mask: Tensor | None = None) -> Tensor:
        """images [B, T, 7, 7, 3] uint8, directions [B, T], h_instr [B, D] or [B, T, D] -> [B, T, D].
        With mask [B, T] bool, only the frames where it is true are encoded (the convolutions are
        ~all of the training cost and padding of short episodes is ~60% of a batch); the features
        of the other steps are zero."""
        B, T = directions.shape
        if h_instr.dim() == 2:
            h_instr = h_instr.unsqueeze(1).expand(B, T, -1)
        if mask is None:
            return self.frames(images.reshape(B * T, 7, 7, 3), directions.reshape(B * T),
                               h_instr.reshape(B * T, -1)).view(B, T, -1)
        flat = mask.reshape(-1).nonzero().squeeze(1)
        enc = self.frames(images.reshape(B * T, 7, 7, 3)[flat], directions.reshape(-1)[flat],
                          h_instr.reshape(B * T, -1)[flat])
        return enc.new_zeros(B * T, enc.shape[1]).index_copy(0, flat, enc).view(B, T, -1)


class BabyAIPolicy(nn.Module):
    def __init__(self, cfg: PolicyConfig = PolicyConfig()):
        super().__init__()
        d = cfg.dim
        self.cfg = cfg
        self.encoder = ViewEncoder(cfg)
        self.memory = nn.LSTM(d, d, batch_first=True)
        self.actor = nn.Sequential(nn.Linear(d, 64), nn.Tanh(), nn.Linear(64, len(Actions)))
        self.critic = nn.Sequential(nn.Linear(d, 64), nn.Tanh(), nn.Linear(64, 1))

    def forward(self, images: Tensor, directions: Tensor, tokens: Tensor, state=None,
                mask: Tensor | None = None):
        """A sequence step: images [B, T, 7, 7, 3], directions [B, T], tokens [B, L];
        state = (h, c) each [1, B, D] or None (a fresh episode); mask [B, T] bool: the real steps
        of padded episodes (optional: the outputs at other steps are then meaningless; the LSTM
        is causal, so real steps are exactly as without the mask).
        Returns logits [B, T, A], values [B, T], new state."""
        feats = self.encoder(images, directions, self.encoder.instruction(tokens), mask)
        out, state = self.memory(feats, state)
        return self.actor(out), self.critic(out).squeeze(-1), state

    def forward_with_resets(self, images: Tensor, directions: Tensor, tokens: Tensor,
                            starts: Tensor, state):
        """Rollout segments that may hold several episodes (for PPO): images [N, T, 7, 7, 3],
        directions [N, T], tokens [N*T, L] (the instruction at every step), starts [N, T] bool
        (a new episode begins: memory is zeroed), state: the memory before step 0.
        Returns logits [N, T, A], values [N, T]."""
        N, T = directions.shape
        h_instr = self.encoder.instruction(tokens).view(N, T, -1)
        feats = self.encoder(images, directions, h_instr)
        outs = []
        for t in range(T):  # stepwise because nn.LSTM cannot reset its memory mid-sequence
            state = reset_state(state, starts[:, t])
            out, state = self.memory(feats[:, t:t + 1], state)
            outs.append(out)
        out = torch.cat(outs, 1)
        return self.actor(out), self.critic(out).squeeze(-1)

    @torch.no_grad()
    def act(self, images: Tensor, directions: Tensor, tokens: Tensor, state, greedy: bool = True,
            generator: torch.Generator | None = None):
        """One step for N environments: images [N, 7, 7, 3] -> actions [N], logits [N, A], values [N], state."""
        logits, values, state = self(images.unsqueeze(1), directions.unsqueeze(1), tokens, state)
        logits, values = logits[:, 0], values[:, 0]
        if greedy:
            return logits.argmax(-1), logits, values, state
        actions = torch.multinomial(F.softmax(logits, -1), 1, generator=generator).squeeze(-1)
        return actions, logits, values, state


def reset_state(state, done: Tensor):
    """Zero the memory of rows whose episode ended (done [N] bool)."""
    if state is None:
        return None
    keep = (~done).float().view(1, -1, 1)
    return state[0] * keep, state[1] * keep


class BabyAIDiscriminator(nn.Module):
    """GAIL discriminator over (state, instruction, action): logit of "this step is the expert's"."""

    def __init__(self, cfg: PolicyConfig = PolicyConfig()):
        super().__init__()
        self.encoder = ViewEncoder(cfg)
        self.action_emb = nn.Embedding(len(Actions), cfg.dim)
        self.head = nn.Sequential(nn.Linear(cfg.dim, 64), nn.Tanh(), nn.Linear(64, 1))

    def forward(self, images: Tensor, directions: Tensor, tokens: Tensor, actions: Tensor) -> Tensor:
        """Transitions: images [N, 7, 7, 3], directions [N], tokens [N, L], actions [N] -> logits [N]."""
        h = self.encoder(images.unsqueeze(1), directions.unsqueeze(1), self.encoder.instruction(tokens))
        return self.head(torch.tanh(h[:, 0] + self.action_emb(actions.long()))).squeeze(-1)

"""Link-selection policy: scores each outgoing link of the current page given the target page.

    x(p)            = W e(p) + u(p)                        page vector: projected text embedding e(p)
                                                           plus an optional trainable page vector u(p)
    q(c, g)         = MLP([x(c), x(g), x(c) * x(g)])       query from current page c and goal g
    score(c, g, n)  = q(c, g) . x(n) + a cos(e(n), e(g)) + b [n == g]

The policy is pi(n | c, g) = softmax over c's links of score(c, g, n), trained by cross-entropy on
the link the random walk took (behavioural cloning, arXiv:2211.00177). The cosine and exact-hit terms
give the untrained model the greedy-similarity behaviour to start from.
"""

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from protege.core.config_help import check_fields


@dataclass
class PolicyConfig:
    """Sizes of the link scorer."""
    dim: int = 128
    """width of page vectors x(p) and queries"""
    hidden: int = 256
    """hidden width of the query MLP"""
    page_vectors: bool = True
    """learn u(p) per page (memorises graph structure; N x dim parameters)"""

    def __post_init__(self):
        check_fields(self, dim=">=1", hidden=">=1")


class LinkScorer(nn.Module):
    def __init__(self, embeddings: np.ndarray, cfg: PolicyConfig):
        super().__init__()
        n, d = embeddings.shape
        self.register_buffer("emb", torch.as_tensor(embeddings, dtype=torch.float32),
                             persistent=False)  # (N, D): cached beside the graph, not in checkpoints
        self.proj = nn.Linear(d, cfg.dim)
        self.page = nn.Embedding(n, cfg.dim) if cfg.page_vectors else None
        if self.page is not None:
            nn.init.zeros_(self.page.weight)
        self.query = nn.Sequential(nn.Linear(3 * cfg.dim, cfg.hidden), nn.GELU(),
                                   nn.Linear(cfg.hidden, cfg.dim))
        self.sim_weight = nn.Parameter(torch.tensor(5.0))
        self.hit_weight = nn.Parameter(torch.tensor(10.0))

    def vec(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.proj(self.emb[ids])
        return x + self.page(ids) if self.page is not None else x

    def forward(self, cur: torch.Tensor, goal: torch.Tensor, cand: torch.Tensor,
                seg: torch.Tensor, goal_emb: torch.Tensor | None = None) -> torch.Tensor:
        """cur, goal: (B,) page ids; cand: (M,) the links of all B pages concatenated; seg: (M,)
        which of the B rows each link belongs to. `goal_emb` (B, D), if given, replaces the goal
        pages by free embeddings (a query): no page vector, no exact hit. Returns logits (M,).

        Links are flat rather than padded to (B, max degree): FOLDOC's largest page has 1,279 links
        against a median of 2, so padding would multiply the work by ~100."""
        eg = self.emb[goal] if goal_emb is None else goal_emb          # (B, D)
        xc = self.vec(cur)                                            # (B, dim)
        xg = self.vec(goal) if goal_emb is None else self.proj(goal_emb)
        q = self.query(torch.cat([xc, xg, xc * xg], dim=-1))          # (B, dim)
        xn = self.vec(cand)                                           # (M, dim)
        sim = (self.emb[cand] * eg[seg]).sum(-1)                      # (M,) cosine (unit norm)
        hit = (cand == goal[seg]).float() if goal_emb is None else torch.zeros_like(sim)
        return (xn * q[seg]).sum(-1) + self.sim_weight * sim + self.hit_weight * hit


def candidates(offsets: np.ndarray, targets: np.ndarray, pages: np.ndarray):
    """Outgoing links of `pages`, concatenated: (cand int64 (M,), seg int64 (M,) row of each link,
    starts int64 (B+1,) where each row's links begin)."""
    lo = np.asarray(offsets[pages], dtype=np.int64)
    deg = np.asarray(offsets[pages + 1], dtype=np.int64) - lo
    starts = np.zeros(len(pages) + 1, dtype=np.int64)
    np.cumsum(deg, out=starts[1:])
    seg = np.repeat(np.arange(len(pages), dtype=np.int64), deg)
    edge = lo[seg] + (np.arange(starts[-1], dtype=np.int64) - starts[seg])
    return np.asarray(targets)[edge].astype(np.int64), seg, starts


def segment_log_softmax(logits: torch.Tensor, seg: torch.Tensor, rows: int) -> torch.Tensor:
    """log softmax of flat `logits` within each segment (row) given by `seg`."""
    top = torch.full((rows,), float("-inf")).scatter_reduce(0, seg, logits.detach(), "amax")
    shifted = logits - top[seg]
    total = torch.zeros(rows).index_add(0, seg, shifted.exp())
    return shifted - total.log()[seg]


def bc_loss(model: LinkScorer, batch: dict) -> tuple[torch.Tensor, dict]:
    """Cross-entropy of the walk's link over the current page's links: -log pi(a | c, g)."""
    rows = len(batch["cur"])
    logits = model(batch["cur"], batch["goal"], batch["cand"], batch["seg"])
    logp = segment_log_softmax(logits, batch["seg"], rows)
    taken = batch["starts"][:-1] + batch["action"]                    # flat index of the walk's link
    loss = -logp[taken].mean()
    best = torch.full((rows,), float("-inf")).scatter_reduce(0, batch["seg"], logits.detach(), "amax")
    acc = (logits.detach()[taken] >= best).float().mean()
    return loss, {"nav/bc_loss": loss.item(), "nav/bc_accuracy": acc.item()}

"""Link-selection policy: scores each outgoing link of the current page given the target page.

    x(p)            = W e(p) + u(p)                        page vector: projected text embedding e(p)
                                                           plus an optional trainable page vector u(p)
    q(c, g)         = MLP([x(c), x(g), x(c) * x(g)])       query from current page c and goal g
    score(c, g, n)  = a cos(e(n), e(g)) + b [n == g]  +  q(c, g) . x(n)
                      \\_____ fixed baseline ______/     \\_ learned correction _/

The baseline term is greedy similarity to the target (the untrained navigator the tool reports
beside every policy); `a` and `b` are fixed, not learned, and the MLP's last layer starts at zero, so
the untrained scorer ranks links exactly as the baseline does and training learns only a correction.
The policy is pi(n | c, g) = softmax over c's links of score(c, g, n), trained by cross-entropy on
the link the random walk took (behavioural cloning, arXiv:2211.00177).

The page embeddings e(p) are not a parameter and not copied: the scorer keeps the array it is given
(float32 or float16, in memory or a `numpy.memmap`) and reads only the rows a batch needs, so a graph
of tens of millions of pages costs its embedding file on disk, not a float32 copy in memory.
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
    """learn u(p) per page (transductive: memorises graph structure, N x dim parameters, nothing
    learned for a page unseen in training); false: an inductive scorer from page text alone"""
    sim_scale: float = 5.0
    """fixed weight `a` of the baseline term cos(e(n), e(g)) (a softmax temperature; not learned)"""
    hit_bonus: float = 10.0
    """fixed weight `b` of the exact-hit term [n == g] (not learned)"""

    def __post_init__(self):
        check_fields(self, dim=">=1", hidden=">=1", sim_scale=">0", hit_bonus=">=0")


class LinkScorer(nn.Module):
    def __init__(self, embeddings: np.ndarray, cfg: PolicyConfig):
        super().__init__()
        n, d = embeddings.shape
        self.embeddings = embeddings  # (N, D) any float dtype, maybe a memmap: read per batch, never copied
        self.proj = nn.Linear(d, cfg.dim)
        self.page = nn.Embedding(n, cfg.dim) if cfg.page_vectors else None
        if self.page is not None:
            nn.init.zeros_(self.page.weight)
        self.query = nn.Sequential(nn.Linear(3 * cfg.dim, cfg.hidden), nn.GELU(),
                                   nn.Linear(cfg.hidden, cfg.dim))
        nn.init.zeros_(self.query[2].weight)  # the correction starts at zero: the baseline's ranking
        nn.init.zeros_(self.query[2].bias)
        # buffers, not parameters: the baseline term is fixed. Same names as the learned scalars of
        # earlier checkpoints, which therefore still load (with their learned values).
        self.register_buffer("sim_weight", torch.tensor(float(cfg.sim_scale)))
        self.register_buffer("hit_weight", torch.tensor(float(cfg.hit_bonus)))

    @property
    def emb(self) -> torch.Tensor:
        """All page embeddings as one float32 tensor: a dense copy, for small graphs only."""
        return self.rows(torch.arange(len(self.embeddings)))

    def rows(self, ids: torch.Tensor) -> torch.Tensor:
        """float32 embeddings of pages `ids` (any shape), gathered from the array as stored."""
        flat = ids.reshape(-1).cpu().numpy()
        uniq, inverse = np.unique(flat, return_inverse=True)  # sorted reads: a memmap pages in once
        table = torch.from_numpy(np.asarray(self.embeddings[uniq], dtype=np.float32))
        return table[torch.from_numpy(inverse.reshape(-1))].reshape(*ids.shape, table.shape[-1])

    def vec(self, ids: torch.Tensor, e: torch.Tensor | None = None) -> torch.Tensor:
        x = self.proj(self.rows(ids) if e is None else e)
        return x + self.page(ids) if self.page is not None else x

    def forward(self, cur: torch.Tensor, goal: torch.Tensor, cand: torch.Tensor,
                seg: torch.Tensor, goal_emb: torch.Tensor | None = None) -> torch.Tensor:
        """cur, goal: (B,) page ids; cand: (M,) the links of all B pages concatenated; seg: (M,)
        which of the B rows each link belongs to. `goal_emb` (B, D), if given, replaces the goal
        pages by free embeddings (a query): no page vector, no exact hit. Returns logits (M,).

        Links are flat rather than padded to (B, max degree): FOLDOC's largest page has 1,279 links
        against a median of 2, so padding would multiply the work by ~100."""
        return self.baseline(goal, cand, seg, goal_emb) + self.correction(cur, goal, cand, seg, goal_emb)

    def baseline(self, goal, cand, seg, goal_emb=None) -> torch.Tensor:
        """The fixed term a cos(e(n), e(g)) + b [n == g] (M,); embeddings are unit-norm."""
        eg = self.rows(goal) if goal_emb is None else goal_emb
        sim = (self.rows(cand) * eg[seg]).sum(-1)
        hit = (cand == goal[seg]).float() if goal_emb is None else torch.zeros_like(sim)
        return self.sim_weight * sim + self.hit_weight * hit

    def correction(self, cur, goal, cand, seg, goal_emb=None, table=None) -> torch.Tensor:
        """The learned term q(c, g) . x(n) (M,); zero for an untrained scorer. `table` (N, dim), if
        given, holds x(p) of every page (`page_table`): navigation then reads candidates' vectors
        instead of projecting their embeddings at every step."""
        xc = self.vec(cur) if table is None else table[cur]           # (B, dim)
        xg = self.proj(goal_emb) if goal_emb is not None else self.vec(goal) if table is None else table[goal]
        q = self.query(torch.cat([xc, xg, xc * xg], dim=-1))          # (B, dim)
        return ((self.vec(cand) if table is None else table[cand]) * q[seg]).sum(-1)

    @torch.no_grad()
    def page_table(self, chunk: int = 65536) -> torch.Tensor:
        """x(p) for every page (N, dim), projected a chunk of pages at a time."""
        n = len(self.embeddings)
        return torch.cat([self.vec(torch.arange(i, min(i + chunk, n))) for i in range(0, n, chunk)])


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
    """Cross-entropy of the walk's link over the current page's links: -log pi(a | c, g).

    With sampled candidates (the batch carries `log_weight`, see `sample_candidates`) the softmax
    runs over the taken link and a uniform sample of the others, each sampled logit raised by
    log(others / sampled): the sum of exp(logits) over the sample then estimates the sum over all of
    the page's links without bias (sampled softmax with the log-Q correction, Jean et al. 2015,
    arXiv:1412.2007), and the step's cost no longer grows with the page's out-degree."""
    rows = len(batch["cur"])
    logits = model(batch["cur"], batch["goal"], batch["cand"], batch["seg"])
    if "log_weight" in batch:
        logits = logits + batch["log_weight"]
    logp = segment_log_softmax(logits, batch["seg"], rows)
    taken = batch["starts"][:-1] + batch["action"]                    # flat index of the walk's link
    loss = -logp[taken].mean()
    best = torch.full((rows,), float("-inf")).scatter_reduce(0, batch["seg"], logits.detach(), "amax")
    acc = (logits.detach()[taken] >= best).float().mean()
    return loss, {"nav/bc_loss": loss.item(), "nav/bc_accuracy": acc.item()}


def sample_candidates(offsets: np.ndarray, targets: np.ndarray, pages: np.ndarray,
                      action: np.ndarray, limit: int, rng: np.random.Generator):
    """Each page's taken link (first in its row, so the action becomes 0) plus its other links: all of
    them when there are at most `limit`, else `limit` drawn uniformly with replacement. Returns
    (cand, seg, starts, log_weight) with log_weight = log(others / limit) on sampled links, else 0."""
    lo = np.asarray(offsets[pages], dtype=np.int64)
    others = np.asarray(offsets[pages + 1], dtype=np.int64) - lo - 1
    action = np.asarray(action, dtype=np.int64)
    width = 1 + np.minimum(others, limit)
    starts = np.zeros(len(pages) + 1, dtype=np.int64)
    np.cumsum(width, out=starts[1:])
    seg = np.repeat(np.arange(len(pages), dtype=np.int64), width)
    slot = np.arange(starts[-1], dtype=np.int64) - starts[seg] - 1   # -1: the taken link
    sampled = others[seg] > limit
    pick = np.where(sampled, (rng.random(len(seg)) * np.maximum(others[seg], 1)).astype(np.int64), slot)
    pick = pick + (pick >= action[seg])                               # skip over the taken link
    index = np.where(slot < 0, action[seg], pick)
    cand = np.asarray(targets)[lo[seg] + index].astype(np.int64)
    log_weight = np.where(sampled & (slot >= 0),
                          np.log(np.maximum(others[seg], 1) / limit), 0.0).astype(np.float32)
    return cand, seg, starts, log_weight

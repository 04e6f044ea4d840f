"""Experiment `ibt`: a reward model from progress marks (a studio export, people's or simulated).

Three methods, one network (`nn/utility.py`, scores o_f of every prefix x_{<=f}), one loss
(`losses/bradley_terry.py`), the same marks:

  ibt       inter-temporal Bradley-Terry (arXiv:2211.11602): a progress mark on frame f says a
            prefix ending at or after f beats one ending before it; a regress mark the reverse.
            Pairs are drawn afresh each step around every mark: earlier uniform in [previous
            mark's frame, f - 1], later uniform in [f, next mark's frame - 1] (to the end after the
            last mark). Reward r_t = o_{t+1} - o_t.
  step      per-step Bradley-Terry: a step's label is +1 per progress and -1 per regress mark on
            the frame it led to; each labelled step is paired with a random step of the same
            episode with a lower (for +) or higher (for -) label. Reward r_t = o_{t+1}.
  episode   episode preferences (Christiano et al. 2017, arXiv:1706.03741): an episode's mark
            score (progress - regress + success - failure) decides which of two episodes an
            annotator prefers; pairs of a batch with different scores compare sum_t r_t. r_t = o_{t+1}.

A success label counts as a progress mark on the last frame for ibt and step; failure labels
enter only episode scores. Evaluation on held-out episodes (`held_out`), with the potential
phi_f = sum_{t<f} r_t each method implies: mark accuracy (the sign of phi_f - phi_prev over each
progress/regress mark, prev the previous mark's frame), the Spearman correlation of phi with true
progress (minus the bot's remaining steps, simulated exports only) within each episode, and of
the episode return phi_T with success.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from protege.core.config_help import check_fields
from protege.core.runs import Run, read_metrics
from protege.core.seeds import rng_state, seed_everything, set_rng_state, stream_seed
from protege.losses.bradley_terry import bradley_terry_loss, prefix_pair_scores
from protege.nn.babyai_policy import tokenize
from protege.nn.utility import UtilityConfig, UtilityModel

Method = Literal["ibt", "step", "episode"]
METHODS = ("ibt", "step", "episode")
SIGN = {"progress": 1, "regress": -1, "success": 1, "failure": -1}


@dataclass
class Config:
    name: str = "ibt"
    """run name: the run directory is runs/<name>"""
    seed: int = 0
    """seeds initialisation, the held-out split, mark subsampling and pair sampling"""
    marks: str = "data/marks/PickupLoc"
    """a studio export folder (`protege studio export --out` or `protege studio simulate --out`)"""
    method: Method = "ibt"
    """ibt (inter-temporal prefix pairs), step (per-step pairs) or episode (episode preferences)"""
    held_out: float = 0.2
    """fraction of the episodes kept out of training for evaluation"""
    n_marks: int = 0
    """train on this many marks of the training episodes (a seeded subset; 0: all)"""
    steps: int = 600
    """optimiser steps"""
    batch_size: int = 16
    """episodes per step (every pair of those episodes is used)"""
    lr: float = 1e-3
    """Adam learning rate"""
    utility: UtilityConfig = field(default_factory=UtilityConfig)
    """sizes of the utility model"""
    encoder_from: str = ""
    """a BabyAI policy run (e.g. the BC run) whose instruction and view encoders start the utility
    model's (the sizes must match); "" starts from scratch"""
    freeze_encoder: bool = False
    """with encoder_from: keep those encoders fixed and train only the memory and head"""
    checkpoint_every: int = 100
    """steps between checkpoints (the last one is always saved)"""
    log_every: int = 25
    """steps between metric rows"""

    def __post_init__(self):
        check_fields(self, marks="nonempty", held_out="[0,1)", n_marks=">=0", steps=">=1",
                     batch_size=">=1", lr=">0", checkpoint_every=">=1", log_every=">=1")
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")


# --- pairs --------------------------------------------------------------------------------------

def order_marks(marks) -> list[tuple[int, int]]:
    """(frame, +1/-1) of the progress/regress marks and success labels that order prefixes."""
    return [(f, SIGN[k]) for f, k, _ in marks if k in ("progress", "regress", "success") and f >= 1]


def ibt_pairs(marks, T: int, rng: np.random.Generator) -> list[tuple[int, int, bool]]:
    """(earlier, later, progress) of one episode, one pair per ordering mark (module docstring)."""
    ordered = sorted(order_marks(marks))
    frames = sorted({f for f, _ in ordered})
    out = []
    for f, sign in ordered:
        i = frames.index(f)
        lo = frames[i - 1] if i else 0
        hi = frames[i + 1] - 1 if i + 1 < len(frames) else T
        out.append((int(rng.integers(lo, f)), int(rng.integers(f, max(hi, f) + 1)), sign > 0))
    return out


def step_labels(marks, T: int) -> np.ndarray:
    """[T] per-step labels: +1 per progress mark (or success) and -1 per regress mark on frame t+1."""
    labels = np.zeros(T, np.int64)
    for f, sign in order_marks(marks):
        labels[min(f, T) - 1] += sign
    return labels


def step_pairs(labels: np.ndarray, rng: np.random.Generator) -> list[tuple[int, int]]:
    """(better step, worse step) within one episode: each labelled step against a random step with
    a lower (label > 0) or higher (label < 0) label."""
    out = []
    for t in np.flatnonzero(labels):
        others = np.flatnonzero(labels < labels[t]) if labels[t] > 0 else np.flatnonzero(labels > labels[t])
        if len(others):
            o = int(rng.choice(others))
            out.append((int(t), o) if labels[t] > 0 else (o, int(t)))
    return out


def episode_score(marks) -> int:
    """An annotator's view of an episode from its marks: progress - regress + success - failure."""
    return sum(SIGN[k] for _, k, _ in marks)


# --- batches ------------------------------------------------------------------------------------

def pad_episodes(episodes) -> dict:
    """Padded tensors of whole episodes (T+1 frames each): images, directions, tokens, mask [B, F]."""
    F_ = max(len(e) + 1 for e in episodes)
    B = len(episodes)
    images = torch.zeros(B, F_, 7, 7, 3, dtype=torch.uint8)
    directions = torch.zeros(B, F_, dtype=torch.long)
    mask = torch.zeros(B, F_, dtype=torch.bool)
    for i, e in enumerate(episodes):
        n = len(e) + 1
        images[i, :n] = torch.from_numpy(np.asarray(e.observations["image"], np.uint8))
        directions[i, :n] = torch.from_numpy(np.asarray(e.observations["direction"], np.int64))
        mask[i, :n] = True
    return {"images": images, "directions": directions, "mask": mask,
            "tokens": tokenize([e.instruction or "" for e in episodes])}


def scores(model: UtilityModel, batch: dict) -> torch.Tensor:
    return model(batch["images"], batch["directions"], batch["tokens"], batch["mask"])


def batch_loss(model: UtilityModel, method: str, items, rng: np.random.Generator):
    """The Bradley-Terry loss of a batch of MarkedEpisodes under `method`; (loss, metrics) or None
    when the batch holds no pair."""
    batch = pad_episodes([m.episode for m in items])
    o = scores(model, batch)
    if method == "ibt":
        rows = [(b, *p) for b, m in enumerate(items) for p in ibt_pairs(m.marks, len(m.episode), rng)]
        if not rows:
            return None
        ep, early, late, prog = (torch.tensor(c) for c in zip(*rows))
        better, worse = prefix_pair_scores(o, ep, early, late, prog)
    elif method == "step":
        rows = [(b, g + 1, w + 1) for b, m in enumerate(items)
                for g, w in step_pairs(step_labels(m.marks, len(m.episode)), rng)]
        if not rows:
            return None
        ep, good, bad = (torch.tensor(c) for c in zip(*rows))
        better, worse = o[ep, good], o[ep, bad]
    else:
        returns = (o * batch["mask"])[:, 1:].sum(1)  # sum_t r_t with r_t = o_{t+1}
        score = [episode_score(m.marks) for m in items]
        rows = [(i, j) for i in range(len(items)) for j in range(len(items)) if score[i] > score[j]]
        if not rows:
            return None
        good, bad = (torch.tensor(c) for c in zip(*rows))
        better, worse = returns[good], returns[bad]
    loss, metrics = bradley_terry_loss(better, worse)
    return loss, {**metrics, "bt/pairs": len(rows)}


def potentials(o: torch.Tensor, mask: torch.Tensor, method: str) -> torch.Tensor:
    """phi_f = sum_{t<f} r_t [B, F] of each method's rewards (0 at frame 0 and on padding)."""
    if method == "ibt":
        return (o - o[:, :1]) * mask
    r = (o * mask)[:, 1:]
    return torch.cat([torch.zeros_like(o[:, :1]), r.cumsum(1)], 1)


# --- evaluation ---------------------------------------------------------------------------------

@torch.no_grad()
def held_out_potentials(model: UtilityModel, method: str, episodes, batch_size: int = 32) -> list[np.ndarray]:
    """phi [T+1] of every episode."""
    model.eval()
    out = []
    for s in range(0, len(episodes), batch_size):
        items = episodes[s:s + batch_size]
        batch = pad_episodes([m.episode for m in items])
        phi = potentials(scores(model, batch), batch["mask"], method)
        out.extend(phi[i, :len(m.episode) + 1].numpy() for i, m in enumerate(items))
    model.train()
    return out


def evaluate(model: UtilityModel, method: str, episodes) -> dict:
    """Mark accuracy, Spearman of phi with true progress (within episodes) and of phi_T with
    success, on `episodes` (see the module docstring); trivial baselines beside them."""
    from scipy.stats import spearmanr

    from protege.eval.stats import mean_interval, wilson_interval
    phis = held_out_potentials(model, method, episodes)
    right = n = progress = 0
    within = []
    for m, phi in zip(episodes, phis):
        frames = sorted((f, k) for f, k, _ in m.marks if k in ("progress", "regress") and f >= 1)
        for j, (f, kind) in enumerate(frames):
            prev = max([g for g, _ in frames[:j] if g < f], default=0)
            gain = phi[f] - phi[prev]
            right += (gain > 0) if kind == "progress" else (gain < 0)
            progress += kind == "progress"
            n += 1
        if m.remaining is not None:
            known = [f for f, d in enumerate(m.remaining) if d >= 0]
            d = np.asarray([m.remaining[f] for f in known])
            if len(known) >= 3 and len(set(d.tolist())) > 1:
                within.append(float(spearmanr(phi[known], -d).statistic))
    out = {"eval/episodes": len(episodes), "eval/marks": n}
    if n:
        lo, hi = wilson_interval(right, n)
        out.update({"eval/mark_accuracy": right / n, "eval/mark_accuracy_lo": lo, "eval/mark_accuracy_hi": hi,
                    "eval/mark_accuracy_majority": max(progress, n - progress) / n})
    if within:
        mean, lo, hi = mean_interval(within)
        out.update({"eval/spearman_progress": mean, "eval/spearman_progress_lo": max(lo, -1.0),
                    "eval/spearman_progress_hi": min(hi, 1.0), "eval/spearman_progress_episodes": len(within)})
    success = [m.success for m in episodes]
    if len(set(success)) > 1:
        out["eval/spearman_success"] = float(spearmanr([phi[-1] for phi in phis], success).statistic)
    return out


# --- the run ------------------------------------------------------------------------------------

def run(config: Config, run: Run) -> dict:
    from protege.core.progress import progress_bar
    from protege.systems.feedback.marks_data import load_marks, split, subsample_marks
    seed_everything(config.seed)
    torch.set_num_threads(1)
    episodes = load_marks(Path(config.marks))
    train, held = split(episodes, config.held_out, stream_seed(config.seed, "ibt/split"))
    train = subsample_marks(train, config.n_marks, stream_seed(config.seed, "ibt/marks"))
    train = [m for m in train if m.marks]
    if not train:
        from protege.core.errors import UserError
        raise UserError(f"{config.marks}: no marked episodes left to train on")
    model = UtilityModel(config.utility)
    if config.encoder_from:
        share_encoder(model, Path(config.encoder_from), config.freeze_encoder)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=config.lr)
    rng = np.random.default_rng(stream_seed(config.seed, "ibt/pairs"))
    start = 0
    restored = run.restore()
    if restored is not None:
        weights, state = restored
        model.load_state_dict(weights)
        opt.load_state_dict(state["opt"])
        set_rng_state(state["rng"])
        rng.bit_generator.state = state["pairs"]
        start = int(state["step"])
    with progress_bar() as bar:
        task = bar.add_task(f"{config.method} reward model", total=config.steps, completed=start)
        for step in range(start, config.steps):
            pick = rng.choice(len(train), min(config.batch_size, len(train)), replace=False)
            result = batch_loss(model, config.method, [train[i] for i in pick], rng)
            if result is not None:
                loss, metrics = result
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
            done = step + 1
            if result is not None and (done % config.log_every == 0 or done == config.steps):
                run.log(done, {k: float(v) for k, v in metrics.items()})
            if done % config.checkpoint_every == 0 or done == config.steps:
                run.save_checkpoint(done, model.state_dict(), {
                    "opt": opt.state_dict(), "rng": rng_state(), "pairs": rng.bit_generator.state})
            bar.update(task, completed=done)
    last = next((r for r in reversed(read_metrics(run.dir)) if "bt/loss" in r), {})
    summary = {"method": config.method, "train_episodes": len(train),
               "train_marks": sum(len(m.marks) for m in train), "held_out_episodes": len(held),
               "train/bt_loss": last.get("bt/loss"), "train/bt_accuracy": last.get("bt/accuracy")}
    if held:
        summary.update(evaluate(model, config.method, held))
    return summary


def share_encoder(model: UtilityModel, run: Path, freeze: bool) -> None:
    """Start the utility model's encoders from a trained BabyAI policy's (the policy is unchanged)."""
    from protege.core.errors import UserError
    from protege.rl.babyai_rollout import load_policy
    policy, policy_cfg, _ = load_policy(run)
    if (policy_cfg.dim, policy_cfg.n_film) != (model.cfg.dim, model.cfg.n_film):
        raise UserError(f"encoder_from {run}: a policy of dim {policy_cfg.dim}, n_film {policy_cfg.n_film}; "
                        f"the utility has dim {model.cfg.dim}, n_film {model.cfg.n_film}")
    model.encoder.load_state_dict(policy.encoder.state_dict())
    for p in model.encoder.parameters():
        p.requires_grad_(not freeze)


def load_utility(path: Path) -> tuple[UtilityModel, str]:
    """The utility model and method of an ibt run directory (its latest checkpoint)."""
    from protege.core.errors import UserError
    from protege.core.runs import load_weights, read_run_config
    path = Path(path)
    pointer = path / "checkpoints" / "latest"
    if not pointer.exists():
        raise UserError(f"{path}: not an ibt run directory with a checkpoint (run `protege run ibt_...`)")
    config = read_run_config(path)
    if config.get("method") not in METHODS:
        raise UserError(f"{path / 'config.yaml'}: method {config.get('method')!r} is not one of {', '.join(METHODS)}")
    try:
        model = UtilityModel(UtilityConfig(**config.get("utility", {})))
        model.load_state_dict(load_weights(path / "checkpoints" / pointer.read_text().strip() / "model.safetensors"))
    except (TypeError, ValueError, RuntimeError) as e:
        raise UserError(f"{path}: does not hold a utility model ({str(e)[:200]})") from None
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, config["method"]

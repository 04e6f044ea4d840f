"""Experiment `subgoals_bc`: both levels of the hierarchical agent by BC from the bot's annotated
demonstrations (arXiv:2309.11564's supervised stage), then held-out evaluation.

One loss over the same B episodes (`batches.make_batch`):
    L = NLL(chooser: bot phrase | mission, history) + NLL(actor: bot action | phrase, segment)
        + done_weight * BCE(done head: new subgoal starts | view, phrase)
each term the shared `protege.losses.mle.mle_loss` (the BCE is a two-class NLL). `fit` owns the
loop, so a killed run resumes to the same weights and metrics. What rebuilds the agent (the phrase
list: every canonical phrase of the training episodes; the sizes) is saved beside it as agent.json.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F

from protege.core.atomic import write_json_atomic
from protege.core.config_help import check_fields
from protege.core.errors import UserError
from protege.core.runs import Run, added_config_key, read_metrics
from protege.core.seeds import seed_everything
from protege.losses.mle import mle_loss
from protege.nn.babyai_policy import PolicyConfig
from protege.nn.subgoal_agent import HierarchicalAgent
from protege.rl.fit import TrainerConfig, fit
from protege.systems.subgoals.batches import HierarchyBatch, make_batch
from protege.worlds.babyai.levels import check_level
from protege.worlds.babyai.subgoals import load_subgoal_data

AGENT_FILE = "agent.json"
added_config_key("replan", "done")  # subgoals_bc and subgoals_rl runs made before the rule was a choice


@dataclass
class Config:
    name: str = "subgoals_bc"
    """run name: the run directory is runs/<name>"""
    seed: int = 0
    """seeds initialisation and the data order"""
    level: str = "BabyAI-PutNextLocal-v0"
    """BabyAI level id; the subgoal dataset must be of this level"""
    data: str = "data/subgoals/PutNextLocal-phrases"
    """folder written by `protege data subgoals`"""
    n_demos: int = 0
    """use the first n episodes (0: all)"""
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    """sizes of the chooser, the low-level policy and the done head (each its own network)"""
    chooser: Literal["words", "classes", "sequence", "grounded"] = "words"
    """how the chooser scores a phrase: by a sum of its words (shared across phrases), read in order
    with the mission beside the memory ("sequence"), "sequence" plus facts about the phrase's object
    (named in the mission, in view, in front, carried: "grounded"), or as an independent class
    (nn/subgoal_agent.py)"""
    done_weight: float = 1.0
    """weight of the done head's loss"""
    done_frames: int = 128
    """done-head examples per batch, sampled from the batch's steps (0: all)"""
    max_segment_steps: int = 32
    """a subgoal not reached after this many steps is replaced by a new choice"""
    replan: Literal["done", "done_other", "done_keep", "every_step"] = "done"
    """when the agent takes a new phrase in evaluation (nn/subgoal_agent.py); an acting rule, not
    weights: loading the run reads it from its config, `protege eval subgoals --replan` overrides it"""
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    """the offline loop: steps, batch (episodes), learning-rate schedule, logging, checkpoints"""
    eval_episodes: int = 200
    """held-out episodes (seeds from 10^9) on `level` and each of `transfer_levels`; 0 skips"""
    transfer_levels: list[str] = field(default_factory=list)
    """levels not used in training, evaluated too"""
    agreement_episodes: int = 100
    """held-out bot episodes on which the chooser's phrase is compared with the bot's; 0 skips"""

    def __post_init__(self):
        check_fields(self, data="nonempty", n_demos=">=0", done_weight=">=0",
                     max_segment_steps=">=1", done_frames=">=0", eval_episodes=">=0", agreement_episodes=">=0")
        for key, level in [("level", self.level)] + [("transfer_levels", t) for t in self.transfer_levels]:
            try:
                check_level(level)
            except UserError as e:
                raise ValueError(f"{key}: {e}") from None


def accuracy(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Share of the counted steps whose most likely class is the label."""
    return ((logits.argmax(-1) == labels) & mask).sum().float() / mask.sum().clamp_min(1)


def chooser_loss(agent: HierarchicalAgent, batch: HierarchyBatch):
    """The chooser's BC term: (NLL of the bot's phrase at every step, logits, the steps counted)."""
    logits, _, _ = agent.chooser(batch.ep_images, batch.ep_directions, batch.missions,
                                 mask=batch.ep_mask)
    mask = batch.ep_mask & (batch.ep_phrases >= 0)
    return mle_loss(logits, batch.ep_phrases, mask)[0], logits, mask


def hierarchy_loss(agent: HierarchicalAgent, batch: HierarchyBatch, done_weight: float):
    """The three BC terms on one batch; returns (loss, metrics)."""
    chooser_nll, logits, chooser_mask = chooser_loss(agent, batch)
    action_logits, _, _ = agent.actor(batch.seg_images, batch.seg_directions, batch.seg_tokens,
                                      mask=batch.seg_mask)
    actor_loss, _ = mle_loss(action_logits, batch.seg_actions, batch.seg_mask)
    done_logits = agent.done(batch.done_images, batch.done_directions, batch.done_tokens)
    done_loss = F.binary_cross_entropy_with_logits(done_logits, batch.done_labels)
    metrics = {"train/chooser_nll": chooser_nll.detach(), "train/actor_nll": actor_loss.detach(),
               "train/done_bce": done_loss.detach(),
               "train/chooser_accuracy": accuracy(logits, batch.ep_phrases, chooser_mask),
               "train/actor_accuracy": accuracy(action_logits, batch.seg_actions, batch.seg_mask),
               "train/done_accuracy": ((done_logits > 0).float() == batch.done_labels).float().mean()}
    return chooser_nll + actor_loss + done_weight * done_loss, metrics


def save_agent_spec(run: Run, agent: HierarchicalAgent) -> None:
    """agent.json: what `evaluate.load_agent` needs besides the weights (a resumed run must match)."""
    policy = agent.policy_config
    spec = {"phrases": agent.phrases, "policy": {"dim": policy.dim, "n_film": policy.n_film},
            "max_segment_steps": agent.max_segment_steps, "chooser": agent.chooser.scoring}
    path = Path(run.dir) / AGENT_FILE
    if path.exists():
        import json
        if json.loads(path.read_text()) != spec:
            raise UserError(f"{path}: the run was started on other data or sizes; use a new run name")
    elif run.is_main:
        write_json_atomic(path, spec)


def run(config: Config, run: Run) -> dict:
    seed_everything(config.seed)
    torch.set_num_threads(1)
    data = load_subgoal_data(Path(config.data), level=config.level)
    data = data.subset(config.n_demos) if config.n_demos else data
    phrases = sorted(set(data.phrases.tolist()))
    index = {p: i for i, p in enumerate(phrases)}
    agent = HierarchicalAgent(phrases, config.policy, config.max_segment_steps, config.chooser,
                              config.replan)
    save_agent_spec(run, agent)
    fit(agent, lambda m, b: hierarchy_loss(m, b, config.done_weight), len(data),
        lambda idx: make_batch(data, idx, index, config.done_frames), config.trainer, run, config.seed)
    last = next((row for row in reversed(read_metrics(run.dir)) if "train/loss" in row), {})
    summary = {"demos": len(data), "demo_steps": int(data.lengths.sum()), "phrases": len(phrases),
               **{k: last.get(k) for k in ("train/loss", "train/chooser_accuracy",
                                           "train/actor_accuracy", "train/done_accuracy")}}
    summary.update(evaluate_all(agent, config, run))
    return summary


def evaluate_all(agent: HierarchicalAgent, config, run: Run, step: int | None = None) -> dict:
    """Held-out success on the training level and the transfer levels, and phrase agreement."""
    from protege.systems.subgoals.evaluate import evaluate_agent, phrase_agreement
    out = {}
    agent.eval()
    for level in [config.level] + list(config.transfer_levels):
        if config.eval_episodes:
            result = evaluate_agent(agent, level, config.eval_episodes)
            out.update({f"eval/{level}/{k}": v for k, v in result.items()})
        if config.agreement_episodes:
            agree = phrase_agreement(agent, level, config.agreement_episodes)
            out.update({f"agreement/{level}/{k}": v for k, v in agree.items()})
    run.log(config.trainer.steps if step is None else step, {k: v for k, v in out.items() if isinstance(v, (int, float))})
    return out

"""Experiment `par_planner`: the built-in Planner, a small decoder (nn/lm.py) trained by BC on the
rule Planner's replies, then used like any local model (`planner=runs/<name>`).

Transcripts: the rule Planner and the scripted Actor play `episodes` episodes (seeds from 0), the
Reporter drawn per episode among none, the oracle and a random one (a uniformly random report
from the report set: the decoder must also act on wrong and useless reports); every turn gives one
(prompt, reply) pair. A byte-level BPE is trained on the prompts; the loss is the NLL of the reply
tokens and <eos> given the prompt (`protege.losses.mle.mle_loss`). The model and its tokenizer are
saved together in the run's model/ folder, a plain Hugging Face folder (so `protege serve
runs/<name>/model` serves it as an OpenAI-compatible endpoint). Then held-out success with
the scripted Actor and each hand-written Reporter, counting malformed replies.
"""

import random
from dataclasses import dataclass, field
from pathlib import Path

import torch

from protege.core.atomic import atomic_path
from protege.core.config_help import check_fields
from protege.core.runs import Run
from protege.core.seeds import seed_everything
from protege.losses.mle import mle_loss
from protege.nn.lm import ModelConfig, build_model
from protege.nn.tokenizer import train_bpe
from protege.rl.fit import TrainerConfig, fit
from protege.systems.par.dialogue import REPORTS, NoReporter, OracleReporter
from protege.systems.par.episode import ScriptedActor, evaluate, play_episode
from protege.systems.par.planners import LocalPlanner, RulePlanner
from protege.worlds.babyai.examine import check_world, make_examine_env


@dataclass
class Config:
    name: str = "par_planner"
    """run name: the run directory is runs/<name>"""
    seed: int = 0
    """seeds initialisation, the transcripts' reporters and the data order"""
    size: int = 6
    """room side, walls included"""
    n_objects: int = 3
    """objects in the room (2-4)"""
    episodes: int = 3000
    """rule-Planner episodes whose turns are the training pairs"""
    vocab_size: int = 384
    """byte-level BPE vocabulary"""
    model: ModelConfig = field(default_factory=lambda: ModelConfig(n_layer=2, n_embd=96, n_head=4, context=256))
    """the decoder (built-in sizes)"""
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    """the offline loop"""
    eval_episodes: int = 200
    """held-out episodes per Reporter (none, oracle) at the end; 0 skips"""

    def __post_init__(self):
        check_fields(self, episodes=">=1", vocab_size=">=1", eval_episodes=">=0")
        check_world(self.size, self.n_objects)


class RandomReporter:
    """A uniformly random report (for the transcripts only)."""
    name = "random"

    def __init__(self, rng: random.Random):
        self.rng = rng

    def report(self, image) -> str:
        return self.rng.choice(REPORTS)


class _Recorder:
    """Wraps a planner and keeps every (prompt, reply)."""

    def __init__(self, inner):
        self.inner, self.pairs, self.name = inner, [], inner.name

    def reply(self, prompt: str) -> str:
        reply = self.inner.reply(prompt)
        self.pairs.append((prompt, reply))
        return reply


def transcripts(episodes: int, size: int, n_objects: int, seed: int) -> list[tuple[str, str]]:
    rng, env, recorder = random.Random(seed), make_examine_env(size, n_objects), _Recorder(RulePlanner())
    reporters = [NoReporter(), OracleReporter(), RandomReporter(rng)]
    for ep in range(episodes):
        play_episode(env, ep, recorder, ScriptedActor(), rng.choice(reporters))
    return recorder.pairs


def encode(tokenizer, pairs: list[tuple[str, str]]) -> list[tuple[list[int], list[int]]]:
    eos = tokenizer.eos_token_id
    return [(tokenizer(p)["input_ids"], tokenizer(" " + r)["input_ids"] + [eos]) for p, r in pairs]


def make_batch(examples, idx, pad: int) -> dict:
    rows = [examples[i] for i in idx]
    T = max(len(p) + len(r) for p, r in rows)
    ids = torch.full((len(rows), T), pad, dtype=torch.long)
    targets = torch.zeros(len(rows), T, dtype=torch.long)
    mask = torch.zeros(len(rows), T, dtype=torch.bool)
    attention = torch.zeros(len(rows), T, dtype=torch.long)
    for b, (p, r) in enumerate(rows):
        seq = p + r
        ids[b, :len(seq)] = torch.tensor(seq)
        attention[b, :len(seq)] = 1
        # position t predicts token t+1: the reply tokens are predicted from len(p)-1 on
        targets[b, len(p) - 1:len(seq) - 1] = torch.tensor(r)
        mask[b, len(p) - 1:len(seq) - 1] = True
    return {"ids": ids, "attention": attention, "targets": targets, "mask": mask}


def reply_loss(model, batch: dict):
    logits = model(input_ids=batch["ids"], attention_mask=batch["attention"]).logits
    loss, _ = mle_loss(logits, batch["targets"], batch["mask"])
    return loss, {"train/nll": loss.detach()}


def run(config: Config, run: Run) -> dict:
    seed_everything(config.seed)
    torch.set_num_threads(1)
    pairs = transcripts(config.episodes, config.size, config.n_objects, config.seed)
    tokenizer = train_bpe([p + " " + r for p, r in pairs], config.vocab_size)
    examples = encode(tokenizer, pairs)
    longest = max(len(p) + len(r) for p, r in examples)
    if longest > config.model.context:
        raise ValueError(f"model.context {config.model.context} < the longest transcript ({longest} tokens)")
    model = build_model(config.model, len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id)
    last = fit(model, reply_loss, len(examples), lambda idx: make_batch(examples, idx, tokenizer.pad_token_id),
               config.trainer, run, config.seed)
    summary = {"pairs": len(pairs), "longest_tokens": longest,
               **{k: float(v) for k, v in last.items() if k.startswith("train/")}}
    if not run.is_main:
        return summary
    with atomic_path(Path(run.dir) / "model", replace_folder=True) as tmp:  # our own folder
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
    if config.eval_episodes:
        planner = LocalPlanner(run.dir)
        for key, reporter in (("none", NoReporter()), ("oracle", OracleReporter())):
            result = evaluate(planner, ScriptedActor(), reporter, config.eval_episodes, config.size,
                              config.n_objects, out=Path(run.dir) / f"eval_{key}.jsonl")
            summary.update({f"eval/{key}/{k}": v for k, v in result.items()})
        run.log(config.trainer.steps, {k: v for k, v in summary.items() if k.startswith("eval/")})
    return summary


"""`protege run` experiment "prm": a reward over token prefixes from step marks (inter-temporal
Bradley-Terry, arXiv:2211.11602), or from final answers alone (outcome Bradley-Terry).

Data: arithmetic solutions whose steps a simulated annotator marked progress (the step's value is
right) or regress (wrong), see `protege.worlds.text.step_marks`; or the user's marks file.

    process  each mark is one inter-temporal pair of adjacent marked prefixes: progress at mark k
             says U(completion cut at mark k) > U(cut at mark k-1) (the prompt alone for k = 0),
             regress the reverse. Adjacent pairs are the finest the marks support; a pair spanning
             several marks would compare steps whose marks may disagree.
    outcome  the same solutions, seen only through their final answers: for each prompt, every
             (right answer, wrong answer) pair of its solutions says U(right's end) > U(wrong's end)
             (Bradley-Terry on whole completions, arXiv:1706.03741 Eq. 1).

Both score a completion by U(end) - U(prompt) = sum_t r_t (the telescoped step rewards), which is
how `protege lm rerank` ranks samples.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from protege.core.config_help import check_fields
from protege.core.errors import UserError
from protege.core.runs import Run
from protege.core.seeds import seed_everything, stream_seed
from protege.data.tokens import prompt_ids, special_prefix
from protege.losses.bradley_terry import bradley_terry_loss, prefix_pair_scores
from protege.nn.lm import ModelConfig, build_model, parameter_count, position_limit
from protege.nn.tokenizer import load_tokenizer, save_tokenizer, train_bpe
from protege.nn.utility_head import PrefixUtility, load_utility, save_utility
from protege.rl.fit import TrainerConfig, fit
from protege.worlds.text import arithmetic
from protege.worlds.text.step_marks import MarkedSolution, read_marks, simulated_marks


@dataclass
class MarksConfig:
    path: str = ""
    """a marks file (JSONL, see worlds/text/step_marks.py); empty: the simulated annotator's marks"""
    prompts: int = 2000
    """simulated: training prompts (each with `solutions` marked solutions)"""
    solutions: int = 4
    """simulated: solutions per prompt (the outcome reward compares solutions of one prompt)"""
    error_prob: float = 0.5
    """simulated: chance that a solution has an error (which carries on to its answer)"""
    miss: float = 0.0
    """simulated annotator noise: chance of leaving a step unmarked"""
    flip: float = 0.0
    """simulated annotator noise: chance of marking a step the wrong way"""
    eval_prompts: int = 200
    """held-out prompts whose (noise-free) marks measure the trained reward"""
    held_out: int = 200
    """the first this many held-out prompts of the `lm` runs of this seed are never marked for training"""

    def __post_init__(self):
        check_fields(self, prompts=">=1", solutions=">=1", error_prob="[0,1]", miss="[0,1]",
                     flip="[0,1]", eval_prompts=">=1", held_out=">=0")


@dataclass
class Config:
    name: str = "prm"
    """run name: the run directory is runs_dir/name"""
    seed: int = 0
    """seeds the simulated marks, the initial head, the data order"""
    runs_dir: str = "runs"
    """folder that holds the run directories"""
    threads: int = 0
    """torch CPU threads (0 keeps torch's default)"""
    reward: Literal["process", "outcome"] = "process"
    """process: IBT pairs from the step marks; outcome: Bradley-Terry on final answers only"""
    init_from: str = ""
    """a finished `lm` run whose model (and tokenizer) the utility starts from; empty: a fresh
    built-in decoder of size `model` with a BPE trained on the marked text"""
    vocab_size: int = 512
    """BPE vocabulary (fresh model only)"""
    loglik: bool = True
    """U also sees the decoder's running log-likelihood of the prefix, with a learned weight (see
    nn/utility_head.py); false: the hidden-state head alone"""
    freeze_lm: bool = False
    """train the utility's head (and log-likelihood weight) only, on the decoder's fixed features"""
    marks: MarksConfig = field(default_factory=MarksConfig)
    """the marked solutions to learn from"""
    model: ModelConfig = field(default_factory=ModelConfig)
    """the fresh decoder's size (ignored with init_from, which brings its own)"""
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    """the training loop; batch_size counts prompts (each with all its solutions)"""
    eval_batch: int = 64
    """sequences per forward pass when scoring"""

    def __post_init__(self):
        check_fields(self, name="nonempty", runs_dir="nonempty", seed=">=0", threads=">=0",
                     vocab_size=">=1", eval_batch=">=1")


@dataclass(frozen=True)
class EncodedSolution:
    ids: list[int]
    """prompt, completion, EOS"""
    start: int
    """position of the prompt's last token: U there is the empty completion's utility"""
    marks: list[int]
    """position of each mark's last token"""
    progress: list[bool]
    end: int
    """position of the completion's last token"""
    correct: bool


def encode_solution(tokenizer, prompt: str, completion: str, mark_ends=(), kinds=(), correct=False,
                    context: int = 10**9, prefix=None) -> EncodedSolution:
    """Token ids and the token position of every marked prefix. A prefix cut at character e ends
    at the token holding character e - 1 (the state there has read the step, nothing after it
    unless BPE merged across the cut, which the task's ". " separators avoid)."""
    head = prompt_ids(tokenizer, prompt, prefix)
    text = completion or " "
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = (head + enc["input_ids"] + [tokenizer.eos_token_id])[:context]
    token_of_char = np.zeros(len(text), dtype=np.int64)
    for j, (a, b) in enumerate(enc["offset_mapping"]):
        token_of_char[a:b] = j
    last = len(ids) - 1
    positions = [len(head) + int(token_of_char[e - 1]) for e in mark_ends]
    keep = [i for i, p in enumerate(positions) if p < last]  # marks cut off by the context go
    end = min(len(head) + len(enc["input_ids"]) - 1, last)
    return EncodedSolution(ids, min(len(head) - 1, last), [positions[i] for i in keep],
                           [kinds[i] == "progress" for i in keep], end, bool(correct))


def encode_marked(tokenizer, solutions: list[MarkedSolution], context: int) -> list[EncodedSolution]:
    prefix = special_prefix(tokenizer)
    return [encode_solution(tokenizer, s.prompt, s.completion, [m.end for m in s.marks],
                            [m.kind for m in s.marks], s.correct, context, prefix) for s in solutions]


def group_by_prompt(solutions: list[MarkedSolution], encoded: list[EncodedSolution]) -> list[list[EncodedSolution]]:
    groups: dict[str, list] = {}
    for s, e in zip(solutions, encoded):
        groups.setdefault(s.prompt, []).append(e)
    return list(groups.values())


def pad(rows: list[EncodedSolution], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r.ids) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r.ids)] = torch.tensor(r.ids)
        mask[i, :len(r.ids)] = 1
    return ids, mask


def process_pairs(rows: list[EncodedSolution]):
    """(row, earlier, later, progress) of every adjacent pair of marked prefixes."""
    out = [(i, ([r.start] + r.marks)[k], p, prog) for i, r in enumerate(rows)
           for k, (p, prog) in enumerate(zip(r.marks, r.progress))]
    return [torch.tensor(c, dtype=torch.bool if j == 3 else torch.long) for j, c in
            enumerate(zip(*out))] if out else None


def outcome_pairs(groups: list[list[EncodedSolution]]):
    """(better row, worse row) of every right/wrong pair of solutions of one prompt."""
    pairs, offset = [], 0
    for g in groups:
        pairs += [(offset + i, offset + j) for i, a in enumerate(g) for j, b in enumerate(g)
                  if a.correct and not b.correct]
        offset += len(g)
    return pairs


def utility_loss(reward: str, model: PrefixUtility, groups: list[list[EncodedSolution]], pad_id: int):
    rows = [r for g in groups for r in g]
    ids, mask = pad(rows, pad_id)
    utility = model(ids, mask)
    if reward == "process":
        pairs = process_pairs(rows)
        if pairs is None:
            return utility.sum() * 0, {}
        better, worse = prefix_pair_scores(utility, *pairs)
    else:
        pairs = outcome_pairs(groups)
        if not pairs:
            return utility.sum() * 0, {}
        ends = utility[torch.arange(len(rows)), torch.tensor([r.end for r in rows])]
        better, worse = ends[[p[0] for p in pairs]], ends[[p[1] for p in pairs]]
    return bradley_terry_loss(better, worse)


@torch.no_grad()
def utilities(model: PrefixUtility, rows: list[EncodedSolution], pad_id: int, batch: int = 64):
    """Each row's utilities at every position (a list of 1-D tensors)."""
    model.eval()
    out = []
    for s in range(0, len(rows), batch):
        chunk = rows[s:s + batch]
        ids, mask = pad(chunk, pad_id)
        u = model(ids, mask)
        out += [u[i, :len(r.ids)] for i, r in enumerate(chunk)]
    model.train()
    return out


def mark_quality(model, groups: list[list[EncodedSolution]], pad_id: int, batch: int = 64) -> dict:
    """On held-out marked solutions: fraction of step marks whose adjacent prefixes U orders as
    marked; fraction of (right, wrong) answer pairs ordered right by the completion score
    U(end) - U(prompt); and the score's Spearman correlation with answer correctness."""
    from scipy.stats import spearmanr
    rows = [r for g in groups for r in g]
    u = utilities(model, rows, pad_id, batch)
    steps = [float((ui[p] > ui[q]) == prog) for r, ui in zip(rows, u)
             for q, p, prog in zip([r.start] + r.marks, r.marks, r.progress)]
    score = np.asarray([float(ui[r.end] - ui[r.start]) for r, ui in zip(rows, u)])
    correct = np.asarray([r.correct for r in rows], dtype=float)
    pairs = outcome_pairs(groups)
    return {"marks/step_accuracy": float(np.mean(steps)) if steps else float("nan"),
            "marks/answer_pair_accuracy": float(np.mean([score[a] > score[b] for a, b in pairs]))
            if pairs else float("nan"),
            "marks/score_spearman": float(spearmanr(score, correct).statistic) if np.ptp(correct) > 0
            else float("nan")}


def marked_data(cfg: Config) -> tuple[list[MarkedSolution], list[MarkedSolution]]:
    """(training, held-out) marked solutions; the held-out prompts of the `lm` runs never train."""
    m = cfg.marks
    lm_held_out = {e.prompt for e in arithmetic.generate(m.held_out, seed=10_000 + cfg.seed)}
    evaluation = simulated_marks(m.eval_prompts, max(2, m.solutions), stream_seed(cfg.seed, "eval-marks"),
                                 m.error_prob, exclude=lm_held_out)
    if m.path:
        return read_marks(Path(m.path)), evaluation
    exclude = lm_held_out | {s.prompt for s in evaluation}
    train = simulated_marks(m.prompts, m.solutions, stream_seed(cfg.seed, "marks"), m.error_prob,
                            m.miss, m.flip, exclude=exclude)
    return train, evaluation


def build_utility(cfg: Config, run: Run, texts: list[str]):
    """(utility model, tokenizer, context): from the `lm` run in init_from, or fresh."""
    saved = run.dir / "tokenizer"
    if cfg.init_from:
        from protege.systems.lm_irl.evaluate import load_trained
        lm, tokenizer, _ = load_trained(Path(cfg.init_from))
        context = position_limit(lm) or cfg.model.context
    else:
        tokenizer = load_tokenizer(saved) if (saved / "tokenizer.json").exists() \
            else train_bpe(texts, cfg.vocab_size)
        torch.manual_seed(cfg.seed)
        lm = build_model(cfg.model, len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id)
        context = cfg.model.context
    if not (saved / "tokenizer.json").exists():
        save_tokenizer(tokenizer, saved)
    torch.manual_seed(cfg.seed)
    if cfg.freeze_lm:
        lm.requires_grad_(False)  # AdamW skips parameters without gradients
    return PrefixUtility(lm, cfg.loglik), tokenizer, context


def run(cfg: Config, run: Run) -> dict:
    if cfg.freeze_lm and not cfg.init_from:
        raise UserError("freeze_lm=true needs init_from=<a finished `lm` run> (a fresh decoder has no "
                        "features to keep); or set freeze_lm=false to train a fresh one")
    seed_everything(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    train, held_out = marked_data(cfg)
    model, tokenizer, context = build_utility(cfg, run, [s.prompt + "\n" + s.completion for s in train])
    groups = group_by_prompt(train, encode_marked(tokenizer, train, context))
    eval_groups = group_by_prompt(held_out, encode_marked(tokenizer, held_out, context))
    pad_id = tokenizer.pad_token_id
    if run.latest_checkpoint() is None:
        run.log(0, {"data/solutions": len(train), "data/prompts": len(groups),
                    "data/marks": sum(len(s.marks) for s in train),
                    "data/regress_marks": sum(m.kind == "regress" for s in train for m in s.marks),
                    "model/parameters": parameter_count(model)})
    fit(model, lambda m, batch: utility_loss(cfg.reward, m, batch, pad_id), len(groups),
        lambda idx: [groups[i] for i in idx], cfg.trainer, run, cfg.seed,
        on_checkpoint=lambda step: mark_quality(model, eval_groups, pad_id, cfg.eval_batch))
    save_utility(model, run.dir / "utility")
    quality = mark_quality(model, eval_groups, pad_id, cfg.eval_batch)
    return {"reward": cfg.reward, "solutions": len(train), **quality}


# scoring completions with a trained reward run ----------------------------------------------------
def load_reward_run(run_dir: Path):
    """(utility model, tokenizer, context) of a finished `prm` run."""
    from protege.core.runs import read_run_config
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    if not (run_dir / "utility").is_dir():
        raise UserError(f"{run_dir}: no trained utility in {run_dir / 'utility'} (has the run finished?)")
    model = load_utility(run_dir / "utility")
    return model, load_tokenizer(run_dir / "tokenizer"), position_limit(model.lm) or \
        config.get("model", {}).get("context", 160)


def completion_scores(model, tokenizer, context: int, prompts: list[str], completions: list[str],
                      batch: int = 64) -> np.ndarray:
    """U(end) - U(prompt) of each completion: the sum of its step rewards r_t."""
    prefix = special_prefix(tokenizer)
    rows = [encode_solution(tokenizer, p, c, context=context, prefix=prefix) for p, c in zip(prompts, completions)]
    u = utilities(model, rows, tokenizer.pad_token_id, batch)
    return np.asarray([float(ui[r.end] - ui[r.start]) for r, ui in zip(rows, u)])

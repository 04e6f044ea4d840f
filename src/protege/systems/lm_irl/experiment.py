"""`protege run` experiment "lm": fine-tune a language model by MLE or IQLearn, then evaluate it."""

from dataclasses import dataclass, field

import torch

from protege.core.config_help import check_fields
from protege.core.devices import device_problem, resolve_device
from protege.core.errors import UserError
from protege.core.runs import Run, added_config_key
from protege.core.seeds import seed_everything
from protege.data.tokens import collate, encode
from protege.nn.lm import (
    ModelConfig,
    build_model,
    check_source,
    parameter_count,
    save_lm,
)
from protege.nn.moe import is_moe
from protege.nn.tokenizer import (
    check_matches,
    load_tokenizer,
    save_tokenizer,
    train_bpe,
)
from protege.rl.fit import TrainerConfig, distributed, fit
from protege.rl.moe import router_terms
from protege.systems.lm_irl.evaluate import EvalConfig, baselines, evaluate_lm
from protege.systems.lm_irl.objectives import ObjectiveConfig, objective_loss
from protege.systems.lm_irl.online import OnlineMixer
from protege.worlds.text.tasks import TaskConfig, load_task, training_examples

# runs saved before the device setting trained on the CPU: they resume as such
added_config_key("device", "cpu")


@dataclass
class Config:
    name: str = "lm"
    """run name: the run directory is runs_dir/name"""
    seed: int = 0
    """seeds the task split, the tokenizer's data, the initial weights, the data order and sampling"""
    runs_dir: str = "runs"
    """folder that holds the run directories"""
    threads: int = 0
    """torch CPU threads (0 keeps torch's default)"""
    device: str = "cpu"
    """where the model trains and is evaluated: cpu, cuda (or cuda:N), or auto (cuda when torch sees
    a GPU, else cpu). Set trainer.precision=bf16 for a GPU's bfloat16 (auto resolves on the CPU)"""
    vocab_size: int = 512
    """BPE vocabulary trained on the task data (built-in model only)"""
    task: TaskConfig = field(default_factory=TaskConfig)
    """the prompt/completion data: a built-in task or the user's files"""
    model: ModelConfig = field(default_factory=ModelConfig)
    """the language model: the built-in decoder's size, or a local HF model (+ LoRA)"""
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    """the training objective: MLE, offline or online IQLearn"""
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    """the offline training loop: steps, batch, optimiser, schedule, logging, checkpoints"""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """the evaluation on held-out prompts after training"""

    def __post_init__(self):
        check_fields(self, name="nonempty", runs_dir="nonempty", seed=">=0", threads=">=0",
                     vocab_size=">=1")
        problem = device_problem(self.device)
        if problem:
            raise ValueError(problem)


def make_tokenizer(cfg: Config, run: Run, texts: list[str]):
    """The run's saved tokenizer on resume; else the HF model's own, or a BPE trained on the task."""
    saved = run.dir / "tokenizer"
    if (saved / "tokenizer.json").exists():
        return load_tokenizer(saved)
    builtin = cfg.model.source == "builtin"
    tokenizer = train_bpe(texts, cfg.vocab_size) if builtin else load_tokenizer(cfg.model.source)
    if run.is_main:
        save_tokenizer(tokenizer, saved, None if builtin else cfg.model.source)
    return tokenizer


def training_loss(cfg: Config, model, train_model, batch):
    """The objective's (loss, metrics); for a mixture-of-experts model plus its router terms (the
    balancing loss and z-loss over non-padding tokens, whatever the model's output_router_logits)."""
    loss, metrics = objective_loss(cfg.objective, train_model, batch, cfg.model.train_forward == "plain")
    if is_moe(model):
        extra, router_metrics = router_terms(model, cfg.model.moe, batch.attention_mask)
        loss = loss + extra
        metrics = {**metrics, **router_metrics}
    return loss, metrics


def run(cfg: Config, run: Run) -> dict:
    seed_everything(cfg.seed)  # before the task, the tokenizer and the model draw anything
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    check_source(cfg.model)
    data = load_task(cfg.task, cfg.seed)
    train = training_examples(cfg.task, data)
    tokenizer = make_tokenizer(cfg, run, [e.prompt + "\n" + e.completion for e in train])
    encoded, truncated = encode(train, tokenizer, cfg.model.context, cfg.task.overflow)
    # the initial weights depend on the seed alone (not on what loading the task drew), so every
    # process of a data-parallel run, and every run of one seed, starts from the same weights
    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    if device.type == "cuda" and distributed()[1] > 1:
        raise UserError(f"device={cfg.device}: a GPU run is one process here; launch it without "
                        f"torchrun/accelerate (several processes train on the CPU)")
    model = build_model(cfg.model, len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id).to(device)
    check_matches(tokenizer, model)
    mixer = OnlineMixer(cfg, model, tokenizer) if cfg.objective.method == "iqlearn_online" \
        else None

    def make_batch(indices):
        rows = [encoded[i] for i in indices]
        return mixer.mix(rows) if mixer else collate(rows, tokenizer.pad_token_id).to(device)

    if run.latest_checkpoint() is None:
        run.log(0, {"data/train_examples": len(encoded), "data/truncated": truncated,
                    "model/parameters": parameter_count(model)})
    fit(model, lambda m, b: training_loss(cfg, model, m, b), len(encoded), make_batch,
        cfg.trainer, run, cfg.seed)
    rank, _ = distributed()
    summary = {"method": cfg.objective.method, "lam": cfg.objective.lam, "train_examples": len(encoded),
               "truncated": truncated,
               "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"}
    if rank == 0:
        save_lm(model, run.dir / "model", cfg.model.source)
        metrics = evaluate_lm(model, tokenizer, cfg.task.kind, data.eval, cfg.eval, cfg.model.context,
                              cfg.objective.gamma)
        metrics.update(baselines(cfg.task.kind, data.train, data.eval[:cfg.eval.prompts], cfg.seed))
        run.log(cfg.trainer.steps, metrics)
        summary.update(metrics)
    return summary

"""Behavioural cloning of random walks (arXiv:2211.00177): walk, relabel goals in hindsight, and
fit the link scorer with the shared offline loop (`protege.rl.fit.fit`).

This module is also the `nav_bc` experiment: `Config` + `run(config, run) -> summary`.
"""

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from protege.core.runs import Run, atomic_path, write_json_atomic
from protege.nn.link_scorer import LinkScorer, PolicyConfig, bc_loss, candidates
from protege.nn.text_encoders import load_or_encode
from protege.rl.fit import TrainerConfig, fit
from protege.worlds.graphs.store import open_graph
from protege.worlds.graphs.walks import bc_examples, random_walks

POLICY_FILE = "policy.safetensors"
POLICY_META = "policy.json"


@dataclass
class Config:
    """Walk sampling, policy size and trainer settings for one BC run."""
    name: str = "nav-bc"
    seed: int = 0
    graph: str = "data/foldoc"
    """graph folder written by `protege nav build`"""
    encoder: str = "minilm"
    """page-text encoder: minilm | tfidf"""
    walks_per_page: int = 20
    """random walks started from every page that has links"""
    walk_length: int = 20
    """steps per walk (the longest goal distance seen in training)"""
    goals_per_step: int = 2
    """hindsight goals drawn per step taken"""
    dead_end: str = "jump"
    """what a walk does at a page without links: stop | restart | jump"""
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(
        steps=3000, batch_size=256, lr=2e-3, weight_decay=0.0, warmup_steps=100,
        schedule="cosine", log_every=50, checkpoint_every=1000))


def make_examples(graph, cfg: Config):
    deg = graph.out_degree()
    starts = np.repeat(np.flatnonzero(deg > 0), cfg.walks_per_page)
    walks = random_walks(graph, starts, cfg.walk_length, cfg.dead_end, seed=cfg.seed)
    return bc_examples(walks, horizon=cfg.walk_length, goals_per_step=cfg.goals_per_step,
                       seed=cfg.seed + 1)


def run(cfg: Config, run: Run, resume: bool = False, progress=None) -> dict:
    torch.set_num_threads(1)  # the machine is shared; the model is small
    resume = resume or run.latest_checkpoint() is not None  # `protege run --resume` reopens the Run
    graph = open_graph(Path(cfg.graph))
    emb = load_or_encode(graph, cfg.encoder, progress=progress)
    ex = make_examples(graph, cfg)
    model = LinkScorer(emb, cfg.policy)
    offsets, targets = np.asarray(graph.offsets), np.asarray(graph.targets)

    def make_batch(idx: np.ndarray) -> dict:
        cand, seg, starts = candidates(offsets, targets, ex.current[idx])
        return {"cur": torch.from_numpy(ex.current[idx]), "goal": torch.from_numpy(ex.goal[idx]),
                "cand": torch.from_numpy(cand), "seg": torch.from_numpy(seg),
                "starts": torch.from_numpy(starts),
                "action": torch.from_numpy(ex.action[idx].astype(np.int64))}

    metrics = fit(model, bc_loss, len(ex), make_batch, cfg.trainer, run, cfg.seed)
    save_policy(run.dir, model, cfg)
    summary = {"examples": len(ex), "pages": graph.num_nodes, "links": graph.num_edges,
               "encoder": cfg.encoder, **{k: v for k, v in metrics.items() if k.startswith(("nav/", "train/loss"))}}
    return summary


def save_policy(folder: Path, model: LinkScorer, cfg: Config) -> None:
    from safetensors.torch import save_file
    with atomic_path(Path(folder) / POLICY_FILE) as tmp:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
    write_json_atomic(Path(folder) / POLICY_META, {"graph": str(Path(cfg.graph).resolve()),
                                                  "encoder": cfg.encoder, "policy": asdict(cfg.policy)})


def load_policy(folder: Path, graph=None) -> tuple[LinkScorer, object]:
    """A trained policy and its graph (opened from the path it was trained on unless given)."""
    from safetensors.torch import load_file

    from protege.core.errors import UserError
    folder = Path(folder)
    if not (folder / POLICY_META).exists():
        raise UserError(f"{folder}: no {POLICY_META}; train a policy with `protege nav train`")
    meta = json.loads((folder / POLICY_META).read_text())
    graph = graph or open_graph(Path(meta["graph"]), verify=False)
    model = LinkScorer(load_or_encode(graph, meta["encoder"]), PolicyConfig(**meta["policy"]))
    model.load_state_dict(load_file(str(folder / POLICY_FILE)))
    return model.eval(), graph


def run_from_cli(graph: Path, out: Path, encoder: str, steps: int, batch_size: int, lr: float,
                 walks_per_page: int, walk_length: int, dead_end: str, page_vectors: bool,
                 seed: int, resume: bool) -> dict:
    from protege.core.errors import unknown_name
    from protege.nn.text_encoders import ENCODERS
    from protege.worlds.graphs.walks import DEAD_END_POLICIES
    if encoder not in ENCODERS:
        raise unknown_name("encoder", encoder, ENCODERS)
    if dead_end not in DEAD_END_POLICIES:
        raise unknown_name("dead-end policy", dead_end, DEAD_END_POLICIES)
    cfg = Config(name=Path(out).name, seed=seed, graph=str(graph), encoder=encoder,
                 walks_per_page=walks_per_page, walk_length=walk_length, dead_end=dead_end,
                 policy=PolicyConfig(page_vectors=page_vectors))
    cfg.trainer.steps, cfg.trainer.batch_size, cfg.trainer.lr = steps, batch_size, lr
    cfg.trainer.checkpoint_every = min(cfg.trainer.checkpoint_every, steps)
    run_dir = Run(Path(out), asdict(cfg), resume=resume)
    summary = run(cfg, run_dir, resume=resume)
    run_dir.finish(summary)
    return summary

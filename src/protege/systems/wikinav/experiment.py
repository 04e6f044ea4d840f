"""Behavioural cloning of random walks (arXiv:2211.00177): walk, relabel goals in hindsight, and
fit the link scorer with the shared offline loop (`protege.rl.fit.fit`).

This module is the `nav_bc` experiment: `Config` + `run(config, run) -> summary`. `protege nav
train` runs it through `protege.core.registry.start` (the `nav_bc` recipe plus overrides), so the
command and `protege run` share one run directory, one resume decision and one `finish`.
"""

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from protege.core.config_help import check_fields
from protege.core.atomic import atomic_path, write_json_atomic
from protege.core.runs import Run, read_metrics
from protege.core.seeds import seed_everything, stream_seed
from protege.nn.link_scorer import LinkScorer, PolicyConfig, bc_loss, candidates, sample_candidates
from protege.nn.text_encoders import load_or_encode
from protege.rl.fit import TrainerConfig, fit
from protege.worlds.graphs.store import open_graph
from protege.worlds.graphs.walks import DEFAULT_DEAD_END, bc_examples, random_walks

from . import selection

POLICY_FILE = "policy.safetensors"
POLICY_META = "policy.json"
RECIPE = Path(__file__).parent / "recipes" / "nav_bc.yaml"
"""the recipe `protege nav train` runs (the Config defaults)"""


@dataclass
class Config:
    """Walk sampling, policy size and trainer settings for one BC run."""
    name: str = "nav-bc"
    """run name: the run directory is runs/<name> unless a directory is given"""
    seed: int = 0
    """seeds weight initialisation, walks, hindsight goals and the data order (one stream each)"""
    graph: str = "data/foldoc"
    """graph folder written by `protege nav build`"""
    encoder: Literal["minilm", "tfidf"] = "minilm"
    """page-text encoder (protege.nn.text_encoders.ENCODERS)"""
    walks_per_page: int = 20
    """random walks started from every page that has links"""
    walk_length: int = 20
    """steps per walk (the longest goal distance seen in training)"""
    goals_per_step: int = 2
    """hindsight goals drawn per step taken"""
    dead_end: Literal["stop", "restart", "jump"] = DEFAULT_DEAD_END
    """what a walk does at a page without links: jump (the default, as in the published runs) to a
    uniform page, restart from the walk's start, or stop (protege.worlds.graphs.walks.DEFAULT_DEAD_END)"""
    teacher: Literal["walk", "shortest"] = "walk"
    """the link imitated at (current page, goal): the one the random walk took (the paper), or a
    link on a shortest path to the goal (cloning the BFS oracle on the walks' states)"""
    random_goals: float = 0.0
    """with teacher=shortest: the fraction of examples whose goal is replaced by a uniformly drawn
    page (examples whose new goal is unreachable are dropped): far and rarely-linked goals, which
    hindsight goals of random walks seldom are"""
    candidates: int = 32
    """links scored per example besides the imitated one: all of a page's links when it has at most
    this many, else this many drawn uniformly (sampled softmax: a step's cost stops growing with
    out-degree); 0: always all links"""
    held_out: float = 0.0
    """fraction of pages never seen in training (as current page, goal, imitated link or candidate),
    saved as held_out_pages.npy; `protege nav eval --held-out` evaluates on targets among them"""
    val_pairs: int = 100
    """validation pairs per pair kind and k for checkpoint selection (0: keep the last weights)"""
    val_ks: tuple[int, ...] = (2, 4, 6, 8)
    """k of the validation pairs"""
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    """sizes of the link scorer"""
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(
        steps=3000, batch_size=256, lr=2e-3, weight_decay=0.0, warmup_steps=100,
        schedule="cosine", log_every=50, checkpoint_every=200))
    """the offline loop: steps, batch, learning-rate schedule, logging and checkpoint intervals"""
    warmup_frac: float | None = None
    """fraction of trainer.steps spent in linear warm-up, in [0, 1); it sets trainer.warmup_steps to
    round(warmup_frac * steps) so the warm-up scales with the run (None: keep trainer.warmup_steps)"""

    def __post_init__(self):
        check_fields(self, graph="nonempty", walks_per_page=">=1", walk_length=">=1",
                     goals_per_step=">=1", candidates=">=0", held_out="[0,1)", random_goals="[0,1]", val_pairs=">=0",
                     val_ks="nonempty")
        if self.held_out and not self.candidates:
            raise ValueError("held_out needs candidates >= 1 (held-out pages are removed from the "
                             "sampled candidate rows)")
        if self.random_goals and self.teacher != "shortest":
            raise ValueError("random_goals needs teacher=shortest (a walk's link says nothing about "
                             "a goal the walk never reached)")
        if self.warmup_frac is not None:
            check_fields(self, warmup_frac="[0,1)")
            self.trainer.warmup_steps = round(self.warmup_frac * self.trainer.steps)


def make_examples(graph, cfg: Config, held=None):
    """BC examples from random walks with hindsight goals; none that touches a held-out page."""
    deg = graph.out_degree()
    starts = np.repeat(np.flatnonzero(deg > 0), cfg.walks_per_page)
    walks = random_walks(graph, starts, cfg.walk_length, cfg.dead_end,
                         seed=stream_seed(cfg.seed, "nav/walks"))
    ex = bc_examples(walks, horizon=cfg.walk_length, goals_per_step=cfg.goals_per_step,
                     seed=stream_seed(cfg.seed, "nav/goals"))
    if held is None or not held.any():
        return ex
    taken = np.asarray(graph.targets)[np.asarray(graph.offsets)[ex.current] + ex.action]
    keep = ~(held[ex.current] | held[ex.goal] | held[taken])
    return type(ex)(ex.current[keep], ex.goal[keep], ex.action[keep], ex.distance[keep])


def batch_maker(graph, ex, cfg: Config | None = None, held=None):
    """`make_batch(indices)` for `fit`: the examples' current pages with their candidate links (all of
    them, or the imitated one and a sample: `cfg.candidates`), the imitated link first when sampled.
    The sampling stream is a function of the batch's indices, so a resumed run draws the same."""
    offsets, targets = np.asarray(graph.offsets), np.asarray(graph.targets)
    limit = 0 if cfg is None else cfg.candidates
    teacher = "walk" if cfg is None else cfg.teacher
    seed = 0 if cfg is None else stream_seed(cfg.seed, "nav/candidates")
    reverse = selection.reverse_csr(graph) if teacher == "shortest" else None
    random_goals = 0.0 if cfg is None else cfg.random_goals
    goal_pool = np.arange(graph.num_nodes) if held is None else np.flatnonzero(~held)

    def make_batch(idx: np.ndarray) -> dict:
        cur, goal = ex.current[idx], ex.goal[idx]
        rng = np.random.default_rng([seed, len(idx), *idx[:8].tolist()])
        action = ex.action[idx].astype(np.int64)
        if reverse is not None:
            swap = rng.random(len(idx)) < random_goals
            goal = np.where(swap, rng.choice(goal_pool, len(idx)), goal)
            action = selection.shortest_links(offsets, targets, *reverse, cur, goal,
                                              rng.random(len(idx)), np.where(swap, -1, action))
            keep = (action >= 0) & (goal != cur)  # a drawn goal may be unreachable, or the page itself
            if held is not None:  # nor may the teacher's link lead to a held-out page
                keep &= ~held[targets[offsets[cur] + np.maximum(action, 0)]]
            cur, goal, action = cur[keep], goal[keep], action[keep]
        batch = {"cur": torch.from_numpy(cur), "goal": torch.from_numpy(goal)}
        if limit:
            cand, seg, starts, log_weight = sample_candidates(offsets, targets, cur, action, limit, rng)
            action = np.zeros(len(cur), np.int64)
            if held is not None:
                cand, seg, starts, log_weight, action = _drop_pages(held, cand, seg, starts, log_weight)
            batch["log_weight"] = torch.from_numpy(log_weight)
        else:
            cand, seg, starts = candidates(offsets, targets, cur)
        return {**batch, "cand": torch.from_numpy(cand), "seg": torch.from_numpy(seg),
                "starts": torch.from_numpy(starts), "action": torch.from_numpy(action)}
    return make_batch


def _drop_pages(held, cand, seg, starts, log_weight):
    """Sampled candidate rows without held-out pages (the imitated link, first, is never one)."""
    keep = ~held[cand]
    rows = len(starts) - 1
    new_starts = np.zeros(rows + 1, np.int64)
    np.cumsum(np.bincount(seg[keep], minlength=rows), out=new_starts[1:])
    return cand[keep], seg[keep], new_starts, log_weight[keep], np.zeros(rows, np.int64)


def run(cfg: Config, run: Run) -> dict:
    """Train the link scorer; `fit` resumes it when `run.restore()` returns a checkpoint."""
    seed_everything(cfg.seed)  # before the scorer is built: its initial weights come from torch's RNG
    torch.set_num_threads(1)  # the machine is shared; the model is small
    graph = open_graph(Path(cfg.graph))
    emb = load_or_encode(graph, cfg.encoder, show_progress=run.is_main)
    held = selection.held_out_pages(graph.num_nodes, cfg.held_out, cfg.seed)
    if held.any() and run.is_main:
        selection.save_held_out(run.dir, held)
    ex = make_examples(graph, cfg, held)
    model = LinkScorer(emb, cfg.policy)
    keeper = _Keeper(run, graph, cfg, held, model) if cfg.val_pairs else None
    fit(model, bc_loss, len(ex), batch_maker(graph, ex, cfg, held if held.any() else None),
        cfg.trainer, run, cfg.seed, on_checkpoint=keeper)
    chosen = keeper.finish(model) if keeper else {}
    save_policy(run.dir, model, cfg)
    # the last logged training row, not fit's return value: a run resumed after its final checkpoint
    # trains no further step but reports the same numbers
    last = next((row for row in reversed(read_metrics(run.dir)) if "train/loss" in row), {})
    return {"examples": len(ex), "pages": graph.num_nodes, "links": graph.num_edges,
            "held_out_pages": int(held.sum()), "encoder": cfg.encoder, **chosen,
            **{k: v for k, v in last.items() if k.startswith(("nav/bc", "train/loss"))}}


class _Keeper:
    """`on_checkpoint` for `fit`: scores the weights on the validation pairs and keeps the best in
    best.safetensors. The untrained scorer (the baseline's ranking) is scored first as step 0; the
    best so far is re-read from the metrics a resumed run kept, so resuming changes nothing."""

    def __init__(self, run: Run, graph, cfg: Config, held, model):
        self.run, self.path, self.model_ref = run, Path(run.dir) / selection.BEST_FILE, model
        self.val = selection.Validation(graph, cfg.val_pairs, cfg.val_ks, cfg.seed, target_mask=~held)
        logged = [r for r in read_metrics(run.dir) if "nav/val_success" in r] if run.resumed else []
        if not logged or not self.path.exists():
            scores = self.val.score(model)
            run.log(0, scores)
            self._save(model)
            logged = [{"step": 0, **scores}]
        self.best = max(logged, key=lambda r: (r["nav/val_success"], -r["step"]))

    def __call__(self, step: int) -> dict:
        scores = self.val.score(self.model_ref)
        if scores["nav/val_success"] > self.best["nav/val_success"]:
            self._save(self.model_ref)
            self.best = {"step": step, **scores}
        return scores

    def _save(self, model) -> None:
        from safetensors.torch import save_file

        from protege.core.atomic import atomic_path
        self.model_ref = model
        if self.run.is_main:
            with atomic_path(self.path) as tmp:
                save_file({k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}, str(tmp))

    def finish(self, model) -> dict:
        """Load the kept weights into `model`; the summary fields of the choice."""
        from protege.core.runs import load_weights
        model.load_state_dict(load_weights(self.path))
        first = next(r for r in read_metrics(self.run.dir) if "nav/val_success" in r)
        return {"selected_step": self.best["step"], "val_success": round(self.best["nav/val_success"], 4),
                "val_success_baseline": round(first["nav/val_success"], 4)}


def save_policy(folder: Path, model: LinkScorer, cfg: Config) -> None:
    from safetensors.torch import save_file
    with atomic_path(Path(folder) / POLICY_FILE) as tmp:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
    write_json_atomic(Path(folder) / POLICY_META, {"graph": str(Path(cfg.graph).resolve()),
                                                  "encoder": cfg.encoder, "policy": asdict(cfg.policy)})


def load_policy(folder: Path, graph=None) -> tuple[LinkScorer, object]:
    """A trained policy and its graph (opened from the path it was trained on unless given)."""
    from protege.core.errors import UserError
    from protege.core.runs import load_weights
    folder = Path(folder)
    if not (folder / POLICY_META).is_file():
        raise UserError(f"{folder}: no {POLICY_META}; train a policy with `protege nav train`")
    try:
        meta = json.loads((folder / POLICY_META).read_bytes().decode("utf-8"))
        policy_cfg = PolicyConfig(**meta["policy"])
        graph_path, encoder = Path(meta["graph"]), str(meta["encoder"])
    except (ValueError, UnicodeDecodeError, KeyError, TypeError):
        raise UserError(f"{folder / POLICY_META}: not the policy description `protege nav train` "
                        f"writes (file corrupted or edited)") from None
    weights = load_weights(folder / POLICY_FILE)
    graph = graph or open_graph(graph_path, verify=False)
    model = LinkScorer(load_or_encode(graph, encoder), policy_cfg)
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        raise UserError(f"{folder / POLICY_FILE}: does not fit the policy ({str(e)[:150]})") from None
    return model.eval(), graph


def default_checkpoint_every(steps: int) -> int:
    """Checkpoints for `protege nav train`: five per run, at least every 200 steps."""
    return min(200, max(steps // 5, 1))


def cli_overrides(graph: Path, out: Path, encoder: str, steps: int, batch_size: int, lr: float,
                  walks_per_page: int, walk_length: int, dead_end: str, page_vectors: bool,
                  seed: int, checkpoint_every: int | None, warmup_frac: float | None = None,
                  teacher: str = "walk", candidates: int = 32, held_out: float = 0.0,
                  val_pairs: int = 100, random_goals: float = 0.0) -> list[str]:
    """The `nav_bc` recipe overrides equivalent to `protege nav train`'s options."""
    every = default_checkpoint_every(steps) if checkpoint_every is None else checkpoint_every
    return [f"name={_quoted(Path(out).name)}", f"graph={_quoted(str(graph))}", f"encoder={encoder}",
            f"dead_end={dead_end}", f"seed={seed}", f"walks_per_page={walks_per_page}",
            f"walk_length={walk_length}", f"policy.page_vectors={str(page_vectors).lower()}",
            f"trainer.steps={steps}", f"trainer.batch_size={batch_size}",
            f"trainer.lr={lr!r}", f"trainer.checkpoint_every={every}", f"teacher={teacher}",
            f"candidates={candidates}", f"held_out={held_out!r}", f"val_pairs={val_pairs}",
            f"random_goals={random_goals!r}"] + (
                [] if warmup_frac is None else [f"warmup_frac={warmup_frac!r}"])


def _quoted(text: str) -> str:
    """A YAML single-quoted scalar: a path such as `1e3` or `true` stays a string."""
    return "'" + text.replace("'", "''") + "'"


def run_from_cli(graph: Path, out: Path, resume: bool = False, **options) -> dict:
    """`protege nav train`: the `nav_bc` recipe with the command's options, in run directory `out`."""
    from protege.core.registry import start
    _, summary = start(str(RECIPE), cli_overrides(graph, out, **options), resume=resume, run_dir=Path(out))
    return summary

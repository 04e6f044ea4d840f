"""Training and scoring the learned success detector (`nn/success_detector.py`) on judged episodes,
with SuccessVQA's three held-out splits (arXiv:2303.07280):

    unseen levels    every episode of `heldout_levels` (levels/instructions never trained on)
    unseen agents    the episodes of `heldout_agents` on the training levels
    unseen episodes  a random `test_fraction` of the remaining episodes (training levels and agents)
    train            the rest

Labels are the world's verifier (`episode_success`), replaced by people's majority label where a
studio export (`human=`) judged the same episode (same level, seed and actions). The detector sees
the instruction and an episode's last `frames` observations (the end of an episode is where
success shows: BabyAI stops at the step that completes the instruction); never how it ended.

Reported per split: balanced accuracy at p >= 0.5 and ECE (`eval/calibration.py`) with bootstrap
95% intervals over episodes, beside two trivial judges: the training set's majority class, and
"success iff the episode ended before the step limit".
"""

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from protege.core.config_help import check_fields
from protege.core.errors import UserError
from protege.core.runs import Run
from protege.core.seeds import rng_state, seed_everything, set_rng_state, stream_seed
from protege.eval.calibration import (
    balanced_accuracy,
    bootstrap_interval,
    expected_calibration_error,
)
from protege.nn.babyai_policy import tokenize
from protege.nn.success_detector import DetectorConfig, SuccessDetector
from protege.systems.sts import detector_data
from protege.systems.sts.human_labels import episode_key, human_labels

SPLITS = ("unseen_episodes", "unseen_agents", "unseen_levels")


@dataclass
class Config:
    name: str = "sts_detector"
    """run name"""
    seed: int = 0
    """run seed (initialisation, the test split of episodes, batch order)"""
    data: str = "data/sts/judged"
    """a judged-episodes folder (`protege sts detector-data`)"""
    human: str = ""
    """a studio export whose people's majority labels replace the verifier's ("" for none)"""
    continuations: tuple[str, ...] = ()
    """continuations folders (`protege sts run`) whose episodes join the training set, labelled by
    the verifier (mid-episode starts and new instructions, as the suite judges them)"""
    heldout_agents: tuple[str, ...] = ("bot-noise-0.5",)
    """agents whose episodes on training levels form the unseen-agents split"""
    heldout_levels: tuple[str, ...] = ("BabyAI-GoToRedBlueBall-v0", "BabyAI-GoToObjDoor-v0",
                                       "BabyAI-UnlockLocal-v0", "BabyAI-OpenDoorLoc-v0")
    """levels whose episodes form the unseen-levels split"""
    test_fraction: float = 0.15
    """share of the remaining episodes held out as the unseen-episodes split"""
    frames: int = 4
    """the last observations of an episode the detector sees"""
    model: DetectorConfig = field(default_factory=DetectorConfig)
    """detector architecture"""
    steps: int = 3000
    """optimiser steps"""
    batch_size: int = 64
    """episodes per step"""
    lr: float = 1e-3
    """Adam learning rate"""
    checkpoint_every: int = 500
    """steps between checkpoints (and metric rows)"""

    def __post_init__(self):
        if isinstance(self.model, dict):
            self.model = DetectorConfig(**self.model)
        self.heldout_agents, self.heldout_levels = tuple(self.heldout_agents), tuple(self.heldout_levels)
        self.continuations = tuple(self.continuations)
        check_fields(self, test_fraction="[0,1)", frames=">=1", steps=">=1", batch_size=">=1",
                     lr=">0", checkpoint_every=">=1")


def labels_of(data: dict, human: str) -> tuple[np.ndarray, int]:
    """Verifier labels, with people's majority label where a studio export judged the episode;
    (labels, how many came from people)."""
    labels = data["success"].astype(bool).copy()
    if not human:
        return labels, 0
    majority = {key: item.majority for key, item in human_labels(Path(human)).items() if item.majority is not None}
    used = 0
    for i, key in enumerate(episode_keys(data)):
        if key in majority:
            labels[i], used = majority[key], used + 1
    return labels, used


def episode_keys(data: dict) -> list[str]:
    act = np.concatenate([[0], np.cumsum(data["length"])])
    return [episode_key(str(lv), int(s), data["actions"][act[i]:act[i + 1]])
            for i, (lv, s) in enumerate(zip(data["level"], data["seed"]))]


def make_splits(data: dict, cfg: Config) -> dict[str, np.ndarray]:
    """Episode indices of train and the three held-out splits (disjoint)."""
    levels, agents = data["level"].astype(str), data["agent"].astype(str)
    for name, wanted, present in (("heldout_agents", cfg.heldout_agents, agents),
                                  ("heldout_levels", cfg.heldout_levels, levels)):
        missing = sorted(set(wanted) - set(present))
        if missing:
            raise UserError(f"{name}: {missing[0]} has no episodes in {cfg.data} "
                            f"(it holds {', '.join(sorted(set(present)))})")
    unseen_level = np.isin(levels, cfg.heldout_levels)
    unseen_agent = ~unseen_level & np.isin(agents, cfg.heldout_agents)
    rest = np.flatnonzero(~unseen_level & ~unseen_agent)
    rng = np.random.default_rng(stream_seed(cfg.seed, "sts-detector/split"))
    test = rng.random(len(rest)) < cfg.test_fraction
    splits = {"train": rest[~test], "unseen_episodes": rest[test],
              "unseen_agents": np.flatnonzero(unseen_agent), "unseen_levels": np.flatnonzero(unseen_level)}
    if not len(splits["train"]):
        raise UserError(f"{cfg.data}: no episodes left to train on after the held-out levels and agents")
    return splits


def last_frames(data: dict, frames: int) -> dict[str, torch.Tensor]:
    """Every episode's last `frames` observations, left-aligned: images [E, K, 7, 7, 3],
    directions [E, K], lengths [E]; and its instruction tokens."""
    starts = detector_data.obs_starts(data["length"])
    n_obs = data["length"] + 1
    lengths = np.minimum(n_obs, frames)
    first = starts + n_obs - lengths
    E = len(starts)
    images = np.zeros((E, frames, 7, 7, 3), np.uint8)
    directions = np.zeros((E, frames), np.int64)
    for i in range(E):
        images[i, :lengths[i]] = data["images"][first[i]:first[i] + lengths[i]]
        directions[i, :lengths[i]] = data["directions"][first[i]:first[i] + lengths[i]]
    return {"images": torch.from_numpy(images), "directions": torch.from_numpy(directions),
            "lengths": torch.from_numpy(lengths.astype(np.int64)),
            "tokens": tokenize([str(m) for m in data["mission"]])}


def predict(model: SuccessDetector, inputs: dict, rows: np.ndarray, batch: int = 512) -> np.ndarray:
    """Success probabilities of episodes `rows`."""
    model.eval()
    out = []
    with torch.no_grad():
        for at in range(0, len(rows), batch):
            r = torch.from_numpy(rows[at:at + batch])
            logits = model(inputs["images"][r], inputs["directions"][r], inputs["tokens"][r], inputs["lengths"][r])
            out.append(torch.sigmoid(logits).numpy())
    model.train()
    return np.concatenate(out) if out else np.zeros(0)


def scores(probabilities: np.ndarray, labels: np.ndarray, seed: int) -> dict:
    """Balanced accuracy and ECE with bootstrap 95% intervals."""
    predicted = probabilities >= 0.5
    bacc = balanced_accuracy(predicted, labels)
    bacc_ci = bootstrap_interval(balanced_accuracy, predicted, labels, seed=seed)
    ece = expected_calibration_error(probabilities, labels)
    ece_ci = bootstrap_interval(expected_calibration_error, probabilities, labels, seed=seed)
    return {"balanced_accuracy": bacc, "balanced_accuracy_ci": list(bacc_ci), "ece": ece, "ece_ci": list(ece_ci),
            "episodes": len(labels), "successes": int(labels.sum())}


def baselines(data: dict, labels: np.ndarray, train: np.ndarray, rows: np.ndarray) -> dict:
    """Balanced accuracy of the trivial judges on `rows`."""
    majority = bool(labels[train].mean() >= 0.5)
    ended_early = data["length"][rows] < data["max_steps"][rows]
    return {"majority_class": balanced_accuracy(np.full(len(rows), majority), labels[rows]),
            "ended_before_limit": balanced_accuracy(ended_early, labels[rows])}


def train_step(model, optimizer, inputs: dict, labels: torch.Tensor, rows: torch.Tensor) -> float:
    logits = model(inputs["images"][rows], inputs["directions"][rows], inputs["tokens"][rows], inputs["lengths"][rows])
    loss = F.binary_cross_entropy_with_logits(logits, labels[rows])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def run(config: Config, run: Run) -> dict:
    """Train (or resume) the detector and score it on the three held-out splits."""
    from protege.core.progress import progress_bar
    seed_everything(config.seed)
    data = detector_data.load(Path(config.data))
    labels, from_people = labels_of(data, config.human)
    splits = make_splits(data, config)
    if config.continuations:
        data, labels, splits = with_continuations(data, labels, splits, config.continuations)
    inputs = last_frames(data, config.frames)
    model = SuccessDetector(config.model)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    order = torch.Generator().manual_seed(stream_seed(config.seed, "sts-detector/batches"))
    step = 0
    restored = run.restore()
    if restored is not None:
        weights, state = restored
        model.load_state_dict(weights)
        optimizer.load_state_dict(state["optimizer"])
        order.set_state(state["order"])
        set_rng_state(state["rng"])
        step = state["step"]
    target = torch.from_numpy(labels.astype(np.float32))
    train = torch.from_numpy(splits["train"])
    losses = []
    with progress_bar() as bar:
        task = bar.add_task("success detector", total=config.steps, completed=step)
        while step < config.steps:
            rows = train[torch.randint(len(train), (config.batch_size,), generator=order)]
            losses.append(train_step(model, optimizer, inputs, target, rows))
            step += 1
            bar.advance(task)
            if step % config.checkpoint_every == 0 or step == config.steps:
                run.log(step, {"train/loss": float(np.mean(losses)), **_held_out_metrics(model, inputs, labels, splits)})
                losses = []
                run.save_checkpoint(step, model.state_dict(), {
                    "optimizer": optimizer.state_dict(), "order": order.get_state(), "rng": rng_state()})
    summary = {"labels_from_people": from_people, "train_episodes": len(splits["train"])}
    for split in SPLITS:
        rows = splits[split]
        p = predict(model, inputs, rows)
        summary[split] = {**scores(p, labels[rows], config.seed), **baselines(data, labels, splits["train"], rows)}
    return summary


def continuation_arrays(folders: tuple[str, ...]) -> dict:
    """The episodes of continuations folders in the arrays of episodes.npz (agent = the
    continuation's agent, max_steps = its budget)."""
    from protege.systems.sts.formats import continuation_episode, read_continuations
    parts = []
    for folder in folders:
        for row in read_continuations(Path(folder))[1]:
            e = continuation_episode(row)
            played = {"images": e.observations["image"], "directions": e.observations["direction"],
                      "actions": e.actions, "rewards": e.rewards, "terminated": e.terminated,
                      "truncated": e.truncated, "mission": e.instruction, "seed": e.seed}
            parts.append(detector_data.pack([played], row["level"], f"{row['agent']}@{folder}", int(row["budget"])))
    return detector_data.concat(parts)


def with_continuations(data: dict, labels: np.ndarray, splits: dict, folders: tuple[str, ...]):
    """`data` with the continuations' episodes appended to it and to the training split."""
    extra = continuation_arrays(folders)
    start = len(data["length"])
    merged = detector_data.concat([data, {k: extra[k].astype(data[k].dtype) if data[k].dtype.kind != "U" else extra[k]
                                          for k in data}])
    train = np.concatenate([splits["train"], np.arange(start, start + len(extra["length"]))])
    return merged, np.concatenate([labels, extra["success"].astype(bool)]), {**splits, "train": train}


def _held_out_metrics(model, inputs, labels, splits) -> dict:
    out = {}
    for split in SPLITS:
        p = predict(model, inputs, splits[split])
        out[f"{split}/balanced_accuracy"] = balanced_accuracy(p >= 0.5, labels[splits[split]])
        out[f"{split}/ece"] = expected_calibration_error(p, labels[splits[split]])
    return out


def train_command(cfg: Config, out: Path, resume: bool) -> list[dict]:
    """`protege sts detector-train`: one run in `out`; a row per split."""
    make_splits(detector_data.load(Path(cfg.data)), cfg)  # bad data or splits: refused before the run exists
    settings = {**asdict(cfg), "heldout_agents": list(cfg.heldout_agents), "heldout_levels": list(cfg.heldout_levels),
                "continuations": list(cfg.continuations)}
    handle = Run(Path(out), settings, resume=resume)
    try:
        summary = run(cfg, handle)
        handle.finish(summary)
    finally:
        handle.close()
    return [{"split": split, **{k: v for k, v in summary[split].items() if not k.endswith("_ci")}}
            for split in SPLITS]


def load_detector(run_dir: Path) -> tuple[SuccessDetector, Config]:
    """A trained detector (its newest checkpoint) and the config it was trained with."""
    from protege.core.runs import load_weights, read_run_config
    run_dir = Path(run_dir)
    settings = read_run_config(run_dir)
    if isinstance(settings.get("model"), dict):  # runs from before the place embedding had none
        settings["model"].setdefault("positions", False)
    cfg = Config(**settings)
    pointer = run_dir / "checkpoints" / "latest"
    if not pointer.exists():
        raise UserError(f"--detector {run_dir}: no checkpoint (train one with `protege sts detector-train`)")
    model = SuccessDetector(cfg.model)
    model.load_state_dict(load_weights(run_dir / "checkpoints" / pointer.read_text().strip() / "model.safetensors"))
    return model.eval(), cfg


def report(runs: list[Path]) -> list[dict]:
    """`protege sts detector-report`: per held-out split, the detector's balanced accuracy and ECE
    over finished runs (mean and Student-t 95% interval over seeds; one run: its bootstrap interval
    over episodes) beside the trivial judges' balanced accuracy."""
    import json

    from protege.eval.stats import mean_interval
    if not runs:
        raise UserError("name at least one finished detector run")
    summaries = []
    for run_dir in runs:
        path = Path(run_dir) / "summary.json"
        if not path.is_file():
            raise UserError(f"{run_dir}: no summary.json (not a finished `protege sts detector-train` run)")
        summaries.append(json.loads(path.read_text()))
    rows = []
    for split in SPLITS:
        per_run = [s[split] for s in summaries]
        row = {"split": split, "runs": len(per_run), "episodes": per_run[0]["episodes"],
               "success_rate": per_run[0]["successes"] / max(per_run[0]["episodes"], 1)}
        for metric in ("balanced_accuracy", "ece"):
            mean, low, high = mean_interval([r[metric] for r in per_run])
            if len(per_run) == 1:
                low, high = per_run[0][f"{metric}_ci"]
            row[metric] = f"{mean:.3f} [{low:.3f}, {high:.3f}]"
        for trivial in ("majority_class", "ended_before_limit"):
            row[trivial] = round(float(np.mean([r[trivial] for r in per_run])), 3)
        rows.append(row)
    return rows


def evaluate(run_dir: Path, data_dir: Path, seed: int = 0) -> list[dict]:
    """`protege sts detector-eval`: a trained detector on every episode of another judged-episodes
    folder (e.g. agents it never saw), per agent and in all, beside "ended before the limit"."""
    model, cfg = load_detector(run_dir)
    data = detector_data.load(Path(data_dir))
    labels = data["success"].astype(bool)
    p = predict(model, last_frames(data, cfg.frames), np.arange(len(labels)))
    rows = []
    agents = data["agent"].astype(str)
    for agent in [*dict.fromkeys(agents.tolist()), "all"]:
        rows_of = np.flatnonzero(agents == agent) if agent != "all" else np.arange(len(labels))
        s = scores(p[rows_of], labels[rows_of], seed)
        ended = data["length"][rows_of] < data["max_steps"][rows_of]
        rows.append({"agent": agent, "episodes": s["episodes"], "successes": s["successes"],
                     "balanced_accuracy": round(s["balanced_accuracy"], 4),
                     "balanced_accuracy_ci": "[{:.3f}, {:.3f}]".format(*s["balanced_accuracy_ci"]),
                     "ece": round(s["ece"], 4), "ended_before_limit": round(balanced_accuracy(ended, labels[rows_of]), 4)})
    return rows

import json

import numpy as np
import torch

from protege.core.runs import Run
from protege.nn.link_scorer import (
    LinkScorer,
    PolicyConfig,
    bc_loss,
    candidates,
    segment_log_softmax,
)
from protege.rl.fit import TrainerConfig
from protege.systems.wikinav.pairs import walk_pairs
from protege.systems.wikinav.experiment import Config, load_policy, run
from protege.systems.wikinav.navigate import (
    navigate,
    policy_scorer,
    random_scorer,
    similarity_scorer,
)
from protege.worlds.graphs.builders import build
from protege.worlds.graphs.store import open_graph

WORDS = [f"w{i}" for i in range(400)]


def small_graph(tmp_path, n=200, deg=3, seed=0):
    """A random directed graph whose page texts are random words: text says nothing about links."""
    rng = np.random.default_rng(seed)
    lines = [f"p{u} p{v}" for u in range(n) for v in rng.choice(n, deg, replace=False) if u != v]
    (tmp_path / "e.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "p.jsonl").write_text("\n".join(json.dumps(
        {"id": f"p{i}", "title": f"page {i}", "text": " ".join(rng.choice(WORDS, 30))})
        for i in range(n)) + "\n")
    build("edgelist", tmp_path / "e.txt", tmp_path / "g", texts=tmp_path / "p.jsonl")
    return open_graph(tmp_path / "g")


def test_segment_log_softmax_matches_padded_reference():
    torch.manual_seed(0)
    logits, seg = torch.randn(9), torch.tensor([0, 0, 0, 1, 2, 2, 2, 2, 2])
    got = segment_log_softmax(logits, seg, 3)
    want = torch.cat([torch.log_softmax(logits[:3], 0), torch.log_softmax(logits[3:4], 0),
                      torch.log_softmax(logits[4:], 0)])
    assert torch.allclose(got, want, atol=1e-6)


def test_candidates_are_the_csr_rows(tmp_path):
    g = small_graph(tmp_path, n=30)
    pages = np.array([3, 0, 7])
    cand, seg, starts = candidates(g.offsets, g.targets, pages)
    for row, p in enumerate(pages):
        assert list(cand[starts[row]:starts[row + 1]]) == list(g.neighbors(p))
        assert (seg[starts[row]:starts[row + 1]] == row).all()


def test_bc_training_changes_every_parameter(tmp_path):
    g = small_graph(tmp_path, n=30)
    emb = np.random.default_rng(0).normal(size=(30, 8)).astype(np.float32)
    model = LinkScorer(emb / np.linalg.norm(emb, axis=1, keepdims=True), PolicyConfig(dim=8, hidden=16))
    before = {k: v.clone() for k, v in model.named_parameters()}
    cur = torch.tensor([0, 1, 2, 3])
    cand, seg, starts = candidates(g.offsets, g.targets, cur.numpy())
    goal = torch.tensor([int(g.neighbors(0)[0]), 6, 7, 8])  # one goal one link away: hit term used
    batch = {"cur": cur, "goal": goal, "cand": torch.from_numpy(cand),
             "seg": torch.from_numpy(seg), "starts": torch.from_numpy(starts),
             "action": torch.tensor([0, 1, 0, 2]) % torch.from_numpy(np.diff(starts))}
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(3):
        loss, metrics = bc_loss(model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert "nav/bc_loss" in metrics and "nav/bc_accuracy" in metrics
    for name, p in model.named_parameters():
        assert not torch.equal(p, before[name]), name


def test_policy_beats_random_and_similarity_at_k3(tmp_path):
    torch.manual_seed(0)
    small_graph(tmp_path)  # writes the graph the config reads
    cfg = Config(graph=str(tmp_path / "g"), encoder="tfidf", walks_per_page=20, walk_length=6, val_pairs=0,
                 policy=PolicyConfig(dim=32, hidden=64),
                 trainer=TrainerConfig(steps=200, batch_size=128, lr=1e-2, warmup_steps=20,
                                       log_every=100, checkpoint_every=0))
    summary = run(cfg, Run(tmp_path / "run", {}))
    assert summary["nav/bc_accuracy"] > 0.4
    model, graph = load_policy(tmp_path / "run")
    emb = model.emb.numpy()
    src, tgt = walk_pairs(graph, 3, 300, seed=11)
    rates = {}
    for name, score in {"policy": policy_scorer(model), "similarity": similarity_scorer(emb),
                        "random": random_scorer(0)}.items():
        rates[name] = (navigate(graph, score, src, tgt, budget=6, backtrack=True) >= 0).mean()
    assert rates["policy"] > rates["similarity"] + 0.15, rates
    assert rates["policy"] > rates["random"] + 0.15, rates

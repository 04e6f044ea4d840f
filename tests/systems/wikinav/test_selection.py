"""The policy that starts as its baseline: fixed similarity term, zero correction, sampled candidates,
the shortest-path teacher, held-out pages and checkpoint selection on navigation success."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from protege.core.runs import Run, load_weights, read_metrics
from protege.nn.link_scorer import LinkScorer, PolicyConfig, candidates, sample_candidates
from protege.rl.fit import TrainerConfig
from protege.systems.wikinav.pairs import walk_pairs
from protege.systems.wikinav.experiment import Config, load_policy, make_examples, run
from protege.systems.wikinav.navigate import GOAL_LINK_SCORE, navigate, policy_scorer, similarity_scorer
from protege.systems.wikinav.selection import (
    BEST_FILE,
    load_held_out,
    reverse_csr,
    shortest_links,
)
from tests.systems.wikinav.test_eval import naive_distance, random_graph
from tests.systems.wikinav.test_policy import small_graph


def unit_rows(n, d, seed=0):
    e = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def test_untrained_scorer_navigates_exactly_as_the_similarity_baseline():
    g = random_graph(n=300, deg=3)
    emb = unit_rows(300, 16)
    torch.manual_seed(0)
    model = LinkScorer(emb, PolicyConfig(dim=8, hidden=16)).eval()
    src, tgt = walk_pairs(g, 5, 100, seed=2)
    for backtrack in (False, True):
        ours = navigate(g, policy_scorer(model), src, tgt, 10, backtrack=backtrack)
        base = navigate(g, similarity_scorer(emb), src, tgt, 10, backtrack=backtrack)
        assert (ours == base).all()
    assert not any(n in dict(model.named_parameters()) for n in ("sim_weight", "hit_weight"))


def test_float16_memmap_embeddings_score_as_float32_without_a_copy(tmp_path):
    emb = unit_rows(50, 12)
    mm = np.lib.format.open_memmap(tmp_path / "e.npy", mode="w+", dtype=np.float16, shape=emb.shape)
    mm[:] = emb
    mm.flush()
    torch.manual_seed(0)
    dense = LinkScorer(emb, PolicyConfig(dim=8, hidden=16))
    for p in dense.parameters():  # a correction that is not zero
        torch.nn.init.normal_(p, std=0.3)
    mapped = LinkScorer(np.load(tmp_path / "e.npy", mmap_mode="r"), PolicyConfig(dim=8, hidden=16))
    mapped.load_state_dict(dense.state_dict())
    assert isinstance(mapped.embeddings, np.memmap)
    assert not any(b.numel() >= 50 * 12 for b in mapped.buffers())  # no table copied into the module
    cur, goal = torch.tensor([1, 2, 3]), torch.tensor([4, 4, 9])
    cand, seg = torch.tensor([5, 6, 4, 7, 8, 9, 9]), torch.tensor([0, 0, 0, 1, 1, 2, 2])
    with torch.no_grad():
        assert torch.allclose(dense(cur, goal, cand, seg), mapped(cur, goal, cand, seg), atol=2e-2)


def test_sampled_candidates_keep_the_taken_link_and_estimate_the_full_softmax():
    # page 0 has 200 links, page 1 has 3
    offsets = np.array([0, 200, 203, 203 + 0])
    targets = np.concatenate([np.arange(1, 201), [5, 6, 7]])
    pages, action = np.array([0, 1]), np.array([17, 2])
    rng = np.random.default_rng(0)
    cand, seg, starts, logw = sample_candidates(offsets, targets, pages, action, 10, rng)
    assert list(np.diff(starts)) == [11, 3]
    assert cand[starts[0]] == targets[17] and cand[starts[1]] == 7    # the taken link comes first
    assert sorted(cand[starts[1]:]) == [5, 6, 7] and (logw[starts[1]:] == 0).all()
    assert targets[17] not in cand[1:11] and np.allclose(logw[1:11], np.log(199 / 10))
    logits = np.sin(np.arange(300) * 0.37)                             # any fixed logits per page
    full = np.exp(logits[targets[:200]]).sum() - np.exp(logits[targets[17]])
    draws = [np.exp(logits[c[1:11]] + w[1:11]).sum() for c, _, _, w in
             (sample_candidates(offsets, targets, pages, action, 10, rng) for _ in range(3000))]
    assert abs(np.mean(draws) / full - 1) < 0.02                        # unbiased estimate


def test_shortest_links_step_one_link_closer():
    g = random_graph(n=200, deg=2)
    rev = reverse_csr(g)
    rng = np.random.default_rng(1)
    cur, goal = rng.integers(0, 200, 80), rng.integers(0, 200, 80)
    got = shortest_links(g.offsets, g.targets, *rev, cur, goal, rng.random(80), np.full(80, -7))
    for c, t, a in zip(cur, goal, got):
        d = naive_distance(g, int(c), int(t))
        if d <= 0:
            assert a == -7
        else:
            assert naive_distance(g, int(g.neighbors(c)[a]), int(t)) == d - 1


def _config(tmp_path, **kw):
    return Config(graph=str(tmp_path / "g"), encoder="tfidf", walks_per_page=5, walk_length=6,
                  policy=PolicyConfig(dim=16, hidden=32), val_pairs=15, val_ks=(2, 4), **kw,
                  trainer=TrainerConfig(steps=20, batch_size=64, lr=1e-2, warmup_steps=2,
                                        log_every=10, checkpoint_every=10))


def test_run_keeps_the_checkpoint_with_the_best_validation_success(tmp_path):
    small_graph(tmp_path, n=100)
    summary = run(_config(tmp_path, teacher="shortest", candidates=2), Run(tmp_path / "run", {}))
    rows = [r for r in read_metrics(tmp_path / "run") if "nav/val_success" in r]
    assert [r["step"] for r in rows] == [0, 10, 20]
    best = max(rows, key=lambda r: (r["nav/val_success"], -r["step"]))
    assert summary["selected_step"] == best["step"]
    assert summary["val_success"] >= summary["val_success_baseline"] == round(rows[0]["nav/val_success"], 4)
    model, _ = load_policy(tmp_path / "run")
    kept = load_weights(tmp_path / "run" / BEST_FILE)
    assert all(torch.equal(v, kept[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("page_vectors", [True, False])
def test_held_out_pages_are_never_seen_in_training(tmp_path, page_vectors):
    g = small_graph(tmp_path, n=100)
    cfg = Config(graph=str(tmp_path / "g"), encoder="tfidf", walks_per_page=5, walk_length=6,
                 held_out=0.2, candidates=2, val_pairs=10, val_ks=(2,),
                 policy=PolicyConfig(dim=16, hidden=32, page_vectors=page_vectors),
                 trainer=TrainerConfig(steps=10, batch_size=64, lr=1e-2, log_every=10, checkpoint_every=10))
    run(cfg, Run(tmp_path / "run", {}))
    ids = load_held_out(tmp_path / "run")
    held = np.zeros(100, bool)
    held[ids] = True
    assert 5 < held.sum() < 40
    ex = make_examples(g, cfg, held)
    taken = g.targets[g.offsets[ex.current] + ex.action]
    assert not (held[ex.current] | held[ex.goal] | held[taken]).any()
    model, _ = load_policy(tmp_path / "run")
    if page_vectors:  # nothing was learned for a held-out page; seen pages did move
        assert (model.page.weight[torch.from_numpy(ids)] == 0).all()
        assert (model.page.weight[torch.from_numpy(np.flatnonzero(~held))] != 0).any()
    else:
        assert model.page is None


@pytest.mark.slow
def test_nav_eval_held_out_targets(tmp_path):
    import json

    from tests.systems.wikinav.test_cli import invoke
    small_graph(tmp_path, n=120)
    r = invoke("nav", "train", tmp_path / "g", "--out", tmp_path / "run", "--encoder", "tfidf",
               "--steps", 4, "--batch-size", 16, "--held-out", 0.3, "--val-pairs", 5)
    assert r.exit_code == 0, r.output
    held = load_held_out(tmp_path / "run")
    r = invoke("nav", "eval", tmp_path / "run", "--held-out", "--pairs", 20, "--min-pairs", 1,
               "--k-max", 3, "--out", tmp_path / "e.json")
    assert r.exit_code == 0, r.output
    data = json.loads((tmp_path / "e.json").read_text())
    assert data["held_out"] and data["rows"] and {r["budget_factor"] for r in data["rows"]} == {2.0, 4.0}
    assert len(held) > 10
    r = invoke("nav", "train", tmp_path / "g", "--out", tmp_path / "run2", "--encoder", "tfidf",
               "--steps", 2, "--batch-size", 16, "--val-pairs", 0)
    assert r.exit_code == 0, r.output
    r = invoke("nav", "eval", tmp_path / "run2", "--held-out")
    assert r.exit_code != 0 and "held no pages out" in str(r.exception)


def test_candidate_rows_without_sampling_are_the_csr_rows():
    offsets, targets = np.array([0, 2, 5]), np.array([1, 0, 0, 1, 1])
    cand, seg, starts = candidates(offsets, targets, np.array([1, 0]))
    assert list(cand) == [0, 1, 1, 1, 0] and list(starts) == [0, 3, 5]


def test_random_goals_are_relabelled_by_the_shortest_path_teacher(tmp_path):
    from protege.systems.wikinav.experiment import batch_maker
    g = small_graph(tmp_path, n=100)
    cfg = Config(graph=str(tmp_path / "g"), encoder="tfidf", walks_per_page=2, walk_length=4,
                 teacher="shortest", random_goals=1.0, candidates=4)
    ex = make_examples(g, cfg)
    batch = batch_maker(g, ex, cfg)(np.arange(64))
    assert 0 < len(batch["cur"]) <= 64 and (batch["action"] == 0).all()
    first = batch["cand"][batch["starts"][:-1]]                        # the imitated link of each row
    for c, t, n in zip(batch["cur"].tolist(), batch["goal"].tolist(), first.tolist()):
        assert naive_distance(g, n, t) == naive_distance(g, c, t) - 1 >= 0
    with pytest.raises(ValueError, match="teacher=shortest"):
        Config(random_goals=0.5)


def test_page_table_scores_as_the_model():
    emb = unit_rows(40, 12)
    torch.manual_seed(0)
    model = LinkScorer(emb, PolicyConfig(dim=8, hidden=16))
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.3)
    cur, goal = np.array([1, 2]), np.array([5, 9])
    cand, seg = np.array([5, 6, 7, 9, 3]), np.array([0, 0, 0, 1, 1])
    with torch.no_grad():
        want = model(*(torch.from_numpy(a) for a in (cur, goal, cand, seg))).numpy()
    got = policy_scorer(model)(cur, goal, cand, seg)
    to_goal = cand == goal[seg]
    assert np.allclose(got[~to_goal], want[~to_goal], atol=1e-5)
    # a link to the target is always taken, whatever the learned correction says of the others
    assert (got[to_goal] == GOAL_LINK_SCORE).all() and to_goal.sum() == 2
    model.correction = lambda cur, goal, cand, seg, table=None: torch.where(cand == 1, 1e6, 0.0)  # outbids all
    graph = SimpleNamespace(offsets=np.array([0, 2] + [2] * 39), targets=np.array([1, 2]), num_nodes=40)
    assert navigate(graph, policy_scorer(model), np.array([0]), np.array([2]), 1).tolist() == [1]

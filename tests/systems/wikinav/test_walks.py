import numpy as np
import pytest

from protege.core.errors import UserError
from protege.worlds.graphs.store import Graph, csr_from_edges
from protege.worlds.graphs.walks import NO_ACTION, bc_examples, random_walks


def chain_with_dead_end():
    # 0 -> 1 -> 2 (dead end); 0 -> 3 -> 0; 1 -> 3
    src, dst = np.array([0, 0, 1, 1, 3]), np.array([1, 3, 2, 3, 0])
    return Graph(*csr_from_edges(src, dst, 4))


def random_graph(n=300, deg=4, seed=0):
    rng = np.random.default_rng(seed)
    src = np.repeat(np.arange(n), deg)
    dst = rng.integers(0, n, len(src))
    keep = src != dst
    return Graph(*csr_from_edges(src[keep], dst[keep], n))


def assert_follow_edges(g, walks):
    for w in range(len(walks.nodes)):
        for t in range(walks.actions.shape[1]):
            a = walks.actions[w, t]
            if a >= 0:
                assert walks.nodes[w, t + 1] == g.neighbors(walks.nodes[w, t])[a]


def test_walks_follow_existing_edges_and_are_reproducible():
    g = random_graph()
    starts = np.arange(g.num_nodes).repeat(3)
    w1 = random_walks(g, starts, 15, "jump", seed=7, threads=2)
    w2 = random_walks(g, starts, 15, "jump", seed=7, threads=1)
    assert np.array_equal(w1.nodes, w2.nodes) and np.array_equal(w1.actions, w2.actions)
    assert_follow_edges(g, w1)
    assert not np.array_equal(w1.nodes, random_walks(g, starts, 15, "jump", seed=8).nodes)
    # uniform: from a node with 4 distinct links each is taken about a quarter of the time
    hub = int(np.argmax(g.out_degree()))
    w = random_walks(g, np.full(20000, hub), 1, "stop", seed=1)
    freq = np.bincount(w.actions[:, 0], minlength=g.out_degree()[hub]) / 20000
    assert np.allclose(freq, 1 / g.out_degree()[hub], atol=0.02)


@pytest.mark.parametrize("policy", ["stop", "restart", "jump"])
def test_dead_end_policies(policy):
    g = chain_with_dead_end()
    w = random_walks(g, np.zeros(500, np.int32), 6, policy, seed=3)
    assert_follow_edges(g, w)
    for nodes, actions in zip(w.nodes, w.actions):
        for t in range(6):
            if nodes[t] == 2:  # at the dead end no link can be taken
                assert actions[t] == NO_ACTION
                nxt = nodes[t + 1]
                if policy == "stop":
                    assert (nodes[t + 1:] == -1).all() and (actions[t:] == NO_ACTION).all()
                    break
                if policy == "restart":
                    assert nxt == 0
                else:
                    assert 0 <= nxt < 4
    reached = (w.nodes == 2).any(1).mean()
    assert reached > 0.3  # the dead end is actually exercised
    if policy == "jump":
        jumped = [w.nodes[i, t + 1] for i, t in zip(*np.nonzero(w.nodes[:, :-1] == 2))]
        assert len(set(jumped)) == 4  # uniform jump reaches every page, itself included


def walk_triples(w, horizon):
    """(current, goal, distance) -> links taken, over goals reached without a restart/jump."""
    found = {}
    for i in range(len(w.nodes)):
        for t in range(w.actions.shape[1]):
            for d in range(1, horizon + 1):
                if t + d <= w.actions.shape[1] and (w.actions[i, t:t + d] >= 0).all():
                    found.setdefault((w.nodes[i, t], w.nodes[i, t + d], d), set()).add(w.actions[i, t])
    return found


@pytest.mark.parametrize("policy", ["stop", "restart"])
def test_bc_examples_match_walks(policy):
    g = random_graph(n=100) if policy == "stop" else chain_with_dead_end()
    w = random_walks(g, np.arange(g.num_nodes).repeat(100 // g.num_nodes * 5), 12, policy, seed=2)
    ex = bc_examples(w, horizon=5, goals_per_step=3, seed=4)
    assert len(ex) > 300 and ex.distance.min() >= 1 and ex.distance.max() <= 5
    # every example is (page at t, page at t + d, link taken at t) of one walk, with links all the way
    found = walk_triples(w, 5)
    for c, gl, a, d in zip(ex.current, ex.goal, ex.action, ex.distance):
        assert a in found[(c, gl, d)] and c != gl
    if policy == "restart":
        assert not (ex.current == 2).any()  # the dead end offers no link to imitate


def test_unknown_dead_end_policy():
    with pytest.raises(UserError, match="restart"):
        random_walks(chain_with_dead_end(), np.zeros(2, np.int32), 3, "teleport")

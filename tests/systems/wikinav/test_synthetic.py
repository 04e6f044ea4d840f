import numpy as np

from protege.worlds.graphs.store import index_dtype, open_graph
from protege.worlds.graphs.synthetic import build_powerlaw, powerlaw_degrees


def test_powerlaw_graph_has_exact_size_no_self_loops_and_heavy_tail(tmp_path):
    info = build_powerlaw(tmp_path / "g", 5000, 51000, seed=1, chunk_edges=7000)  # many chunks
    g = open_graph(tmp_path / "g")  # manifest verified
    assert (g.num_nodes, g.num_edges, info["edges"]) == (5000, 51000, 51000)
    src = np.repeat(np.arange(g.num_nodes), g.out_degree())
    assert not (src == np.asarray(g.targets)).any()
    assert g.targets.dtype == np.int32 and g.offsets.dtype == np.int64
    deg = g.out_degree()
    assert deg.max() > 20 * np.median(deg)  # heavy tail
    indeg = np.bincount(g.targets, minlength=5000)
    assert indeg.max() > 10 * max(np.median(indeg), 1)


def test_degrees_and_index_dtype():
    d = powerlaw_degrees(10000, 10.18, seed=0)
    assert d.sum() == round(10.18 * 10000) and d.min() >= 0
    assert index_dtype(2**31 - 1) == np.int32 and index_dtype(2**31) == np.int64

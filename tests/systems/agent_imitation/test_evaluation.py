import torch

from protege.nn.babyai_policy import BabyAIPolicy, PolicyConfig
from protege.systems.agent_imitation import evaluate as ev


def test_progress_counts_every_episode_across_workers():
    """The bar's count comes from the worker processes through a queue: it must reach the total,
    and the results must not depend on reporting progress."""
    torch.manual_seed(0)
    cfg = PolicyConfig(dim=16, n_film=1)
    model = BabyAIPolicy(cfg)
    weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    jobs = [(weights, {"dim": 16, "n_film": 1}, "BabyAI-GoToRedBall-v0", seeds, True)
            for seeds in ([10**9, 10**9 + 1, 10**9 + 2], [10**9 + 3, 10**9 + 4])]
    counted = []
    results = ev._run_workers(jobs, counted.append)
    assert sum(counted) == 5 and [r["seed"] for r in results] == list(range(10**9, 10**9 + 5))
    single = [e for job in jobs for e in ev._worker(job, on_episode=None)]
    assert results == single

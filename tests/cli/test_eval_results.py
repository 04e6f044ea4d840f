"""Every `protege eval ...` keeps what it printed: RUN/eval/<name>.json holds the settings and the
results, written atomically beside the run it measured."""

import json

import torch

from protege.cli.main import main
from protege.core.runs import Run


def invoke(*args) -> int:
    try:
        main([str(a) for a in args])
    except SystemExit as e:
        return e.code
    return 0


def test_eval_babyai_writes_results_with_settings(tmp_path, capsys):
    from protege.nn.babyai_policy import BabyAIPolicy, PolicyConfig
    torch.manual_seed(0)
    cfg = {"experiment": "babyai_offline", "name": "r", "level": "BabyAI-GoToRedBall-v0",
           "policy": {"dim": 16, "n_film": 1}}
    run = Run(tmp_path / "run", cfg)
    run.save_checkpoint(1, BabyAIPolicy(PolicyConfig(dim=16, n_film=1)).state_dict(), {})
    run.close()
    assert invoke("eval", "babyai", tmp_path / "run", "--episodes", "4", "--workers", "1") == 0
    saved = list((tmp_path / "run" / "eval").iterdir())
    assert [p.name for p in saved] == ["babyai-BabyAI-GoToRedBall-v0-4ep-greedy-from1000000000.json"]
    record = json.loads(saved[0].read_text())
    assert record["settings"] == {"path": str(tmp_path / "run"), "level": "BabyAI-GoToRedBall-v0",
                                  "episodes": 4, "greedy": True, "seed_start": 10**9}
    assert record["results"]["episodes"] == 4 and 0 <= record["results"]["success"] <= 1
    # another setting is another file: the first result is kept
    assert invoke("eval", "babyai", tmp_path / "run", "--episodes", "2", "--workers", "1",
                  "--seed-start", "5") == 0
    assert len(list((tmp_path / "run" / "eval").iterdir())) == 2


TINY = ["task.train_size=40", "task.eval_size=4", "model.n_layer=1", "model.n_embd=16",
        "model.n_head=2", "vocab_size=300", "trainer.steps=2", "trainer.batch_size=4",
        "trainer.log_every=1", "eval.prompts=2", "eval.sample_prompts=1", "eval.samples=2",
        "eval.max_new_tokens=4"]


def test_eval_lm_writes_results_with_settings(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert invoke("run", "lm_arithmetic_mle", "name=tiny", *TINY) == 0
    run_dir = tmp_path / "runs" / "tiny"
    assert invoke("eval", "lm", run_dir, "--prompts", "2", "--samples", "2", "--sample-prompts", "1",
                  "--seed", "3") == 0
    (path,) = (run_dir / "eval").iterdir()
    record = json.loads(path.read_text())
    assert record["settings"]["seed"] == 3 and record["settings"]["prompts"] == 2
    assert "eval/greedy_score" in record["results"]
    assert str(path) in capsys.readouterr().out.replace("\n", "")


def fake_evaluator(path, level, episodes, workers, greedy, seed_start):
    return [{"run": "fake", "level": level, "episodes": episodes, "greedy": greedy}]


def test_eval_babyai_hands_another_systems_run_to_the_evaluator_it_registered(tmp_path, monkeypatch, capsys):
    from protege.core import registry
    fake = registry.System(name="fake", evaluators={"fake_agent": f"{__name__}:fake_evaluator"})
    monkeypatch.setitem(registry.SYSTEMS, "fake", fake)
    Run(tmp_path / "run", {"experiment": "fake_agent", "name": "r"}).close()
    assert invoke("eval", "babyai", tmp_path / "run", "--level", "BabyAI-GoToRedBall-v0",
                  "--episodes", "3", "--workers", "1") == 0
    out = capsys.readouterr().out
    assert "fake" in out and "BabyAI-GoToRedBall-v0" in out
    assert registry.run_evaluator("babyai_offline") is None

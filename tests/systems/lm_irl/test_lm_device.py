"""The lm experiment's `device` setting. A bad or unavailable device is refused at load in one line;
a batch moves to the model's device whole. On a machine where torch sees a CUDA GPU, a run trains,
evaluates and resumes after SIGKILL to the same weights there (those tests skip elsewhere, so CI,
which has no GPU, runs only the first ones)."""

import pytest
import torch

from protege.core.devices import resolve_device
from protege.core.errors import UserError
from protege.data.tokens import EncodedExample, collate
from protege.systems import resolve, start
from tests.conftest import protege_cmd, straight_and_resumed
from tests.systems.lm_irl.test_lm_learning import TINY, protege, toy_dataset

gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_every_field_of_a_batch_moves_to_the_device():
    batch = collate([EncodedExample([5, 6, 7, 2], 2), EncodedExample([5, 2], 1)], pad_id=0)
    moved = batch.to("meta")  # a device every machine has, so the check runs without a GPU
    assert all(getattr(moved, name).device.type == "meta" for name in batch.__dataclass_fields__)
    assert all(getattr(moved, name).shape == getattr(batch, name).shape for name in batch.__dataclass_fields__)


def test_auto_is_the_gpu_where_there_is_one_else_the_cpu():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu").type == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without a GPU")
def test_a_gpu_asked_for_where_there_is_none_is_refused_at_load_in_one_line(tmp_path):
    with pytest.raises(UserError) as caught:
        start("lm_arithmetic_mle", ["device=cuda", f"runs_dir={tmp_path}"])
    assert "\n" not in str(caught.value)
    assert "device=cuda: torch" in str(caught.value) and "sees no CUDA GPU here" in str(caught.value)
    assert not any(tmp_path.iterdir())  # refused before the run folder is made
    _, cfg, _ = resolve("lm_arithmetic_mle", ["device=auto"])
    assert cfg.device == "auto"


def test_a_bad_device_option_of_the_lm_commands_is_refused_in_one_line(capsys, tmp_path):
    """Refused before any model loads (tmp_path is not a run: loading it would fail otherwise)."""
    for command in (["lm", "sample", tmp_path, "name red", "--device", "tpu"],
                    ["eval", "lm", tmp_path, "--device", "tpu"]):
        code, out = protege(capsys, *command)
        assert code == 2 and "--device: device must be cpu, cuda, cuda:N or auto, got 'tpu'" in out, out
        assert "Traceback" not in out


@gpu
def test_a_gpu_run_learns_the_toy_task_names_the_gpu_and_evaluates_there(tmp_path, capsys):
    data = toy_dataset(tmp_path / "toy.jsonl")
    run_dir, summary = start("lm_arithmetic_iqlearn", TINY + [f"task.path={data}", f"runs_dir={tmp_path}",
                                                               "trainer.steps=150", "objective.lam=0.05",
                                                               "device=cuda", "trainer.precision=bf16"])
    assert summary["device"] == torch.cuda.get_device_name()
    assert summary["eval/greedy_score"] > 0.95
    assert summary["eval/sampled_score"] > 0.5
    code, out = protege(capsys, "eval", "lm", run_dir, "--prompts", "8", "--sample-prompts", "2",
                        "--samples", "2", "--device", "cuda")
    assert code == 0 and "eval/greedy_score" in out, out
    code, out = protege(capsys, "lm", "sample", run_dir, "name red", "--greedy", "--device", "cuda")
    assert code == 0 and "red is colour number 0" in out, out


@gpu
def test_a_gpu_run_resumes_after_sigkill_to_the_same_weights_and_metrics(tmp_path):
    data = toy_dataset(tmp_path / "toy.jsonl")
    args = TINY + [f"task.path={data}", "trainer.steps=40", "trainer.checkpoint_every=4", "trainer.log_every=2",
                   "model.dropout=0.1", "model.train_forward=transformers", "device=cuda"]

    def command(name, *extra):
        return protege_cmd("run", "lm_arithmetic_mle", f"name={name}", *args, *extra)

    straight_and_resumed(command, tmp_path, "step-00000008")

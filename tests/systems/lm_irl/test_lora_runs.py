"""A LoRA run is used like a full run: sample, evaluate, score rewards, and merge into one HF model
whose logits equal base + adapter (a tiny local GPT-2, built here, never downloaded)."""

import json
import shutil

import pytest
import torch
from typer.testing import CliRunner

import protege.systems.lm_irl.cli  # noqa: F401  (registers the commands)
from protege.core.cli import app
from protege.core.errors import UserError
from protege.systems import start
from protege.systems.lm_irl.evaluate import load_trained
from tests.systems.lm_irl.test_hf_models import SMALL, save_local_model


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lora")
    folder = save_local_model(tmp / "hf")
    run_dir, _ = start("lm_arithmetic_mle", SMALL + [f"model.source={folder}", "model.lora_r=4",
                                                     "trainer.lr=0.01", f"runs_dir={tmp}"])
    return run_dir, folder


def test_lora_run_records_its_base_and_adapter(lora_run):
    run_dir, folder = lora_run
    record = json.loads((run_dir / "model" / "protege-base.json").read_text())
    assert record["base"] == str(folder.resolve()) and record["adapter"] == "LoraConfig"
    assert (run_dir / "model" / "adapter_model.safetensors").exists()
    assert not (run_dir / "model" / "config.json").exists()  # the adapter alone, not a full copy


def test_sample_eval_reward_and_merge(lora_run, tmp_path):
    run_dir, folder = lora_run
    runner = CliRunner()
    result = runner.invoke(app, ["lm", "sample", str(run_dir), "3 + 4 =", "--greedy"])
    assert result.exit_code == 0, result.output
    assert "samples from" in result.output
    result = runner.invoke(app, ["eval", "lm", str(run_dir), "--prompts", "3", "--samples", "2",
                                 "--sample-prompts", "2"])
    assert result.exit_code == 0, result.output
    assert "eval/greedy_score" in result.output and "baseline/best_constant" in result.output
    saved = json.loads(next((run_dir / "eval").glob("lm-3p-*.json")).read_text())["results"]
    assert {"baseline/empty", "baseline/most_common", "baseline/retrieval_tfidf"} <= set(saved)
    data = tmp_path / "data.jsonl"
    data.write_text('{"prompt": "Tom has 3 apples.", "completion": "3"}\n'
                    '{"prompt": "Ann has 2 pears.", "completion": "5"}\n')
    result = runner.invoke(app, ["lm", "reward", str(run_dir), "--data", str(data)])
    assert result.exit_code == 0, result.output
    assert "mean reward" in result.output

    out = tmp_path / "merged"
    result = runner.invoke(app, ["lm", "merge", str(run_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    from transformers import AutoModelForCausalLM
    merged = AutoModelForCausalLM.from_pretrained(str(out), local_files_only=True)
    adapted, tokenizer, _ = load_trained(run_dir)
    base = AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True)
    ids = torch.tensor([tokenizer("Tom has 3 apples.\n3")["input_ids"]])
    with torch.no_grad():
        want, got, plain = (m.eval()(input_ids=ids).logits for m in (adapted, merged, base))
    assert not torch.allclose(want, plain, atol=1e-4)  # the adapter learned something
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    # merging again into its own earlier output is fine; into a foreign folder it is refused
    assert runner.invoke(app, ["lm", "merge", str(run_dir), "--out", str(out)]).exit_code == 0
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    result = runner.invoke(app, ["lm", "merge", str(run_dir), "--out", str(foreign)])
    assert result.exit_code != 0 and "already exists" in str(result.exception)
    assert (foreign / "notes.txt").read_text() == "mine"


def test_missing_or_changed_base_is_named(lora_run, tmp_path):
    run_dir, _ = lora_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    record_path = copy / "model" / "protege-base.json"
    record = json.loads(record_path.read_text())
    record_path.write_text(json.dumps({**record, "base": str(tmp_path / "gone")}))
    with pytest.raises(UserError, match="base model .* is missing"):
        load_trained(copy)
    record_path.write_text(json.dumps({**record, "config_sha256": "0" * 64}))
    with pytest.raises(UserError, match="changed since training"):
        load_trained(copy)


def test_unfinished_run_says_so(lora_run, tmp_path):
    run_dir, _ = lora_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    shutil.rmtree(copy / "model")
    with pytest.raises(UserError, match="the run finished, so the folder was moved or removed"):
        load_trained(copy)
    (copy / "summary.json").unlink()
    with pytest.raises(UserError, match="has not finished"):
        load_trained(copy)


def test_runs_print_no_library_warnings(tmp_path, capfd):
    """Missing attention mask, deprecated torch_dtype, peft's fan_in_fan_out on GPT-2's Conv1D and its
    is_gradient_checkpointing: none of them is printed by a built-in run, a full HF run, a LoRA run."""
    import functools
    import logging
    import warnings

    from transformers.utils import logging as hf_logging
    for name in ("warning_once", "info_once"):  # cached per process: another test may have hit them
        cached = getattr(hf_logging, name, None) or getattr(hf_logging.logging.Logger, name, None)
        if isinstance(cached, functools._lru_cache_wrapper):
            cached.cache_clear()
    logged = []  # transformers' own handler holds whatever stderr was when it was made: record here
    handler = logging.Handler()
    handler.emit = lambda record: logged.append(record.getMessage() + "\n")
    logging.getLogger("transformers").addHandler(handler)
    folder = save_local_model(tmp_path / "hf")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start("lm_arithmetic_mle", SMALL + [f"runs_dir={tmp_path}", "name=builtin"])
        for lora in (0, 4):
            start("lm_arithmetic_iqlearn", SMALL + [f"model.source={folder}", f"model.lora_r={lora}",
                                                    "objective.method=iqlearn_online", "objective.mixin=0.5",
                                                    f"runs_dir={tmp_path}", f"name=hf{lora}"])
        load_trained(tmp_path / "hf4")
    logging.getLogger("transformers").removeHandler(handler)
    printed = capfd.readouterr().err + "".join(logged) + "".join(f"{w.category.__name__}: {w.message}\n" for w in caught)
    for text in ("attention_mask", "torch_dtype", "fan_in_fan_out", "is_gradient_checkpointing"):
        assert text not in printed, printed

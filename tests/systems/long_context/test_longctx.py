"""`protege longctx` and `protege serve`: a grid evaluated end to end on a tiny local model, its
outputs, refusals before any work, and the HTTP client answering as the in-process model does
against a real server on loopback."""

import json
import socket
import threading
import time
from contextlib import contextmanager

import pytest

from protege.cli.main import main
from protege.core.errors import UserError
from protege.eval.ruler import postprocess_pred, sample_match_all
from tests.worlds.test_haystack import SOURCE, bpe_tokenizer

CONTEXT = 320


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A random GPT-2 of 320 positions saved as a Hugging Face folder with its tokenizer."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.manual_seed(0)
    tokenizer = bpe_tokenizer(False)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=CONTEXT, n_embd=32, n_layer=1, n_head=2,
                        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
                        pad_token_id=tokenizer.pad_token_id)
    folder = tmp_path_factory.mktemp("tiny") / "gpt2"
    GPT2LMHeadModel(config).save_pretrained(str(folder), safe_serialization=True)
    tokenizer.save_pretrained(str(folder))
    return folder


def _fails(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_:
        main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert exit_.value.code == 2, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error:"), err
    return err


def _grid(model, out, *extra):
    return ["longctx", model, "--out", out, "--haystack", SOURCE, "--max-new-tokens", "6", "--lengths", "256",
            "--samples", "2", *extra]


def test_grid_writes_samples_summary_and_heatmaps(tiny_model, tmp_path, capsys):
    out = tmp_path / "recall"
    argv = _grid(tiny_model, out, "--tasks", "needle_single,ruler_vt",
                 "--lengths", "256,300", "--depths", "0,1")
    main([str(a) for a in argv])
    assert "recall of gpt2" in capsys.readouterr().out
    rows = [json.loads(line) for line in (out / "needle_single.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * 2 * 2  # lengths x depths x samples
    assert {(r["length"], r["depth"]) for r in rows} == {(256, 0.0), (256, 1.0), (300, 0.0), (300, 1.0)}
    for r in rows:
        assert r["tokens"] == r["length"] and r["outputs"][0] in r["input"]
        assert r["score"] == sample_match_all(postprocess_pred(r["pred"]), r["outputs"])
    random_depth = [json.loads(line) for line in (out / "ruler_vt.jsonl").read_text().splitlines()]
    assert len(random_depth) == 2 * 2 and all(r["depth"] is None and len(r["outputs"]) == 5 for r in random_depth)
    for task in ("needle_single", "ruler_vt"):
        assert (out / f"{task}.png").read_bytes()[:4] == b"\x89PNG"
    summary = json.loads((out / "summary.json").read_text())
    assert {(r["task"], r["length"]) for r in summary["by_length"]} == {
        (t, n) for t in ("needle_single", "ruler_vt") for n in (256, 300)}
    assert all(0 <= r["ci95_low"] <= r["score"] <= r["ci95_high"] <= 100 for r in summary["cells"])
    main([str(a) for a in argv])  # an earlier output of the same command is replaced
    assert json.loads((out / "summary.json").read_text()) == summary  # and the run is deterministic


def test_a_grid_that_does_not_fit_is_refused_before_any_work(tiny_model, tmp_path, capsys):
    out = tmp_path / "recall"
    err = _fails(_grid(tiny_model, out, "--lengths", f"128,{CONTEXT}"), capsys)
    assert f"{CONTEXT} tokens + 6 new tokens exceed the context of gpt2 ({CONTEXT} tokens)" in err and f"up to {CONTEXT - 6}" in err
    err = _fails(_grid(tiny_model, out, "--lengths", "128", "--context", "100"), capsys)
    assert "(100 tokens)" in err
    assert not out.exists()


@pytest.mark.parametrize("extra, message", [
    (["--tasks", "niah_single_9"], "unknown task 'niah_single_9'"),
    (["--depths", "0.5,1.5"], "1.5 is outside [0, 1]"),
    (["--lengths", "64,abc"], "--lengths '64,abc': expected comma-separated int"),
    (["--haystack", "/no/such/text"], "not one of foldoc, jargon, licenses"),
    (["--samples", "0"], "samples must be >= 1"),
    (["--tokenizer", "x"], "apply to http(s) models only"),
])
def test_bad_input_is_one_line(tiny_model, tmp_path, capsys, extra, message):
    assert message in _fails(_grid(tiny_model, tmp_path / "o", *extra), capsys)


def test_bad_model_and_host_are_one_line(tmp_path, capsys):
    assert "neither a run directory" in _fails(_grid(tmp_path / "missing", tmp_path / "o"), capsys)
    assert "needs --tokenizer" in _fails(_grid("http://127.0.0.1:9/v1", tmp_path / "o"), capsys)
    assert "loopback only" in _fails(["serve", tmp_path, "--host", "0.0.0.0"], capsys)


@contextmanager
def served(folder):
    """`protege serve`'s app for `folder` under uvicorn in a thread, on a free loopback port."""
    import uvicorn

    from protege.systems.long_context.models import load_local
    from protege.systems.long_context.serve import create_app
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(load_local(folder)), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def test_http_client_answers_as_the_in_process_model(tiny_model):
    from protege.systems.long_context.evaluate import GridConfig, evaluate
    from protege.systems.long_context.models import load_local, load_model
    cfg = GridConfig(["needle_single", "niah_multikey_2"], [192, 256], [0.0, 0.5], samples=2,
                     haystack=SOURCE, max_new_tokens=12, batch_size=3)
    local = evaluate(load_local(tiny_model), cfg)
    with served(tiny_model) as url:
        remote_model = load_model(url, tokenizer=tiny_model, timeout=60)
        assert remote_model.context == CONTEXT and remote_model.name == "gpt2"
        remote = evaluate(remote_model, cfg)
        with pytest.raises(UserError, match=r"HTTP 400: prompt 0: \d+ tokens \+ 100 new tokens exceed"):
            remote_model.complete(["word " * 300], 100)
        remote_model.name = "other"
        with pytest.raises(UserError, match="HTTP 404: the model 'other' does not exist"):
            remote_model.complete(["hello"], 2)
    assert [r["pred"] for r in remote] == [r["pred"] for r in local]
    assert any(r["pred"].strip() for r in local)  # the model said something
    assert remote == local


def test_unreachable_server_is_one_line(tiny_model):
    from protege.systems.long_context.models import HTTPModel
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    with pytest.raises(UserError, match="reports no context length"):
        HTTPModel(f"http://127.0.0.1:{port}/v1", bpe_tokenizer(), model="m", timeout=5)
    model = HTTPModel(f"http://127.0.0.1:{port}/v1", bpe_tokenizer(), model="m", context=100, timeout=5)
    with pytest.raises(UserError, match="cannot reach the server"):
        model.complete(["hello"], 2)


@pytest.mark.slow
def test_protege_serve_and_longctx_over_http_as_commands(tiny_model, tmp_path):
    """The two commands as a user runs them: `protege serve` in its own process, `protege longctx`
    against its URL, the same samples as the in-process model's (loopback only, bounded waits)."""
    import subprocess
    import urllib.request

    from tests.conftest import protege_cmd, protege_env
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(protege_cmd("serve", tiny_model, "--port", port), env=protege_env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2).read()
                break
            except OSError:
                assert server.poll() is None, server.stderr.read()
                time.sleep(0.5)
        grid = ["--tasks", "needle_single", "--lengths", "192", "--depths", "0.5", "--samples", "2",
                "--haystack", SOURCE, "--max-new-tokens", "8"]
        remote = subprocess.run(protege_cmd("longctx", f"http://127.0.0.1:{port}/v1", "--out",
                                            tmp_path / "http", "--tokenizer", tiny_model, *grid),
                                env=protege_env(), capture_output=True, text=True, timeout=300)
        assert remote.returncode == 0, remote.stderr
    finally:
        server.terminate()
        server.wait(timeout=30)
    local = subprocess.run(protege_cmd("longctx", tiny_model, "--out", tmp_path / "local", *grid),
                           env=protege_env(), capture_output=True, text=True, timeout=300)
    assert local.returncode == 0, local.stderr
    rows = lambda out: [json.loads(line) for line in (out / "needle_single.jsonl").read_text().splitlines()]
    assert rows(tmp_path / "http") == rows(tmp_path / "local")


def test_an_lm_run_gets_its_prompt_format_and_data_command_writes_a_dataset(tiny_model, tmp_path, capsys):
    """An `lm` run was trained on prompt + newline: its prompts end so, inside the exact length;
    `protege data longctx` writes prompt/completion rows that such a run can be trained on."""
    import shutil

    from protege.data.text import load_text_dataset
    from protege.systems.long_context.evaluate import GridConfig, evaluate
    from protege.systems.long_context.models import load_local
    run = tmp_path / "run"
    shutil.copytree(tiny_model, run / "model")
    shutil.copytree(tiny_model, run / "tokenizer")
    (run / "config.yaml").write_text("experiment: lm\n")
    model = load_local(run)
    assert model.prompt_suffix == "\n" and load_local(tiny_model).prompt_suffix == ""
    rows = evaluate(model, GridConfig(["needle_single"], [200], [0.5], samples=1, haystack=SOURCE,
                                      max_new_tokens=4))
    assert rows[0]["input"].endswith("number is:\n") and rows[0]["tokens"] == 200
    assert len(model.tokenizer(rows[0]["input"])["input_ids"]) == 200
    main(["data", "longctx", str(tmp_path / "data"), "--tokenizer", str(run), "--lengths", "200",
          "--depths", "0,1", "--samples", "3", "--haystack", SOURCE])
    examples = load_text_dataset(tmp_path / "data")
    assert len(examples) == 6 and all(e.completion.endswith(".") for e in examples)
    assert all(e.completion.strip(" .") in e.prompt for e in examples)
    assert "examples" in capsys.readouterr().out


def test_a_run_without_a_text_tokenizer_is_refused_in_one_line(tiny_model, tmp_path, capsys):
    import shutil
    run = tmp_path / "synthetic"
    shutil.copytree(tiny_model, run / "model")
    (run / "config.yaml").write_text("experiment: rope_retrieval\n")
    assert "no tokenizer/ in the run" in _fails(_grid(run, tmp_path / "o"), capsys)


def test_a_task_that_cannot_be_built_is_refused_before_any_generation(tiny_model, monkeypatch):
    from protege.systems.long_context.evaluate import GridConfig, evaluate
    from protege.systems.long_context.models import load_local
    model = load_local(tiny_model)
    monkeypatch.setattr(model, "complete", lambda *a: pytest.fail("generated before refusing"))
    with pytest.raises(UserError, match="the smallest prompt of this task has"):
        evaluate(model, GridConfig(["needle_single", "ruler_cwe"], [200], [0.5], samples=1,
                                   haystack=SOURCE, max_new_tokens=4))

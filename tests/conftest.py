import gzip
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

# Two cores: one thread per test process keeps timings predictable and results deterministic.
torch.set_num_threads(1)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# `auto` precision is fp32 in tests whatever the CPU: exact-equality checks (accumulation, resume,
# two processes) must mean the same on a CPU with native bfloat16 (tests of `auto` itself unset it)
os.environ.setdefault("PROTEGE_AUTO_PRECISION", "fp32")
SRC = str(Path(__file__).resolve().parents[1] / "src")


def protege_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "protege", *map(str, args)]


def protege_env() -> dict:
    return {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}


def kill_after_checkpoint(cmd, run_dir, cwd, at_least: str) -> str:
    """Start `cmd`, SIGKILL it once `run_dir`'s newest checkpoint is `at_least` (e.g. "step-00000020")
    and before it finishes; returns the name of the checkpoint it left."""
    import signal
    import time
    proc = subprocess.Popen(cmd, cwd=cwd, env=protege_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    pointer = Path(run_dir) / "checkpoints" / "latest"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if pointer.exists() and pointer.read_text().strip() >= at_least:
            break
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (Path(run_dir) / "summary.json").exists()
    return pointer.read_text().strip()


def straight_and_resumed(command, cwd, at_least: str) -> tuple[Path, Path]:
    """Run `command(name, *extra)` (a `protege run ...` argv) to its end as "straight", and again as
    "killed": SIGKILLed once its checkpoint `at_least` exists, then resumed with --resume. Asserts
    both finished with equal final weights (bit for bit) and equal metrics rows (wall-clock fields
    aside); returns the two run directories."""
    from protege.core.runs import read_metrics

    def finish(cmd):
        proc = subprocess.run(cmd, cwd=cwd, env=protege_env(), capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr

    straight, killed = Path(cwd) / "runs" / "straight", Path(cwd) / "runs" / "killed"
    finish(command("straight"))
    kill_after_checkpoint(command("killed"), killed, cwd, at_least)
    finish(command("killed", "--resume"))
    a, b = final_weights(straight), final_weights(killed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    strip = lambda d: [{k: v for k, v in r.items() if not k.startswith("time/")}  # noqa: E731
                       for r in read_metrics(d, wall_clock=False)]
    assert strip(straight) == strip(killed)
    return straight, killed


def final_weights(run_dir) -> dict:
    """The weights of a run's newest checkpoint."""
    from safetensors.torch import load_file
    latest = (Path(run_dir) / "checkpoints" / "latest").read_text().strip()
    return load_file(str(Path(run_dir) / "checkpoints" / latest / "model.safetensors"))


@pytest.fixture
def cli(tmp_path):
    """Run the `protege` command in a subprocess from tmp_path; returns (exit code, output)."""
    def invoke(*args, timeout=600):
        proc = subprocess.run(protege_cmd(*args), cwd=tmp_path, capture_output=True, text=True,
                              timeout=timeout, env=protege_env())
        return proc.returncode, proc.stdout + proc.stderr
    return invoke


# dictd fixtures (shared by the FOLDOC task and the graph builders) -------------------------------
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def b64(n: int) -> str:
    out = ""
    while True:
        out = B64[n % 64] + out
        n //= 64
        if n == 0:
            return out


def write_dictd(folder, entries: list[tuple[list[str], str]], name="tiny"):
    """entries: (headwords, body) -> folder/name.index + folder/name.dict.dz (gzip)."""
    data, index = b"", []
    header = b"00-database-short\n     tiny test dictionary\n"
    index.append(("00-database-short", 0, len(header)))
    data += header
    for heads, body in entries:
        raw = body.encode("utf-8")
        for h in heads:
            index.append((h.lower(), len(data), len(raw)))
        data += raw
    (folder / f"{name}.index").write_text(
        "".join(f"{h}\t{b64(o)}\t{b64(n)}\n" for h, o, n in sorted(index)), encoding="utf-8")
    with gzip.open(folder / f"{name}.dict.dz", "wb") as f:
        f.write(data)
    return folder / f"{name}.index"

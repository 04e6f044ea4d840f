"""Benchmark: how the cost of a decoder grows with context length, SDPA against eager attention.

    prefill_s        one forward pass over a prompt of `length` tokens (KV cache on), batch 1
    prefill_tok_s    length / prefill_s
    decode_tok_s     greedy decoding of `--decode` tokens after that prompt, one token per forward
                     pass with the KV cache (prefill excluded)
    peak_mb          CPU: the process's peak resident memory after this length (lengths run in
                     increasing order in a fresh process per attention implementation, so the peak is
                     this length's); GPU: torch.cuda.max_memory_allocated during this length
    base_mb          CPU: resident memory with the model built, before the first prompt

Each length is measured `--repeats` times and the best kept (prefill: fastest, decode: fastest,
peak: largest). Lengths double from 1024 up to `--max-length`, and stop early for an implementation once a prefill
takes longer than `--max-prefill-s` or fails (out of memory): the largest length that fits. The model
is transformers' Llama (rotary positions) at a small size, random weights (speed does not depend on
them), fp32 on CPU; each implementation runs in its own process so their peaks do not mix.

    PYTHONPATH=src .venv/bin/python benchmarks/long_context.py --max-length 8192
The last line printed is one JSON object.
"""

import argparse
import json
import resource
import subprocess
import sys
import time


def build_model(args, max_positions: int, attn: str, device: str):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=args.vocab, hidden_size=args.width, intermediate_size=args.width * 8 // 3,
                         num_hidden_layers=args.layers, num_attention_heads=args.heads,
                         num_key_value_heads=args.heads, max_position_embeddings=max_positions,
                         attn_implementation=attn)
    return LlamaForCausalLM(config).to(device).eval()


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _sync(device: str) -> None:
    import torch
    if device == "cuda":
        torch.cuda.synchronize()


def measure(model, length: int, decode: int, device: str) -> dict:
    """Prefill and decode timings of one prompt of `length` random tokens."""
    import torch
    ids = torch.randint(0, model.config.vocab_size, (1, length), device=device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    with torch.no_grad():
        _sync(device)
        t0 = time.perf_counter()
        out = model(input_ids=ids, use_cache=True)
        _sync(device)
        prefill = time.perf_counter() - t0
        past, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
        t0 = time.perf_counter()
        for _ in range(decode):  # by hand, not generate(): the two phases are timed apart
            out = model(input_ids=token, past_key_values=past, use_cache=True)
            past, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
        _sync(device)
        decode_s = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else _rss_mb()
    return {"length": length, "prefill_s": round(prefill, 4), "prefill_tok_s": round(length / prefill, 1),
            "decode_tok_s": round(decode / decode_s, 2), "peak_mb": round(peak, 1)}


def worker(args) -> None:
    """One attention implementation, lengths in increasing order; one JSON line per length."""
    import torch
    torch.set_num_threads(args.threads)
    lengths = _lengths(args.max_length)
    model = build_model(args, lengths[-1] + args.decode, args.attn, args.device)
    measure(model, 128, 2, args.device)  # warm-up: first-call allocations and kernel selection
    print(json.dumps({"base_mb": round(_rss_mb(), 1)}), flush=True)
    for length in lengths:
        try:
            runs = [measure(model, length, args.decode, args.device) for _ in range(args.repeats)]
            # the best of the repeats, as timeit does: on a shared machine the slow ones measure neighbours
            row = {**runs[0], "prefill_s": min(r["prefill_s"] for r in runs),
                   "prefill_tok_s": max(r["prefill_tok_s"] for r in runs),
                   "decode_tok_s": max(r["decode_tok_s"] for r in runs), "peak_mb": max(r["peak_mb"] for r in runs)}
        except (RuntimeError, MemoryError) as e:  # torch.OutOfMemoryError is a RuntimeError
            print(json.dumps({"length": length, "failed": type(e).__name__}), flush=True)
            return
        print(json.dumps(row), flush=True)
        if row["prefill_s"] > args.max_prefill_s:
            return


def _lengths(max_length: int) -> list[int]:
    lengths, n = [], 1024
    while n <= max_length:
        lengths.append(n)
        n *= 2
    return lengths


def run_implementation(args, attn: str) -> dict:
    cmd = [sys.executable, __file__, "--worker", "--attn", attn] + _shared_flags(args)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    base = next((line["base_mb"] for line in lines if "base_mb" in line), None)
    rows = [line for line in lines if "length" in line]
    if proc.returncode != 0 and not rows:
        rows = [{"failed": proc.stderr.strip().splitlines()[-1][:200] if proc.stderr.strip() else "killed"}]
    return {"attn": attn, "base_mb": base, "rows": rows}


def _shared_flags(args) -> list[str]:
    return ["--max-length", str(args.max_length), "--decode", str(args.decode), "--layers", str(args.layers),
            "--width", str(args.width), "--heads", str(args.heads), "--vocab", str(args.vocab),
            "--device", args.device, "--threads", str(args.threads), "--repeats", str(args.repeats),
            "--max-prefill-s", str(args.max_prefill_s)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max-length", type=int, default=8192)
    parser.add_argument("--decode", type=int, default=32, help="tokens decoded after each prefill")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=1024)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=2, help="measurements per length (best kept)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--max-prefill-s", type=float, default=60.0,
                        help="stop lengthening an implementation after a prefill this slow")
    parser.add_argument("--timeout", type=float, default=1500.0, help="seconds per implementation")
    parser.add_argument("--attn", default="sdpa")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    from protege.core.precision import machine_info
    results = []
    for attn in ("sdpa", "eager"):
        result = run_implementation(args, attn)
        results.append(result)
        for row in result["rows"]:
            print(f"{attn:6s} " + "  ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    model = {"architecture": "LlamaForCausalLM", "layers": args.layers, "width": args.width,
             "heads": args.heads, "vocab": args.vocab, "dtype": "float32"}
    print(json.dumps({"benchmark": "long_context", "device": args.device, "decode_tokens": args.decode,
                      "repeats": args.repeats,
                      "model": model, "results": results, "machine": machine_info("fp32")}))


if __name__ == "__main__":
    main()

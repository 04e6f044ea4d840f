"""Training tokens/s of the mixture-of-experts built-in against a dense model with the same active
parameters, and against transformers' own experts implementations, in one run.

    PYTHONPATH=src .venv/bin/python benchmarks/moe.py [--rounds 5 --steps 10 --warmup 3]
    PYTHONPATH=src .venv/bin/python benchmarks/moe.py --runs RUN_DIR [RUN_DIR ...]

The second form times nothing: it tabulates finished `protege run` directories (dense and MoE on the same
task) - held-out accuracy with 95% Wilson intervals, training NLL at equal steps (equal training compute,
since the active parameters are equal), and the expert load of the MoE runs averaged over the last
quarter of the logged steps.

Variants (same attention, same width, same depth; see protege.nn.lm):
  dense       llama, SwiGLU MLP of width --mlp-hidden
  moe_sorted  mixtral, --experts experts of width mlp_hidden / top_k, top-k routing; the experts run
              through protege.nn.moe.sorted_experts_forward (this project's)
  moe_eager   the same model through transformers' eager experts loop
  moe_grouped the same model through transformers' grouped_mm path
  moe_batched the same model through transformers' batched_mm path (gathers one weight matrix per
              token: very slow on CPU, so it runs only with --with-batched)
Every MoE step includes the router terms of training (balancing loss + z-loss over non-padding tokens).
A step is forward, loss, backward and a fused AdamW update on random token ids (batch x length, 1/8 of
the rows padded to half length). One process, one torch thread; the variants take turns round after
round so a shared machine's slow phases hit them all alike; the first --warmup steps of each variant
are discarded. Reported: median ms/step over all kept steps; per-round ratios to dense with a 95% t
interval over rounds. The last line printed is one JSON object.
"""

import argparse
import json
import statistics
import time

import torch

from protege.core.precision import machine_info
from protege.eval.stats import mean_interval
from protege.nn.lm import ModelConfig, build_model
from protege.nn.moe import MoEConfig, router_terms

VARIANTS = {"dense": None, "moe_sorted": "sorted", "moe_eager": "eager", "moe_grouped": "grouped_mm",
            "moe_batched": "batched_mm"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=10, help="timed steps per variant per round")
    p.add_argument("--warmup", type=int, default=3, help="discarded steps per variant (first round)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--length", type=int, default=96)
    p.add_argument("--vocab", type=int, default=512)
    p.add_argument("--n-layer", type=int, default=4)
    p.add_argument("--n-embd", type=int, default=128)
    p.add_argument("--n-head", type=int, default=4)
    p.add_argument("--mlp-hidden", type=int, default=512)
    p.add_argument("--experts", type=int, default=8)
    p.add_argument("--top-k", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--with-batched", action="store_true", help="also time transformers' batched_mm path")
    p.add_argument("--runs", nargs="+", help="tabulate these finished run directories instead of timing")
    return p.parse_args(argv)


def summarise_runs(run_dirs: list[str]) -> dict:
    """Accuracy, NLL against steps and expert load of finished lm runs (see the module docstring)."""
    from pathlib import Path

    from protege.core.runs import read_metrics, read_run_config
    from protege.eval.stats import wilson_interval
    table = {}
    for folder in map(Path, run_dirs):
        config, summary = read_run_config(folder), json.loads((folder / "summary.json").read_text())
        rows = [r for r in read_metrics(folder, wall_clock=False) if "mle/nll" in r]
        n = int(config["eval"]["prompts"])
        greedy = summary["eval/greedy_score"]
        low, high = wilson_interval(round(greedy * n), n)
        # training NLL at step s: mean over the logged batches in (s - 50, s] (one batch is noisy)
        nll = {s: statistics.mean(r["mle/nll"] for r in rows if s - 50 < r["step"] <= s)
               for s in range(50, int(config["trainer"]["steps"]) + 1, 50)}
        tail = rows[-max(1, len(rows) // 4):]
        load = {k: statistics.mean(r[k] for r in tail) for k in
                ("moe/max_violation", "moe/min_expert_share", "moe/max_expert_share", "moe/aux_loss",
                 "moe/z_loss") if k in tail[-1]}
        model = config["model"]
        table[folder.name] = {
            "arch": model["arch"], "balance": model["moe"]["balance"] if model["arch"] == "mixtral" else "-",
            "steps": config["trainer"]["steps"], "greedy": greedy, "greedy_low": low, "greedy_high": high,
            "sampled": summary["eval/sampled_score"], "nll": nll, **load}
    steps = set.intersection(*(set(t["nll"]) for t in table.values()))
    marks = [s for s in (100, 200, 300, 400, 600) if s in steps]
    print("| run | arch | balance | steps | greedy acc [95%] | sampled acc | "
          + " | ".join(f"NLL@{s}" for s in marks) + " | MaxVio | min share | max share |")
    print("|" + "---|" * (9 + len(marks)))
    for name, t in table.items():
        nlls = " | ".join(f"{t['nll'][s]:.3f}" for s in marks)
        load = (f"{t['moe/max_violation']:.3f} | {t['moe/min_expert_share']:.3f} | {t['moe/max_expert_share']:.3f}"
                if "moe/max_violation" in t else "- | - | -")
        print(f"| {name} | {t['arch']} | {t['balance']} | {t['steps']} | {t['greedy']:.3f} "
              f"[{t['greedy_low']:.3f}, {t['greedy_high']:.3f}] | {t['sampled']:.3f} | {nlls} | {load} |")
    result = {"benchmark": "moe_runs", "runs": table}
    print(json.dumps(result))
    return result


def make_model(args, implementation: str | None):
    torch.manual_seed(0)
    arch = "llama" if implementation is None else "mixtral"
    cfg = ModelConfig(arch=arch, n_layer=args.n_layer, n_embd=args.n_embd, n_head=args.n_head,
                      context=args.length, mlp_hidden=args.mlp_hidden,
                      moe=MoEConfig(experts=args.experts, top_k=args.top_k, implementation=implementation or "sorted"))
    model = build_model(cfg, args.vocab, 0, 1).to(args.device).train()
    return model, cfg


def active_parameters(model, cfg: ModelConfig) -> int:
    """Parameters one token uses: all but the experts it is not routed to."""
    total = sum(p.numel() for p in model.parameters())
    if cfg.arch != "mixtral":
        return total
    experts = sum(p.numel() for n, p in model.named_parameters() if ".experts." in n)
    return total - experts + experts * cfg.moe.top_k // cfg.moe.experts


def make_batch(args, step: int):
    g = torch.Generator().manual_seed(step)
    ids = torch.randint(2, args.vocab, (args.batch, args.length), generator=g)
    mask = torch.ones_like(ids)
    mask[: args.batch // 8, args.length // 2:] = 0
    return ids.to(args.device), mask.to(args.device)


def train_steps(model, cfg, optimizer, args, first_step: int, n: int) -> list[float]:
    times = []
    for step in range(first_step, first_step + n):
        ids, mask = make_batch(args, step)
        if args.device != "cpu":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
        keep = mask[:, 1:].bool()
        loss = torch.nn.functional.cross_entropy(logits[keep], ids[:, 1:][keep])
        if cfg.arch == "mixtral":
            extra, _ = router_terms(model, cfg.moe, mask)
            loss = loss + extra
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if args.device != "cpu":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return times


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.runs:
        return summarise_runs(args.runs)
    torch.set_num_threads(args.threads)
    names = [n for n in VARIANTS if n != "moe_batched" or args.with_batched]
    setups = {}
    for name in names:
        model, cfg = make_model(args, VARIANTS[name])
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
        setups[name] = (model, cfg, optimizer)
        train_steps(model, cfg, optimizer, args, 0, args.warmup)
    per_round = {name: [] for name in names}
    kept = {name: [] for name in names}
    for r in range(args.rounds):
        for name in names:
            model, cfg, optimizer = setups[name]
            times = train_steps(model, cfg, optimizer, args, args.warmup + r * args.steps, args.steps)
            per_round[name].append(statistics.median(times))
            kept[name].extend(times)
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{n} {1e3 * per_round[n][-1]:.1f} ms"
                                                          for n in names), flush=True)
    tokens = args.batch * args.length
    result = {"benchmark": "moe", "machine": machine_info(), "device": args.device, "threads": args.threads,
              "settings": {k: v for k, v in vars(args).items() if k not in ("device", "threads")},
              "variants": {}}
    for name in names:
        model, cfg, _ = setups[name]
        row = {"ms_per_step": 1e3 * statistics.median(kept[name]),
               "tokens_per_s": tokens / statistics.median(kept[name]),
               "parameters": sum(p.numel() for p in model.parameters()),
               "active_parameters": active_parameters(model, cfg)}
        if name != "dense":
            mean, low, high = mean_interval([a / b for a, b in zip(per_round[name], per_round["dense"])])
            row["step_time_vs_dense"] = {"mean": mean, "low": low, "high": high}
        result["variants"][name] = row
        print(f"{name:12s} {row['ms_per_step']:8.1f} ms/step {row['tokens_per_s']:9.0f} tok/s "
              f"params {row['parameters']:>9,d} active {row['active_parameters']:>9,d}"
              + (f"  x{row['step_time_vs_dense']['mean']:.2f} dense" if name != "dense" else ""))
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()

"""What a trained arithmetic policy's decoder knows about step marks (docs/results/ibt_text.md):
logistic probes on its hidden states at the marked step ends against its log-probability of the
written value, and the step log-likelihood's AUC by step; with a reranking's samples file, where
the policy's wrong samples first go wrong. Last line: one JSON object.

    python scripts/ibt_text_probe.py runs/ibt_text/lm-iqlearn-s0 runs/ibt_text/rerank-iqlearn-s0.samples.jsonl
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from protege.systems.lm_irl.evaluate import load_trained  # noqa: E402
from protege.systems.lm_irl.process_reward import encode_marked, pad  # noqa: E402
from protege.worlds.text.step_marks import EQUATION, mark_solution, simulated_marks  # noqa: E402


def first_errors(samples: Path) -> dict:
    """Wrong samples by their first regress step: an arithmetic slip (A op B != C), a misread operand
    (A op B == C but C is wrong), a wrong final statement, or no marked error (e.g. no answer)."""
    from collections import Counter
    counts = Counter()
    rows = [json.loads(line) for line in samples.read_text().splitlines()]
    for row in rows:
        if row["correct"]:
            continue
        kinds = [m.kind for m in mark_solution(row["prompt"], row["completion"]).marks]
        if "regress" not in kinds:
            counts["no_marked_error"] += 1
            continue
        first = kinds.index("regress")
        equations = list(EQUATION.finditer(row["completion"]))
        if first >= len(equations):
            counts["wrong_final_statement"] += 1
            continue
        a, op, b, c = (equations[first].group(i) for i in (1, 2, 3, 4))
        holds = (int(a) + int(b) if op == "+" else int(a) - int(b)) == int(c)
        counts[f"equation{first + 1}_{'misread_operand' if holds else 'slip'}"] += 1
    return {"samples": len(rows), "wrong": sum(counts.values()), **dict(counts)}


@torch.no_grad()
def features(lm, tokenizer, solutions, context: int = 96):
    """Per mark: hidden states (last layer at the step's end and its two previous tokens; all
    layers at the end), the log-probability of the written value, the step's log-likelihood, the
    step index and the mark."""
    rows = encode_marked(tokenizer, solutions, context)
    out = {k: [] for k in ("last", "window", "all", "value_logp", "step_loglik", "step", "progress")}
    for s in range(0, len(rows), 64):
        chunk = rows[s:s + 64]
        ids, mask = pad(chunk, tokenizer.pad_token_id)
        res = lm(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        h = res.hidden_states
        token_logp = torch.log_softmax(res.logits[:, :-1], -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
        running = torch.nn.functional.pad(token_logp.cumsum(-1), (1, 0))
        for i, r in enumerate(chunk):
            for k, (q, p, progress) in enumerate(zip([r.start] + r.marks, r.marks, r.progress)):
                out["last"].append(h[-1][i, p].numpy())
                out["window"].append(torch.cat([h[-1][i, p - 2], h[-1][i, p - 1], h[-1][i, p]]).numpy())
                out["all"].append(torch.cat([layer[i, p] for layer in h]).numpy())
                out["value_logp"].append([float(token_logp[i, p - 2])])  # the value is the token before "."
                out["step_loglik"].append(float(running[i, p] - running[i, q]))
                out["step"].append(k)
                out["progress"].append(progress)
    return {k: np.asarray(v) for k, v in out.items()}


def main():
    run_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/ibt_text/lm-iqlearn-s0")
    torch.set_num_threads(1)
    lm, tokenizer, _ = load_trained(run_dir)
    train = features(lm, tokenizer, simulated_marks(500, 4, seed=5))
    test = features(lm, tokenizer, simulated_marks(150, 4, seed=6))
    y, y_test = train["progress"], test["progress"]
    result = {"run": str(run_dir), "base_rate": float(y_test.mean())}
    for name in ("last", "window", "all", "value_logp"):
        probe = LogisticRegression(max_iter=3000).fit(train[name], y)
        result[f"probe_{name}"] = round(float(probe.score(test[name], y_test)), 3)
        first = test["step"] == 0
        result[f"probe_{name}_first_step"] = round(float(probe.score(test[name][first], y_test[first])), 3)
    for k in range(3):
        at = test["step"] == k
        result[f"step_loglik_auc_step{k + 1}"] = round(float(roc_auc_score(y_test[at], test["step_loglik"][at])), 3)
    if len(sys.argv) > 2:
        result["first_errors"] = first_errors(Path(sys.argv[2]))
    for key, value in result.items():
        print(f"{key}: {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()

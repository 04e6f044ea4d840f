"""Planners: text prompt in, text reply out (`reply(prompt) -> str`).

    rule           a hand-written planner reading the prompt (the reference of what a planner
                   should do with the reports; its transcripts train the built-in decoder)
    <folder>       a local causal LM: a finished `par_planner` run (model/ + tokenizer/, the
                   built-in decoder) or any Hugging Face model folder (config.json + tokenizer)
    http(s)://...  an OpenAI-compatible /completions endpoint (greedy, stop at a newline)

Every non-rule planner goes through `CachedPlanner`: replies are stored by the SHA-256 of
(planner name, prompt) in a JSONL file, so an evaluation replays offline and exactly; with
`offline`, a prompt not in the cache is an error instead of a call.

The rule planner: examine the listed objects in order; on "it is <the task's property>" pick up the
object just examined; on "it is <another property>" rule it out; when every object has been
examined, pick up the first one not ruled out (with no reports: the first object).
"""

import hashlib
import json
from pathlib import Path

import torch

from protege.core.atomic import write_text_atomic
from protege.core.errors import UserError
from protege.core.http import request_json
from protege.worlds.babyai.examine import PROPERTIES


class RulePlanner:
    name = "rule"

    def reply(self, prompt: str) -> str:
        lines = prompt.splitlines()
        task = next((ln for ln in lines if ln.startswith("Task: ")), "")
        objects_line = next((ln for ln in lines if ln.startswith("Objects: ")), "")
        want = next((p for p in PROPERTIES if f" {p} " in f" {task} "), None)
        objects = [o.strip() for o in objects_line[len("Objects: "):].split(",") if o.strip()]
        if want is None or not objects:
            return "I cannot read the task."
        examined, ruled_out, last = [], set(), None
        for line in lines:
            if line.startswith("Planner: examine the "):
                last = line[len("Planner: examine the "):]
                examined.append(last)
            elif line.startswith("Reporter: it is ") and last is not None:
                said = line[len("Reporter: it is "):]
                if said == want:
                    return f"pick up the {last}"
                if said in PROPERTIES:
                    ruled_out.add(last)
        todo = [o for o in objects if o not in examined and o not in ruled_out]
        if todo:
            return f"examine the {todo[0]}"
        left = [o for o in objects if o not in ruled_out] or objects
        return f"pick up the {left[0]}"


class LocalPlanner:
    """A causal LM in this process, greedy, replying with the text up to the first newline."""

    def __init__(self, folder: str | Path, max_new_tokens: int = 16):
        from protege.nn.lm import load_lm
        from protege.nn.tokenizer import load_tokenizer
        path = Path(folder)
        model_dir = path / "model" if (path / "model").is_dir() else path
        tok_dir = path / "tokenizer" if (path / "tokenizer").is_dir() else model_dir
        if not (model_dir / "config.json").is_file():
            raise UserError(f"planner {str(path)!r}: no model (config.json) in {model_dir}; give 'rule', a "
                            f"par_planner run, a Hugging Face model folder or an http(s):// endpoint")
        self.model, self.tokenizer = load_lm(model_dir).eval(), load_tokenizer(tok_dir)
        self.name, self.max_new_tokens = f"local:{path.resolve()}", max_new_tokens

    @torch.no_grad()
    def reply(self, prompt: str) -> str:
        from protege.nn.lm import generate
        ids = torch.tensor([self.tokenizer(prompt)["input_ids"]])
        eos = self.tokenizer.eos_token_id
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else eos
        out = generate(self.model, input_ids=ids, attention_mask=torch.ones_like(ids),
                       max_new_tokens=self.max_new_tokens, do_sample=False, num_beams=1,
                       eos_token_id=eos, pad_token_id=pad)
        text = self.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
        return text.split("\n")[0].strip()


class HTTPPlanner:
    """An OpenAI-compatible server: POST {base}/completions, temperature 0, stop at a newline."""

    def __init__(self, base_url: str, model: str, max_new_tokens: int = 16, timeout: float = 60.0):
        self.base, self.model, self.timeout = base_url.rstrip("/"), model, timeout
        self.max_new_tokens = max_new_tokens
        self.name = f"http:{self.base}#{model}"

    def reply(self, prompt: str) -> str:
        body = {"model": self.model, "prompt": prompt, "max_tokens": self.max_new_tokens,
                "temperature": 0, "stop": ["\n"]}
        url = self.base + "/completions"
        data = request_json(url, "POST", body, self.timeout)
        try:
            return str(data["choices"][0]["text"]).strip()
        except (KeyError, IndexError, TypeError):
            raise UserError(f"{url}: the answer has no choices[0].text (not an OpenAI-compatible "
                            f"completions endpoint?)") from None


def prompt_key(planner_name: str, prompt: str) -> str:
    return hashlib.sha256(f"{planner_name}\n{prompt}".encode()).hexdigest()


class CachedPlanner:
    """Replies by prompt hash from a JSONL cache ({"key", "planner", "prompt", "reply"} per line);
    a miss asks the inner planner (or, offline, is an error) and is written back atomically."""

    def __init__(self, inner, path: str | Path, offline: bool = False, name: str | None = None):
        self.inner, self.path, self.offline = inner, Path(path), offline
        self.name = name or inner.name
        self.entries: dict[str, dict] = {}
        self.hits = self.misses = 0
        if self.path.is_file():
            for i, line in enumerate(self.path.read_text().splitlines(), 1):
                try:
                    entry = json.loads(line)
                    self.entries[entry["key"]] = entry
                except (ValueError, KeyError, TypeError):
                    raise UserError(f"{self.path}, line {i}: not a planner cache entry "
                                    f"(a JSON object with key, planner, prompt, reply)") from None

    def reply(self, prompt: str) -> str:
        key = prompt_key(self.name, prompt)
        if key in self.entries:
            self.hits += 1
            return self.entries[key]["reply"]
        if self.offline or self.inner is None:
            raise UserError(f"{self.path}: no cached reply of {self.name} for prompt {key[:12]} "
                            f"(offline: the planner is not asked)")
        self.misses += 1
        reply = self.inner.reply(prompt)
        self.entries[key] = {"key": key, "planner": self.name, "prompt": prompt, "reply": reply}
        write_text_atomic(self.path, "".join(json.dumps(e) + "\n" for e in self.entries.values()))
        return reply


def planner_name(spec: str, model: str = "") -> str:
    if spec == "rule":
        return "rule"
    if spec.startswith(("http://", "https://")):
        return f"http:{spec.rstrip('/')}#{model}"
    return f"local:{Path(spec).resolve()}"


def make_planner(spec: str, model: str = "", cache: str = "", offline: bool = False):
    """A planner from its spec ('rule', a folder, an http(s):// URL), cached when `cache` is set
    (always for http). With `offline`, only the cache answers (nothing is loaded or called)."""
    if not spec:
        raise UserError("planner: empty; give 'rule', a model folder or an http(s):// endpoint")
    if spec == "rule" and not cache:
        return RulePlanner()
    if spec.startswith(("http://", "https://")):
        if not model:
            raise UserError("planner_model: an http(s) planner needs the served model's name")
        if not cache:
            raise UserError("planner_cache: an http(s) planner needs a cache file (calls are replayed from it)")
    name = planner_name(spec, model)
    if offline:
        if not cache:
            raise UserError("planner_offline needs planner_cache (the replies to replay)")
        return CachedPlanner(None, cache, offline=True, name=name)
    if spec == "rule":
        inner = RulePlanner()
    elif spec.startswith(("http://", "https://")):
        inner = HTTPPlanner(spec, model)
    else:
        inner = LocalPlanner(spec)
    return CachedPlanner(inner, cache, name=name) if cache else inner

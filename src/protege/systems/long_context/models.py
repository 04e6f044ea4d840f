"""The models a recall evaluation asks: a local causal LM (a finished `lm` run or any Hugging Face
folder) in this process, or an OpenAI-compatible `/v1/completions` endpoint over HTTP.

Both answer `complete(prompts, max_new_tokens)` greedily and expose their `tokenizer` (which cuts the
haystacks) and `context` (the most tokens, prompt plus answer, the model attends over). Prompts
never get truncated: a prompt that would not fit is refused before any generation.
"""

import threading
from pathlib import Path

import torch

from protege.core.errors import UserError
from protege.core.http import request_json


class LocalModel:
    """A causal LM in this process, decoding greedily; prompts are encoded with the tokenizer's own
    specials (a BOS where its template adds one), as `haystack.count_tokens` counts them."""

    def __init__(self, model, tokenizer, name: str, prompt_suffix: str = ""):
        from protege.nn.lm import position_limit
        self.model, self.tokenizer, self.name = model.eval(), tokenizer, name
        self.prompt_suffix = prompt_suffix
        """what ends a prompt as the model was trained: an `lm` run's newline (data/tokens.prompt_ids)"""
        self.context = position_limit(model)
        self._lock = threading.Lock()  # one generation at a time when served

    def check_fits(self, prompt_tokens: int, max_new_tokens: int, what: str = "prompt") -> None:
        if self.context is not None and prompt_tokens + max_new_tokens > self.context:
            raise UserError(f"{what}: {prompt_tokens} tokens + {max_new_tokens} new tokens exceed "
                            f"the context of {self.name} ({self.context} tokens); use a length up to "
                            f"{self.context - max_new_tokens}")

    @torch.no_grad()
    def complete(self, prompts: list[str], max_new_tokens: int) -> list[str]:
        """Greedy completions; prompts of equal token length are decoded together (no padding)."""
        from protege.nn.lm import generate
        encoded = [self.tokenizer(p)["input_ids"] for p in prompts]
        for ids in encoded:
            self.check_fits(len(ids), max_new_tokens)
        out: list[str] = [""] * len(prompts)
        groups: dict[int, list[int]] = {}
        for i, ids in enumerate(encoded):
            groups.setdefault(len(ids), []).append(i)
        with self._lock:
            for indices in groups.values():
                ids = torch.tensor([encoded[i] for i in indices])
                eos = self.tokenizer.eos_token_id
                pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else eos
                tokens = generate(self.model, input_ids=ids, attention_mask=torch.ones_like(ids),
                                  max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                                  eos_token_id=eos, pad_token_id=pad)
                texts = self.tokenizer.batch_decode(tokens[:, ids.shape[1]:], skip_special_tokens=True)
                for i, text in zip(indices, texts):
                    out[i] = text
        return out


def load_local(path: str | Path) -> LocalModel:
    """A finished `lm` run (model/ + tokenizer/) or a Hugging Face model folder (config.json and
    its tokenizer beside it)."""
    from protege.core.runs import check_safetensors
    from protege.nn.lm import load_lm
    from protege.nn.tokenizer import load_tokenizer
    path = Path(path)
    if (path / "model").is_dir() or (path / "config.yaml").is_file():
        folder, tokenizer_dir = path / "model", path / "tokenizer"
        if not (folder / "config.json").is_file() and not (folder / "adapter_config.json").is_file():
            why = "resume it with --resume" if not (path / "summary.json").exists() else "it was moved"
            raise UserError(f"{path}: no trained model in {folder} (the run has not finished; {why})")
        if not (tokenizer_dir / "tokenizer.json").is_file() and not (tokenizer_dir / "tokenizer_config.json").is_file():
            raise UserError(f"{path}: no tokenizer/ in the run; recall prompts are text, so a model "
                            f"without a text tokenizer (a synthetic vocabulary) cannot be asked")
    elif (path / "config.json").is_file():
        folder, tokenizer_dir = path, path
    else:
        raise UserError(f"model {str(path)!r}: neither a run directory (model/, tokenizer/), a Hugging "
                        f"Face model folder (config.json) nor an http(s):// endpoint")
    if (folder / "model.safetensors").is_file():
        check_safetensors(folder / "model.safetensors")
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()  # a per-shard bar on stderr for every load, nothing to act on
    try:
        model = load_lm(folder)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"{folder}: cannot load the model ({type(e).__name__}: "
                        f"{str(e).splitlines()[0][:150]})") from None
    finally:
        hf_logging.enable_progress_bar()
    suffix = "\n" if folder != path else ""  # an lm run: trained on prompt + newline, then the answer
    return LocalModel(model, load_tokenizer(tokenizer_dir), path.name, suffix)


class HTTPModel:
    """An OpenAI-compatible server: POST {base}/completions with temperature 0 (greedy). The
    tokenizer that cuts haystacks must be the server model's own (`--tokenizer`); the context comes
    from GET {base}/models (`max_model_len`, as vLLM and `protege serve` report it) or `--context`."""

    def __init__(self, base_url: str, tokenizer, model: str | None = None, context: int | None = None,
                 timeout: float = 300.0):
        self.base, self.tokenizer, self.timeout = base_url.rstrip("/"), tokenizer, timeout
        self.prompt_suffix = ""
        listed = self._models()
        if model is None:
            if not listed:
                raise UserError(f"{self.base}/models lists no model; pass --model-name")
            model = listed[0]["id"]
        entry = next((m for m in listed if m.get("id") == model), {})
        self.name = model
        self.context = context or entry.get("max_model_len")
        if not isinstance(self.context, int):
            raise UserError(f"{self.base}: the server reports no context length (max_model_len) for "
                            f"{model!r}; pass --context")

    check_fits = LocalModel.check_fits

    def _models(self) -> list[dict]:
        try:
            data = self._request("GET", "/models")
        except UserError:
            return []  # servers without /models still serve completions
        return [m for m in data.get("data", []) if isinstance(m, dict)] if isinstance(data, dict) else []

    def complete(self, prompts: list[str], max_new_tokens: int) -> list[str]:
        body = {"model": self.name, "prompt": prompts, "max_tokens": max_new_tokens, "temperature": 0}
        data = self._request("POST", "/completions", body)
        try:
            choices = sorted(data["choices"], key=lambda c: c["index"])
            texts = [c["text"] for c in choices]
        except (KeyError, TypeError):
            raise UserError(f"{self.base}/completions: the answer has no choices[].text "
                            f"(not an OpenAI-compatible completions endpoint?)") from None
        if len(texts) != len(prompts):
            raise UserError(f"{self.base}/completions: {len(texts)} choices for {len(prompts)} prompts")
        return texts

    def _request(self, method: str, path: str, body: dict | None = None):
        return request_json(self.base + path, method, body, self.timeout)



def load_model(spec: str, tokenizer: Path | None = None, model_name: str | None = None,
               context: int | None = None, timeout: float = 300.0):
    """A `LocalModel` for a path, an `HTTPModel` for an http(s):// base URL (e.g. .../v1)."""
    if spec.startswith(("http://", "https://")):
        if tokenizer is None:
            raise UserError("an http(s) model needs --tokenizer: the folder of the served model's own "
                            "tokenizer, which cuts the haystacks to exact token counts")
        from protege.nn.tokenizer import load_tokenizer
        path = Path(tokenizer)
        return HTTPModel(spec, load_tokenizer(path / "tokenizer" if (path / "tokenizer").is_dir() else path),
                         model_name, context, timeout)
    if tokenizer is not None or model_name is not None:
        raise UserError("--tokenizer and --model-name apply to http(s) models only (a local model "
                        "uses its own tokenizer)")
    model = load_local(spec)
    if context:
        model.context = min(context, model.context or context)
    return model

"""`protege serve`: a trained model behind the OpenAI-compatible `/v1/completions` API, on loopback.

Enough of the API for evaluation harnesses: GET /v1/models (with `max_model_len`, as vLLM reports
it) and POST /v1/completions (a prompt or a list of prompts, `max_tokens`, temperature 0 = greedy,
else sampling with `top_p` and an optional `seed`). A prompt that does not fit the model's context
is refused (HTTP 400, code `context_length_exceeded`), never truncated.
"""

import ipaddress
import time
import uuid

import torch
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from protege.core.errors import UserError

LOOPBACK_NAMES = ("localhost",)


class CompletionRequest(BaseModel):
    model: str | None = None
    prompt: str | list[str]
    max_tokens: int = Field(16, ge=1)
    temperature: float = Field(1.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    seed: int | None = None


def _error(status: int, message: str, code: str, param: str | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": {
        "message": message, "type": "invalid_request_error", "param": param, "code": code}})


def create_app(model) -> FastAPI:
    """The API over a `models.LocalModel`."""
    app = FastAPI(title=f"protege serve: {model.name}")

    @app.get("/v1/models")
    def models():
        return {"object": "list", "data": [{"id": model.name, "object": "model", "owned_by": "protege",
                                            "max_model_len": model.context}]}

    @app.post("/v1/completions")
    def completions(request: CompletionRequest):
        if request.model not in (None, model.name):
            return _error(404, f"the model {request.model!r} does not exist; this server has "
                               f"{model.name!r}", "model_not_found", "model")
        prompts = [request.prompt] if isinstance(request.prompt, str) else request.prompt
        if not prompts:
            return _error(400, "prompt: give a string or a non-empty list of strings", "invalid_prompt",
                          "prompt")
        lengths = [len(model.tokenizer(p)["input_ids"]) for p in prompts]
        for i, n in enumerate(lengths):
            try:
                model.check_fits(n, request.max_tokens, what=f"prompt {i}")
            except UserError as e:
                return _error(400, str(e), "context_length_exceeded", "prompt")
        texts = _complete(model, prompts, request)
        return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
                "model": model.name,
                "choices": [{"index": i, "text": t, "logprobs": None, "finish_reason": _finish(model, t, request)}
                            for i, t in enumerate(texts)],
                "usage": _usage(model, lengths, texts)}
    return app


def _complete(model, prompts: list[str], request: CompletionRequest) -> list[str]:
    if request.temperature == 0:
        return model.complete(prompts, request.max_tokens)
    from protege.nn.lm import generate
    out = []
    with model._lock, torch.no_grad():
        if request.seed is not None:
            torch.manual_seed(request.seed)
        for prompt in prompts:
            ids = torch.tensor([model.tokenizer(prompt)["input_ids"]])
            eos = model.tokenizer.eos_token_id
            tokens = generate(model.model, input_ids=ids, attention_mask=torch.ones_like(ids),
                              max_new_tokens=request.max_tokens, do_sample=True,
                              temperature=request.temperature, top_p=request.top_p, eos_token_id=eos,
                              pad_token_id=model.tokenizer.pad_token_id or eos)
            out.append(model.tokenizer.decode(tokens[0, ids.shape[1]:], skip_special_tokens=True))
    return out


def _finish(model, text: str, request: CompletionRequest) -> str:
    n = len(model.tokenizer(text, add_special_tokens=False)["input_ids"])
    return "length" if n >= request.max_tokens else "stop"


def _usage(model, lengths: list[int], texts: list[str]) -> dict:
    completion = sum(len(model.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
    return {"prompt_tokens": sum(lengths), "completion_tokens": completion,
            "total_tokens": sum(lengths) + completion}


def check_loopback(host: str) -> None:
    """The server has no authentication, so it listens on loopback addresses only."""
    try:
        loopback = host in LOOPBACK_NAMES or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise UserError(f"--host {host}: protege serve listens on loopback only (127.0.0.1, ::1, "
                        f"localhost); it has no authentication")


def serve(run: str, host: str = "127.0.0.1", port: int = 8000) -> None:
    import uvicorn

    from protege.systems.long_context.models import load_local
    check_loopback(host)
    model = load_local(run)
    where = f"[{host}]" if ":" in host else host
    print(f"serving {model.name} (context {model.context} tokens) at http://{where}:{port}/v1 "
          f"(POST /completions, GET /models); Ctrl-C stops", flush=True)
    uvicorn.run(create_app(model), host=host, port=port, log_level="warning")

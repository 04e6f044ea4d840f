"""One JSON-over-HTTP request to an OpenAI-compatible server (the long-context harness's `HTTPModel`, the
Planner-Actor-Reporter's `HTTPPlanner`), with every failure a one-line `UserError` naming the URL.

urllib rather than an HTTP library: one blocking request at a time is all either caller makes, and the
standard library keeps the client free of another dependency.
"""

import json
import urllib.error
import urllib.request

from protege.core.errors import UserError


def request_json(url: str, method: str = "GET", body: dict | None = None, timeout: float = 60.0):
    """The parsed JSON answer of `method url` (with `body` as JSON); errors as one line each."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as e:
        raise UserError(f"{url}: HTTP {e.code}: {error_message(e.read())}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
        raise UserError(f"{url}: cannot reach the server ({getattr(e, 'reason', e)})") from None
    except ValueError:
        raise UserError(f"{url}: the answer is not JSON") from None


def error_message(raw: bytes) -> str:
    """The `error.message` of an OpenAI-style error body (else its text), on one line."""
    try:
        data = json.loads(raw.decode("utf-8"))
        message = data["error"]["message"] if isinstance(data.get("error"), dict) else data.get("detail", data)
    except (ValueError, AttributeError, KeyError, UnicodeDecodeError):
        message = raw.decode("utf-8", errors="replace")
    return " ".join(str(message).split())[:300]

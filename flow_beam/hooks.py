"""Target hooks at run time: SQL statements (allowlisted by ``ir_compiler.hooks`` at validation AND at run time, then
run by ``Warehouse.run_hook`` in a read-only transaction) and webhooks (POST a JSON body; retried per
``errorHandling.retry``). A pre-hook runs before the load (SQL: in its own read-only transaction, before the load
transaction begins); a post-hook runs only after the load committed, and its failure is a warning."""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request


def backoff_delays(retry) -> list[float]:
    """Delays between attempts for an ``errorHandling.retry`` block (None → 3 attempts, 1 s exponential)."""
    attempts = retry.maxAttempts if retry else 3
    first = retry.initialDelaySeconds if retry else 1.0
    cap = retry.maxDelaySeconds if retry else 60.0
    kind = retry.backoff if retry else "exponential"
    delays = []
    for i in range(attempts - 1):
        d = first * (2 ** i if kind == "exponential" else (i + 1) if kind == "linear" else 1)
        delays.append(min(d, cap))
    return delays


def call_webhook(url: str, payload: dict, retry=None, timeout: float = 10.0, sleep=time.sleep) -> None:
    """POST ``payload`` as JSON; raises RuntimeError with the last failure after the retries."""
    body = json.dumps(payload, default=str).encode()
    last = None
    for delay in [*backoff_delays(retry), None]:
        req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                if 200 <= resp.status < 300:
                    return
                last = f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(getattr(exc, "reason", exc))
        if delay is None:
            break
        sleep(delay)
    raise RuntimeError(f"webhook {url} failed: {last}")

"""The HTTP side of enrich: JSON requests with a timeout, retry with backoff on transient failures (timeouts,
connection errors, 429, 5xx), a shared rate limit and an in-run response cache."""
from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request


class CallError(Exception):
    """A provider call failed for good (after retries, or a non-retryable answer); the row is routed."""


class RateLimiter:
    """At most ``rate`` request starts per second across threads."""

    def __init__(self, rate: float | None):
        self.interval = 1.0 / rate if rate else 0.0
        self.lock = threading.Lock()
        self.next = 0.0

    def wait(self) -> None:
        if not self.interval:
            return
        with self.lock:
            now = time.monotonic()
            start = max(now, self.next)
            self.next = start + self.interval
        if start > now:
            time.sleep(start - now)


class HttpClient:
    def __init__(self, timeout: float, delays: list[float], rate: float | None, cache: bool):
        self.timeout, self.delays = timeout, delays
        self.limiter = RateLimiter(rate)
        self.cache: dict | None = {} if cache else None
        self.lock = threading.Lock()
        self.stats = {"requests": 0, "retries": 0, "cache_hits": 0}

    def _count(self, key: str) -> None:
        with self.lock:
            self.stats[key] += 1

    def request(self, method: str, url: str, body=None, headers: dict | None = None):
        """The parsed JSON answer; raises CallError with a reason (never the headers: they may hold secrets)."""
        key = (method, url, json.dumps(body, sort_keys=True, default=str))
        if self.cache is not None and key in self.cache:
            self._count("cache_hits")
            return self.cache[key]
        last = None
        for delay in [*self.delays, None]:
            self.limiter.wait()
            self._count("requests")
            try:
                value = self._once(method, url, body, headers or {})
                if self.cache is not None:
                    self.cache[key] = value
                return value
            except _Transient as exc:
                last = str(exc)
            if delay is None:
                break
            self._count("retries")
            time.sleep(delay)
        raise CallError(f"{method} {_safe(url)} failed after {len(self.delays) + 1} attempt(s): {last}")

    def _once(self, method, url, body, headers):
        data = json.dumps(body, default=str).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json", "Accept": "application/json",
                                              **headers})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 429 or exc.code >= 500:
                raise _Transient(f"HTTP {exc.code}") from None
            raise CallError(f"{method} {_safe(url)} answered HTTP {exc.code}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise _Transient(f"{type(getattr(exc, 'reason', exc)).__name__}: {getattr(exc, 'reason', exc)}") \
                from None
        try:
            return json.loads(raw)
        except ValueError:
            raise CallError(f"{method} {_safe(url)} answered something that is not JSON: "
                            f"{raw[:80]!r}") from None


class _Transient(Exception):
    pass


def _safe(url: str) -> str:
    """The URL without its query string (which may carry keys)."""
    return url.split("?", 1)[0]

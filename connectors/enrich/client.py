"""The HTTP side of enrich: JSON requests with a timeout, retry with backoff on transient failures (timeouts,
connection errors, 429, 5xx), a shared rate limit and an in-run response cache. Redirects are followed, but
credentials never follow one to another origin (scheme + host + port)."""
from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request


class CallError(Exception):
    """A provider call failed for good (after retries, or a non-retryable answer); the row is routed. The message
    never holds a known secret (an answer may echo the request's credentials)."""

    def __init__(self, message: str):
        from ir_compiler.secrets import scrub_text
        super().__init__(scrub_text(message))


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
            with _OPENER.open(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 429 or exc.code >= 500:
                raise _Transient(f"HTTP {exc.code}") from None
            raise CallError(f"{method} {_safe(url)} answered HTTP {exc.code}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise _Transient(f"{type(getattr(exc, 'reason', exc)).__name__}: {getattr(exc, 'reason', exc)}") \
                from None
        except http.client.HTTPException as exc:  # not HTTP (a bad status line), a body cut short (IncompleteRead)
            what = {"BadStatusLine": "an answer that is not HTTP", "RemoteDisconnected": "a closed connection",
                    "IncompleteRead": "a body cut short"}.get(type(exc).__name__, type(exc).__name__)
            raise _Transient(f"{method} {_safe(url)} gave {what} ({type(exc).__name__}: {str(exc)[:80] or '-'})") \
                from None
        try:
            return json.loads(raw)
        except ValueError:
            raise CallError(f"{method} {_safe(url)} answered something that is not JSON: "
                            f"{raw[:80]!r}") from None


class _Transient(Exception):
    pass


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) — the port made explicit for http/https."""
    p = urllib.parse.urlsplit(url)
    port = p.port or {"http": 80, "https": 443}.get(p.scheme.lower())
    return p.scheme.lower(), (p.hostname or "").lower(), port


class SameOriginCredentials(urllib.request.HTTPRedirectHandler):
    """Follows redirects, but a redirect to another origin (scheme, host or port) carries no credentials: every
    header but Content-Type/Accept/User-Agent (Authorization, Cookie, provider headers) is dropped."""

    KEEP = {"content-type", "accept", "user-agent", "content-length"}

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and origin(req.full_url) != origin(new.full_url):
            for name in list(new.headers) + list(new.unredirected_hdrs):
                if name.lower() not in self.KEEP:
                    new.remove_header(name)
        return new


_OPENER = urllib.request.build_opener(SameOriginCredentials)


def _safe(url: str) -> str:
    """The URL without its query string (which may carry keys)."""
    return url.split("?", 1)[0]

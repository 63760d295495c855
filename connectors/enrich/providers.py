"""Enrich providers: http, llm (OpenAI-compatible chat completions), geocode, lookup; ``model`` validates but
has no runtime in this build. A provider turns a row into a request and a response into output values."""
from __future__ import annotations

import functools
import json
import os
import re
import urllib.parse

from connectors.enrich.client import CallError

_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def template_fields(provider: dict) -> set[str]:
    """Column names referenced as {name} in the provider's url, body and prompt."""
    text = json.dumps({k: provider.get(k) for k in ("url", "body", "prompt", "system")})
    return set(_FIELD.findall(text))


def render(template, row: dict, *, url: bool = False):
    if isinstance(template, str):
        def sub(m):
            v = row.get(m.group(1))
            v = "" if v is None else str(v)
            return urllib.parse.quote(v, safe="") if url else v
        whole = _FIELD.fullmatch(template)
        if whole and not url:
            return row.get(whole.group(1))
        return _FIELD.sub(sub, template)
    if isinstance(template, dict):
        return {k: render(v, row) for k, v in template.items()}
    if isinstance(template, list):
        return [render(v, row) for v in template]
    return template


def extract(value, path: str | None):
    """``a.b.0.c`` into nested dicts/lists; CallError naming the missing step."""
    if not path:
        return value
    for step in path.split("."):
        if isinstance(value, list) and step.isdigit() and int(step) < len(value):
            value = value[int(step)]
        elif isinstance(value, dict) and step in value:
            value = value[step]
        else:
            raise CallError(f"the response has no '{path}' (stopped at '{step}')")
    return value


def secret(provider: dict, key: str = "apiKey") -> str | None:
    """A secret from ``env:VAR`` / ``apiKeyEnv`` (never a literal value in the IR)."""
    ref = provider.get(key)
    env = provider.get(f"{key}Env")
    if isinstance(ref, str) and ref.startswith("env:"):
        env = ref[4:]
    value = os.environ.get(env) if env else None
    from ir_compiler.secrets import register_value
    register_value(value)  # known from now on: scrubbed from errors, DLQ rows and results
    return value


class HttpProvider:
    """``{"kind": "http", "url": "http://api/score?id={customer_id}", "method": "GET"|"POST", "body": {...},
    "headers": {...}, "responsePath": "data"}`` — one request per row (templated with row values)."""

    def __init__(self, provider: dict):
        self.p = provider
        self.method = provider.get("method", "POST" if provider.get("body") is not None else "GET").upper()

    @functools.cached_property
    def _headers(self) -> dict:
        """The configured headers, each ``env:VAR`` word replaced by the variable's value (registered, so it is
        scrubbed from errors and rows), plus ``Authorization: Bearer <apiKey>``."""
        from connectors.remote.fs import resolve_header
        from ir_compiler.secrets import register_value
        found: list[str] = []
        headers = {str(k): resolve_header(str(k), v, found) for k, v in (self.p.get("headers") or {}).items()}
        for value in found:
            register_value(value)
        token = secret(self.p)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    @property
    def missing(self) -> str | None:
        """A warning when the document names an apiKey whose variable is unset: requests go without it."""
        ref = self.p.get("apiKey")
        if isinstance(ref, str) and ref.startswith("env:") and not secret(self.p):
            return f"{self.p['kind']} provider: apiKey {ref} is unset or empty; requests sent without credentials"
        return None

    def headers(self) -> dict:
        return self._headers

    def call(self, client, row: dict):
        url = render(self.p["url"], row, url=True)
        body = render(self.p.get("body"), row) if self.p.get("body") is not None else None
        return extract(client.request(self.method, url, body, self.headers()), self.p.get("responsePath"))


class GeocodeProvider(HttpProvider):
    """``{"kind": "geocode", "url": "http://geo/search?q={address}"}``: answers like Nominatim
    (``[{"lat": .., "lon": ..}]``) or ``{"lat": .., "lon": ..}``; the output is ``{"lat", "lon"}``."""

    def call(self, client, row: dict):
        value = super().call(client, row)
        if isinstance(value, list):
            if not value:
                return None  # no match: null, not an error
            value = value[0]
        if not isinstance(value, dict) or "lat" not in value or "lon" not in value:
            raise CallError("the geocoder answer has no lat/lon")
        return {"lat": float(value["lat"]), "lon": float(value["lon"])}


class LlmProvider:
    """``{"kind": "llm", "baseUrl": "http://host/v1", "model": "m", "prompt": "Classify: {text}",
    "apiKey": "env:OPENAI_API_KEY"}`` — OpenAI-compatible chat completions; output = the message content."""

    def __init__(self, provider: dict):
        self.p = provider
        self.key = secret(provider)

    @property
    def available(self) -> bool:
        return bool(self.key)

    def call(self, client, row: dict):
        messages = ([{"role": "system", "content": render(self.p["system"], row)}] if self.p.get("system") else [])
        messages.append({"role": "user", "content": str(render(self.p["prompt"], row))})
        body = {"model": self.p["model"], "messages": messages,
                **{k: self.p[k] for k in ("temperature", "max_tokens") if k in self.p}}
        url = self.p["baseUrl"].rstrip("/") + "/chat/completions"
        answer = client.request("POST", url, body, {"Authorization": f"Bearer {self.key}"})
        return extract(answer, "choices.0.message.content")


REQUIRED = {"http": ("url",), "geocode": ("url",), "llm": ("baseUrl", "model", "prompt"), "lookup": ("on",),
            "model": ()}


def provider_problems(provider: dict) -> list[str]:
    kind = provider.get("kind")
    out = [f"provider '{kind}' needs '{k}'" for k in REQUIRED.get(kind, ()) if not provider.get(k)]
    for k in ("apiKey", "password", "token"):
        v = provider.get(k)
        if isinstance(v, str) and v and not v.startswith("env:"):
            out.append(f"'{k}' must be a reference such as \"env:VAR\", never the secret itself")
    from connectors.file_config import header_secret_problem
    headers = provider.get("headers")
    for name, value in (headers.items() if isinstance(headers, dict) else ()):
        problem = header_secret_problem(name, value)
        if problem:
            out.append(problem)
    if kind == "lookup" and not (provider.get("table") or provider.get("rows") is not None or provider.get("path")):
        out.append("a lookup provider needs 'table', 'rows' or 'path'")
    return out


def make_provider(provider: dict):
    kind = provider["kind"]
    if kind == "http":
        return HttpProvider(provider)
    if kind == "geocode":
        return GeocodeProvider(provider)
    if kind == "llm":
        return LlmProvider(provider)
    raise ValueError(kind)

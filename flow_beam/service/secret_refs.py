"""Documents submitted to the service carry secrets only as references (``env:VAR``, ``secret:…``): a literal
value under a secret-like key (``apiKey``, ``api-key``, ``accessKey``, ``password``, ``token``, ``*Secret``…), in a
credential header (``Authorization``, ``X-Goog-Api-Key``, ``Cookie``…; ``"Bearer env:API_TOKEN"`` is a reference),
as a URL's userinfo password or in a secret-like URL query parameter (``api_key=``, ``token=``, ``key=``…) is an
issue, so no secret is ever stored in the IR versions. (Paths are confined by the product's own check,
``ir_compiler.confine``, through ``check_document(..., root=…)``.)"""
from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

from ir_compiler.errors import Issue

try:  # the product's own rule for credential headers (http_pull, enrich): a scheme word, then env:VAR words
    from connectors.file_config import header_secret_problem as _product_header_problem
except ImportError:  # pragma: no cover - older product: the same rule through the http_pull model's validator
    from connectors.file_config import HttpPullSourceConfig

    def _product_header_problem(name: str, value) -> str | None:
        try:
            HttpPullSourceConfig._secret_headers({name: value})
        except ValueError as exc:
            return str(exc)
        return None

# a key is compared with '-', '_', '.' and spaces removed, case-insensitively: api_key, api-key, apiKey, X-Api-Key
SECRET_KEY = re.compile(r"(secret|password|passwd|pwd|token|credentials?|authorization|cookie|"
                        r"(api|access|secret|private|account|signing|session|master|client|auth)key)$")
SECRET_PARAM = re.compile(r"^(key|sig|signature|auth)$|" + SECRET_KEY.pattern)  # URL query parameter names
REFERENCE = re.compile(r"^(env:[A-Za-z_][A-Za-z0-9_]*|secret:.+|\$\{params\.[A-Za-z_][A-Za-z0-9_]*\})$")
_FOLD = re.compile(r"[-_. ]")


def secret_key(name: str) -> bool:
    """A key (or header/parameter name) that names a secret, in any case and with '-'/'_' variants."""
    return bool(SECRET_KEY.search(_FOLD.sub("", name).lower()))


def is_reference(value: str) -> bool:
    return bool(REFERENCE.match(value))


def pointer(loc: tuple) -> str:
    """RFC 6901 JSON Pointer of a location given as a tuple of keys and indexes."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in loc)


def secret_issues(raw: dict) -> list[Issue]:
    """Every literal secret in the document's nodes, error handling and metadata (paths are JSON Pointers)."""
    issues: list[Issue] = []
    nodes = raw.get("nodes") if isinstance(raw.get("nodes"), list) else []
    for i, node in enumerate(nodes):
        if isinstance(node, dict):
            node_id = node.get("id") if isinstance(node.get("id"), str) else None
            issues += _literal_secrets(node, ("nodes", i), node_id)
    for key in ("errorHandling", "metadata"):
        if isinstance(raw.get(key), dict):
            issues += _literal_secrets(raw[key], (key,), None)
    return issues


def _walk(value, loc: tuple, key=None, parent=None):
    """(location tuple, key, key of the enclosing object, value) of every scalar."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, loc + (k,), k, key)
    elif isinstance(value, list):
        for j, v in enumerate(value):
            yield from _walk(v, loc + (j,), key, parent)
    else:
        yield loc, key, parent, value


def _problem(key, parent, value: str) -> str | None:
    if isinstance(key, str) and parent == "headers":
        if is_reference(value):
            return None
        # the product's rule decides the form ("Bearer env:VAR"); a name the product does not call sensitive but
        # the service does (e.g. X-Passwd) is held to the same form
        if _product_header_problem(key, value) or secret_key(key) and _product_header_problem("Authorization",
                                                                                              value):
            return f"header '{key}' holds a literal credential"
        return None
    if isinstance(key, str) and secret_key(key) and not is_reference(value):
        return f"'{key}' holds a literal secret"
    if "://" in value:
        return _url_problem(value)
    return None


def _url_problem(value: str) -> str | None:
    try:
        parts = urlsplit(value)
        password = parts.password
        query = parse_qsl(parts.query, keep_blank_values=False)
    except ValueError:
        return None
    if password and not is_reference(password):
        return "the URL holds a literal password (user:password@)"
    for name, val in query:
        folded = _FOLD.sub("", name).lower()
        if val and SECRET_PARAM.search(folded) and not is_reference(val) and not val.startswith("{"):
            return f"the URL query parameter '{name}' holds a literal secret"
    return None


def _literal_secrets(obj, base: tuple, node_id: str | None) -> list[Issue]:
    out = []
    for loc, key, parent, value in _walk(obj, base):
        if not isinstance(value, str) or not value:
            continue
        problem = _problem(key, parent, value)
        if problem:
            out.append(Issue(pointer(loc), f"{problem}; give a reference such as \"env:VAR\" (for a header "
                                           f"\"Bearer env:VAR\"; the service never stores secrets)",
                             node_id, "secrets"))
    return out

"""WSGI middleware around the whole app: what every request passes through before Flask."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from passes import metrics
from passes.logtext import escaped

# The request log's name since it began; log filters and tests select on it.
log = logging.getLogger("passes.requests")

REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def wrap(wsgi_app: Callable[..., Any]) -> Callable[..., Any]:
    """The app inside every middleware, outermost first."""
    return CollapseSlashes(RequestLog(RefuseNul(wsgi_app)))


class CollapseSlashes:
    """WSGI middleware: a webServiceURL ending in "/" makes devices call "//v1/...".

    Werkzeug would answer such paths with a redirect; Apple documents nothing about
    Wallet following redirects on POST and DELETE, so serve them as if written once.
    """

    def __init__(self, wsgi_app: Callable[..., Any]) -> None:
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        if "//" in path:
            environ["PATH_INFO"] = re.sub("/{2,}", "/", path)
        return self.wsgi_app(environ, start_response)


class RequestLog:
    """WSGI middleware: one line per request (id, method, endpoint, status, duration), counted
    in the metrics, and the request id in an X-Request-Id header. Never paths (distribution
    links carry tokens), headers or bodies.

    Middleware rather than Flask hooks: on the device endpoints, the hot path, two hooks and
    their `g` lookups cost a tenth of the request (measured with bench/http_paths.py, removed
    in 0400a08).
    """

    def __init__(self, wsgi_app: Callable[..., Any]) -> None:
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        started = time.perf_counter()
        offered = environ.get("HTTP_X_REQUEST_ID", "")
        request_id = offered if REQUEST_ID.fullmatch(offered) else uuid.uuid4().hex[:16]
        status = endpoint = "-"

        def start(status_line: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
            nonlocal status, endpoint
            status = status_line.partition(" ")[0]
            # Flask calls this while its request, which Werkzeug keeps in the environ until
            # the request ends, still knows the route it matched.
            rule = getattr(environ.get("werkzeug.request"), "url_rule", None)
            endpoint = rule.endpoint if rule is not None else "-"
            headers.append(("X-Request-Id", request_id))
            return start_response(status_line, headers, *exc_info)

        body = self.wsgi_app(environ, start)  # Flask has called start() when it returns
        seconds = time.perf_counter() - started
        log.info(
            "request id=%s method=%s endpoint=%s status=%s duration_ms=%.1f",
            request_id,
            escaped(environ.get("REQUEST_METHOD", "-")),  # the client's, whatever it sent
            endpoint,
            status,
            seconds * 1000,
        )
        metrics.observe_request(endpoint, status, seconds)
        return body


class RefuseNul:
    """WSGI middleware: a NUL in the path or the query string is refused before any view.

    No pass, device or page has a NUL in its name, and PostgreSQL refuses NUL in text, so a
    view passing one to a query would answer 500. One check here covers every route: a path
    is a 404 (nothing is called that), a query a 400. The path arrives percent-decoded; the
    query string as sent, where a NUL is "%00".
    """

    def __init__(self, wsgi_app: Callable[..., Iterable[bytes]]) -> None:
        self.wsgi_app = wsgi_app

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if "\x00" in environ.get("PATH_INFO", ""):
            return _json_error(start_response, "404 NOT FOUND", "not_found", "No such resource.")
        query = environ.get("QUERY_STRING", "")
        if "%00" in query or "\x00" in query:
            return _json_error(
                start_response,
                "400 BAD REQUEST",
                "bad_request",
                "The query string holds a NUL character (%00).",
            )
        return self.wsgi_app(environ, start_response)


def _json_error(
    start_response: Callable[..., Any], status: str, error: str, message: str
) -> list[bytes]:
    # The shape of every other error (passes/errors.py), without entering Flask.
    body = json.dumps({"error": error, "message": message}).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]

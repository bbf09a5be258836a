"""What a request needs from the running app: credentials and templates."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from flask import Flask, current_app

from passes.building import TemplateCache
from passes.credentials import PassCredentials
from passes.errors import ServiceUnavailable
from passes.signed_cache import SignedCache


@dataclass
class Runtime:
    """Loaded once by create_app() and kept in app.extensions."""

    credentials: PassCredentials | None
    # Signing with the chain development makes when no certificate is configured
    # (passes/certificate_chain.py): iPhones refuse its passes, so pages and commands say so.
    development_chain: bool = False
    # Template versions read from the database, by version id (passes/store.py).
    templates: TemplateCache = field(default_factory=TemplateCache)
    # Signed packages of committed pass versions (passes/signed_cache.py).
    signed: SignedCache = field(default_factory=SignedCache)
    # PUSH_MODE=inline: sends the pushes a committed change queued (pushing.InlinePusher,
    # run by passes/after_commit.py). None where workers push, or nothing does.
    inline_pusher: Callable[[], None] | None = None
    # Called after a commit that queued webhook messages (see passes/webhooks.py).
    deliver_webhooks: Callable[[], None] = field(default=lambda: None)


def runtime() -> Runtime:
    return runtime_of(current_app)


def runtime_of(app: Flask) -> Runtime:
    return app.extensions["pass_server"]


def credentials() -> PassCredentials:
    """The signing credentials, or a 503 that says how to configure them."""
    loaded = runtime().credentials
    if loaded is None:
        raise ServiceUnavailable(
            "No pass certificate is configured, so passes cannot be signed. Set "
            "PASS_CERTIFICATE (your .p12) and WWDR_CERTIFICATE, then restart."
        )
    return loaded


def web_service_url() -> str:
    return current_app.config["PUBLIC_URL"].rstrip("/") + current_app.config["WEB_SERVICE_PATH"]

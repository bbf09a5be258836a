"""What a request needs from the running app: credentials and templates."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from flask import Flask, current_app

from passes.building import TemplateCache
from passes.credentials import Certificates, PassCredentials
from passes.errors import ServiceUnavailable, ValidationError
from passes.signed_cache import SignedCache


@dataclass
class Runtime:
    """Loaded once by create_app() and kept in app.extensions."""

    # Every configured certificate; empty when none is.
    certificates: Certificates
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
    # How to end what runs beside the requests (the delivery recorder, passes/background.py),
    # which each also ends by itself when the process exits.
    stops: list[Callable[[], None]] = field(default_factory=list)

    def stop(self) -> None:
        """End the app's background threads once they finish what they hold: what exit
        does for a process, for a test done with an app."""
        for stop in self.stops:
            stop()


def runtime() -> Runtime:
    return runtime_of(current_app)


def runtime_of(app: Flask) -> Runtime:
    return app.extensions["pass_server"]


def certificates() -> Certificates:
    """Every configured certificate, or a 503 that says how to configure one."""
    loaded = runtime().certificates
    if not loaded:
        raise ServiceUnavailable(
            "No pass certificate is configured, so passes cannot be signed. Set "
            "PASS_CERTIFICATE (your .p12) and WWDR_CERTIFICATE, then restart."
        )
    return loaded


def credentials(pass_type_identifier: str) -> PassCredentials:
    """The certificate that signs and pushes passes of this type, or a 503 that says how
    to configure it."""
    loaded = certificates()
    found = loaded.for_type(pass_type_identifier)
    if found is None:
        raise ServiceUnavailable(
            f"No certificate for the pass type {pass_type_identifier} is configured (this "
            f"server has {', '.join(loaded.pass_types)}), so its passes cannot be signed. "
            "Add its Pass Type ID certificate as PASS_CERTIFICATE_2 (or the next free "
            "number), then restart."
        )
    return found


def pass_type(given: str | None, path: str = "$.passTypeIdentifier") -> str:
    """The pass type a new pass (or a command) is for: `given`, when this server has its
    certificate, or the only type there is. A 400 at `path` otherwise."""
    types = certificates().pass_types
    if given is None:
        if len(types) == 1:
            return types[0]
        raise ValidationError(
            f"must be given, as this server has several pass types: {', '.join(types)}",
            path=path,
        )
    if given not in types:
        raise ValidationError(
            f"{given!r} is not a pass type of this server, which signs {', '.join(types)}",
            path=path,
        )
    return given


def web_service_url() -> str:
    return current_app.config["PUBLIC_URL"].rstrip("/") + current_app.config["WEB_SERVICE_PATH"]

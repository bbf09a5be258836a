"""The application factory. `python app.py` runs a development server on SQLite."""

from __future__ import annotations

import logging
import math
import os
import secrets
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from flask import Flask
from flask_migrate import Migrate
from werkzeug.middleware.proxy_fix import ProxyFix

from models import db
from passes import (
    admin,
    cli,
    context,
    dashboard,
    delivery,
    distribution,
    metrics,
    middleware,
    openapi,
    pages,
    pass_templates,
    pushing,
    throttling,
    webhooks,
    webservice,
)
from passes.certificate_chain import development_credentials
from passes.credentials import (
    Certificates,
    CredentialsError,
    certificate_settings,
    load_pass_certificates,
)
from passes.errors import register_error_handlers

log = logging.getLogger("passes")
migrate = Migrate()

HERE = Path(__file__).resolve().parent
WEB_SERVICE_PATH = webservice.bp.url_prefix
# Shorter tokens can be guessed; token_urlsafe(32) gives 43 characters.
MIN_ADMIN_TOKEN_LENGTH = 24
# Any of these set means someone configured a deployment: the `flask` command then runs in
# production like the server does, never falling back to development.
PRODUCTION_VARIABLES = (
    "SECRET_KEY",
    "DATABASE_URL",
    "PUBLIC_URL",
    "ADMIN_TOKEN",
    "PASS_CERTIFICATE",
    "PASS_CERTIFICATE_BASE64",
)


class ConfigError(Exception):
    """The environment does not describe a service that can run; the message says why."""


def database_url(value: str | None, instance_path: str) -> str:
    """DATABASE_URL with the driver named, or the embedded SQLite file."""
    if not value:
        return f"sqlite:///{Path(instance_path) / 'passes.db'}"
    # Heroku hands out postgres://, and SQLAlchemy 2.1 maps a bare postgresql:// to
    # psycopg 3; our driver is psycopg2, so name it explicitly.
    for prefix in ("postgres://", "postgresql://"):
        if value.startswith(prefix):
            return "postgresql+psycopg2://" + value[len(prefix) :]
    return value


def number_setting(env: Mapping[str, str], name: str, default: float, *, minimum: float = 0) -> Any:
    """A numeric variable (a whole number when `default` is an int); a bad value stops
    start-up with a message naming it."""
    text = env.get(name, "").strip()
    if not text:
        return default
    kind = int if isinstance(default, int) else float
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or value < minimum:
        what = "a whole number" if kind is int else "a number"
        raise ConfigError(
            f"{name} is {text!r}, which is not {what} of at least {minimum}. Set it to "
            f"one, or unset it for the default ({default})."
        )
    return value


def _development_secret_key(instance_path: str) -> str:
    # Tokens derive from SECRET_KEY: a key that changed at every restart would lock out
    # the devices that registered before it, so development keeps one in the instance folder.
    path = Path(instance_path) / "dev-secret-key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def _flask_command() -> str | None:
    """Which `flask` command loads the app: "run" for `flask run`, the command-line
    group's name for every other (the app's commands are found by loading it), None when
    a server (gunicorn, `python app.py`) or a test loads it."""
    ctx = click.get_current_context(silent=True)
    return None if ctx is None else (ctx.info_name or "")


def app_env(env: Mapping[str, str]) -> str:
    """APP_ENV, whose default is production, except for the `flask` command on a machine
    where nothing is configured: it runs in development, as `python app.py` does, so the
    README's commands work as written. Production would refuse to start there anyway
    (SECRET_KEY is required), so no command that works in production changes meaning."""
    if "APP_ENV" in env:
        return env["APP_ENV"]
    configured = any(env.get(name) for name in PRODUCTION_VARIABLES)
    return "development" if _flask_command() is not None and not configured else "production"


def config_from_environment(instance_path: str) -> dict[str, Any]:
    env = os.environ
    development = app_env(env) == "development"
    public_url = env.get("PUBLIC_URL") or ("http://localhost:5000" if development else None)
    return {
        "DEVELOPMENT": development,
        "SQLALCHEMY_DATABASE_URI": database_url(env.get("DATABASE_URL"), instance_path),
        "SQLALCHEMY_ENGINE_OPTIONS": {
            # A connection that died with a database or pooler restart is replaced at
            # checkout instead of failing the request that drew it.
            "pool_pre_ping": True,
            # Bound parameters are push tokens, device ids and personal data: keep them out
            # of error messages and therefore out of logs.
            "hide_parameters": True,
        },
        "SECRET_KEY": env.get("SECRET_KEY")
        or (_development_secret_key(instance_path) if development else None),
        "ADMIN_TOKEN": env.get("ADMIN_TOKEN") or None,
        "PUBLIC_URL": public_url,
        "WEB_SERVICE_PATH": WEB_SERVICE_PATH,
        # PASS_CERTIFICATE, PASS_CERTIFICATE_2, ... with their _BASE64 and _PASSWORD.
        **certificate_settings(env),
        "WWDR_CERTIFICATE": env.get("WWDR_CERTIFICATE"),
        "WWDR_CERTIFICATE_BASE64": env.get("WWDR_CERTIFICATE_BASE64"),
        # What development signs with when no certificate is configured (made on first start).
        "DEVELOPMENT_CHAIN_DIR": str(Path(instance_path) / "development-chain"),
        "PASS_TEMPLATES_DIR": env.get("PASS_TEMPLATES_DIR", str(HERE / "pass_templates")),
        # Admin uploads carry base64 images; device bodies have their own, smaller limit.
        "MAX_CONTENT_LENGTH": number_setting(env, "MAX_CONTENT_LENGTH", 5 * 1024 * 1024, minimum=1),
        "LOG_LEVEL": env.get("LOG_LEVEL", "INFO"),
        # Where wrong admin tokens are counted (passes/throttling.py): per process by
        # default; a shared store (redis://...) counts them across workers and dynos.
        "RATELIMIT_STORAGE_URI": env.get("RATELIMIT_STORAGE_URI") or "memory://",
        # Proxies in front that append the client's address to X-Forwarded-For (Heroku's
        # router: 1). 0 trusts no header: the address is the connection's.
        "FORWARDED_FOR_PROXIES": int(env.get("FORWARDED_FOR_PROXIES", 0)),
        # The dashboard's session cookie: never sent on cross-site POSTs, HTTPS-only
        # behind HTTPS.
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": bool(public_url and public_url.startswith("https://")),
        "APNS_URL": env.get("APNS_URL", "https://api.push.apple.com"),
        "APNS_CA_FILE": env.get("APNS_CA_FILE"),
        "APNS_MAX_STREAMS": number_setting(env, "APNS_MAX_STREAMS", 100, minimum=1),
        "APNS_MAX_CONNECTIONS": number_setting(env, "APNS_MAX_CONNECTIONS", 10, minimum=1),
        # First retry of a 429/5xx within about this many seconds, doubling each time.
        "APNS_BACKOFF_SECONDS": number_setting(env, "APNS_BACKOFF_SECONDS", 0.5),
        # inline: push from the web process right after a change (no worker needed);
        # worker: leave it to `flask passes worker`; off: only record pending pushes.
        "PUSH_MODE": env.get("PUSH_MODE") or None,
        # What a worker holds at a time: a batch this size, for a lease this long, renewed
        # while it is sent. Small, so that a killed worker keeps few devices waiting.
        "PUSH_BATCH_SIZE": number_setting(env, "PUSH_BATCH_SIZE", 1000, minimum=1),
        "PUSH_LEASE_SECONDS": number_setting(env, "PUSH_LEASE_SECONDS", 30.0, minimum=1),
        # How pushes are paced to what the web tier serves (passes/pacing.py). The callback
        # window keeps phones from queueing more than this many seconds at the web tier
        # (0: no window); PUSH_RATE caps pushes per second per process (0: no cap).
        # bench/fanout.py's figures for both are in BENCHMARKS.md.
        "PUSH_QUEUE_SECONDS": number_setting(env, "PUSH_QUEUE_SECONDS", 0.5),
        "PUSH_RATE": number_setting(env, "PUSH_RATE", 0.0),
        "PUSH_POLL_SECONDS": number_setting(env, "PUSH_POLL_SECONDS", 0.5, minimum=0.1),
        # Opens /metrics to a scraper sending it as a bearer token; unset, /metrics is a 404.
        "METRICS_TOKEN": env.get("METRICS_TOKEN") or None,
        # Where events go (passes/webhooks.py), besides the endpoints added through the API.
        "WEBHOOK_URL": env.get("WEBHOOK_URL") or None,
        "WEBHOOK_SECRET": env.get("WEBHOOK_SECRET") or None,
        # A receiver that has not answered by then is tried again later.
        "WEBHOOK_TIMEOUT_SECONDS": number_setting(
            env, "WEBHOOK_TIMEOUT_SECONDS", 10.0, minimum=0.1
        ),
    }


def _check(config: dict[str, Any]) -> None:
    if not config.get("SECRET_KEY"):
        raise ConfigError(
            "SECRET_KEY is not set. It signs every pass's authentication token, so it must "
            "be a long random value that never changes: set SECRET_KEY (for example "
            "`heroku config:set SECRET_KEY=$(python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))')`), or set APP_ENV=development to run locally."
        )
    admin_token = config.get("ADMIN_TOKEN")
    relaxed = config.get("DEVELOPMENT") or config.get("TESTING")
    if admin_token and len(admin_token) < MIN_ADMIN_TOKEN_LENGTH and not relaxed:
        raise ConfigError(
            f"ADMIN_TOKEN has {len(admin_token)} characters; it opens the admin API and the "
            f"dashboard, so it must be at least {MIN_ADMIN_TOKEN_LENGTH} random characters: "
            "set ADMIN_TOKEN to, for example, the output of `python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'`, or unset it to turn the admin API off."
        )
    if not config.get("PUBLIC_URL"):
        raise ConfigError(
            "PUBLIC_URL is not set. Devices reach the service at this https origin (for "
            "example https://passes.example.com); set PUBLIC_URL, or APP_ENV=development."
        )


def _check_webhook(config: dict[str, Any]) -> None:
    url, secret = config.get("WEBHOOK_URL"), config.get("WEBHOOK_SECRET")
    if url is None:
        return
    problem = webhooks.url_problem(url)
    if problem:
        raise ConfigError(f"WEBHOOK_URL {problem}.")
    try:
        webhooks.secret_key(secret or "")
    except ValueError as error:
        raise ConfigError(
            f"WEBHOOK_SECRET: {error}. Receivers check every event's signature with it: set "
            f"WEBHOOK_SECRET, for example to `{webhooks.SECRET_PREFIX}` followed by base64 of "
            "24 random bytes (Standard Webhooks' form), or unset WEBHOOK_URL."
        ) from None


def _push_mode(config: dict[str, Any]) -> str:
    """Inline on SQLite (the no-setup default runs no worker), a worker otherwise."""
    mode = config.get("PUSH_MODE")
    if mode is None:
        mode = "inline" if config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite") else "worker"
    if mode not in {"inline", "worker", "off"}:
        raise ConfigError(f"PUSH_MODE is {mode!r}; use inline, worker or off.")
    return mode


def _configure_logging(level: str) -> None:
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        root.addHandler(handler)
    root.setLevel(level)
    # httpx logs every request with its whole URL; a webhook endpoint's path or query can
    # hold the receiver's own key. passes/webhooks.py logs failures by origin instead.
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(logging.WARNING)


@contextmanager
def _start_up_report(*, shown: bool) -> Iterator[None]:
    """The start-up report (which certificate signs, until when; the development chain) is
    for servers, `flask run` included. Other `flask` commands load the app too, and their
    output, --help above all, does without it: errors still show."""
    logger = logging.getLogger("passes")
    level = logger.level
    if not shown:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _report_credentials(
    certificates: Certificates,
    development_chain: bool,
    chain_made: bool,
    config: Mapping[str, Any],
) -> None:
    if not certificates:
        log.warning(
            "no pass certificate configured: the server runs, but passes cannot be built "
            "or pushed. Set PASS_CERTIFICATE (a .p12 or PEM) and WWDR_CERTIFICATE."
        )
    elif development_chain:
        credentials = certificates.all[0]
        log.warning(
            "no pass certificate configured: signing with a development certificate (%s, "
            "team %s) %s %s. iPhones refuse passes signed with it, because Apple did not "
            "issue it. To make passes that iPhones accept, set PASS_CERTIFICATE (your Pass "
            "Type ID certificate, a .p12 or PEM) and WWDR_CERTIFICATE (README: Exporting "
            "the certificate from Keychain).",
            credentials.pass_type_identifier,
            credentials.team_identifier,
            "made now in" if chain_made else "kept in",
            config["DEVELOPMENT_CHAIN_DIR"],
        )
    else:
        for credentials in certificates.all:
            used = certificates.for_type(credentials.pass_type_identifier)
            if used is credentials:
                log.info(
                    "signing and pushing as %s (team %s) with %s, valid until %s",
                    credentials.pass_type_identifier,
                    credentials.team_identifier,
                    credentials.variable,
                    credentials.expires_at.date().isoformat(),
                )
            elif used is not None:  # a renewal: the one that expires last is used
                log.info(
                    "not using %s for %s: it is valid until %s, and %s (in use) until %s",
                    credentials.variable,
                    credentials.pass_type_identifier,
                    credentials.expires_at.date().isoformat(),
                    used.variable,
                    used.expires_at.date().isoformat(),
                )


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    app = openapi.new_app(__name__, instance_relative_config=True)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    try:
        app.config.from_mapping(config_from_environment(app.instance_path))
        if test_config:
            app.config.update(test_config)
        _configure_logging(app.config["LOG_LEVEL"])
        _check(app.config)
        _check_webhook(app.config)
        app.config["PUSH_MODE"] = push_mode = _push_mode(app.config)
        with _start_up_report(shown=_flask_command() in (None, "run")):
            certificates = load_pass_certificates(app.config)
            chain_made = development_chain = False
            if not certificates and app.config["DEVELOPMENT"]:
                chain_dir = Path(app.config["DEVELOPMENT_CHAIN_DIR"])
                credentials, chain_made = development_credentials(chain_dir)
                certificates = Certificates((credentials,))
                development_chain = True
            _report_credentials(certificates, development_chain, chain_made, app.config)
        throttling.init_app(app, [admin.bp, dashboard.bp, metrics.bp])
    except (ConfigError, CredentialsError, throttling.StorageUnusable) as error:
        # One readable paragraph, not a traceback. Exit status 3 is gunicorn's "worker
        # failed to boot": the master stops instead of restarting workers forever.
        print(f"\nCannot start: {error}\n", file=sys.stderr)
        raise SystemExit(3) from None

    db.init_app(app)
    delivery.init_app(app)
    migrate.init_app(app, db, directory=str(HERE / "migrations"))
    runtime = context.Runtime(
        certificates=certificates,
        development_chain=development_chain,
    )
    app.extensions["pass_server"] = runtime
    runtime.stops.append(delivery.recorder_of(app).stop)
    app.context_processor(lambda: {"development_chain": runtime.development_chain})
    if push_mode == "inline":
        runtime.inline_pusher = inline_pusher = pushing.InlinePusher(app)
        runtime.stops.append(inline_pusher.stop)
        webhooks.deliver_after_commit(app)
    app.session_interface = dashboard.SessionOnlyWhenSent()
    app.url_map.merge_slashes = False  # middleware.CollapseSlashes serves "//" paths
    if app.config["FORWARDED_FOR_PROXIES"]:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=app.config["FORWARDED_FOR_PROXIES"], x_proto=0, x_host=0
        )
    app.wsgi_app = middleware.wrap(app.wsgi_app)  # type: ignore[method-assign]
    # /wallet, /api, /healthz and /openapi.json: the documented ones.
    openapi.register_apis(app)
    app.register_blueprint(cli.bp)
    app.register_blueprint(metrics.bp)  # /metrics
    app.register_blueprint(distribution.bp)  # /p/<token>: the public pass pages
    app.register_blueprint(dashboard.bp, url_prefix="/admin")
    app.register_blueprint(pages.bp)  # /: what this service is, for a browser
    register_error_handlers(app)
    # Templates live in the database; the folder's are imported when new or changed.
    if _flask_command() != "db":  # migrations run on whatever schema there is
        with app.app_context(), _start_up_report(shown=_flask_command() in (None, "run")):
            pass_templates.import_at_start(Path(app.config["PASS_TEMPLATES_DIR"]))
    return app


if __name__ == "__main__":
    os.environ.setdefault("APP_ENV", "development")
    application = create_app()
    with application.app_context():
        from flask_migrate import upgrade

        upgrade()  # the embedded database needs no separate set-up step
        pass_templates.import_at_start(Path(application.config["PASS_TEMPLATES_DIR"]))
    application.run(
        host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ.get("PORT", "5000"))
    )

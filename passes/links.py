"""Public download links: signed with SECRET_KEY, optionally expiring, not guessable."""

from __future__ import annotations

from datetime import datetime

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer

from models import Pass
from passes.errors import NotFound

SALT = "pass-download-link"


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=SALT)


def download_token(pass_: Pass, expires_at: datetime | None = None) -> str:
    """An opaque token naming the pass; altering any character breaks its signature."""
    payload: list[object] = [pass_.pass_type_identifier, pass_.serial_number]
    if expires_at is not None:
        payload.append(int(expires_at.timestamp()))
    return _serializer().dumps(payload)


def read_download_token(token: str, now: datetime) -> tuple[str, str]:
    """(passTypeIdentifier, serialNumber) of a valid link; 404 for anything else."""
    try:
        payload = _serializer().loads(token)
    except BadSignature:
        raise NotFound("this link is not valid") from None
    if not isinstance(payload, list) or len(payload) not in (2, 3):
        raise NotFound("this link is not valid")
    if len(payload) == 3 and now.timestamp() > payload[2]:
        raise NotFound("this link has expired; ask for a new one")
    return str(payload[0]), str(payload[1])


def download_url(pass_: Pass, expires_at: datetime | None = None) -> str:
    """The absolute link under PUBLIC_URL that admins hand to customers."""
    base = current_app.config["PUBLIC_URL"].rstrip("/")
    return f"{base}/p/{download_token(pass_, expires_at)}"

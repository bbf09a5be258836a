"""Slowing down guesses of ADMIN_TOKEN: wrong tokens are counted per client address.

Flask-Limiter keeps the counts: in memory by default (one count per process, so each
gunicorn worker allows its own share), or in a store that every process and dyno shares
when RATELIMIT_STORAGE_URI names one (for example a Redis URL).

Only wrong tokens count (a 401 from the admin API or the dashboard's sign-in), so admins
who hold the token are never slowed down. Once an address has used up its guesses, every
admin request from it is refused until the window passes, a right token included: otherwise
the refusals would tell a wrong guess from a right one, and the guessing would go on.
"""

from __future__ import annotations

from flask import Blueprint, Flask, Response, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from limits.errors import ConfigurationError

WRONG_TOKENS = "10 per minute"
MESSAGE = "Too many wrong admin tokens from your address; try again in a minute."


def _wrong_token(response: Response) -> bool:
    # The admin API and the dashboard answer 401 for a wrong token and for nothing else.
    return response.status_code == 401


class StorageUnusable(Exception):
    """RATELIMIT_STORAGE_URI names a store that cannot be used; the message says why."""


def init_app(app: Flask, guarded: list[Blueprint]) -> Limiter:
    """Count wrong tokens sent to the `guarded` blueprints, together, per client address."""
    try:
        limiter = Limiter(get_remote_address, app=app)
    except ConfigurationError as error:
        raise StorageUnusable(
            f"RATELIMIT_STORAGE_URI cannot be used ({error}). Leave it unset to count wrong "
            "admin tokens in memory, or give a storage URI that Flask-Limiter supports and "
            "whose client library is installed, such as redis://host:6379."
        ) from None
    # One scope for all of them: a guess counts the same on every door to the token.
    wrong_tokens = limiter.shared_limit(
        WRONG_TOKENS, scope="admin-token", deduct_when=_wrong_token, error_message=MESSAGE
    )
    for blueprint in guarded:
        wrong_tokens(blueprint)
    names = {blueprint.name for blueprint in guarded}

    @limiter.request_filter
    def _unguarded() -> bool:
        # Flask-Limiter looks at every request; the device paths, which no limit covers,
        # then skip its work (it cost them 380 of 670 us per request in-process).
        return request.blueprint not in names

    return limiter

"""Per-pass authentication tokens, derived rather than stored.

Each pass's token is HMAC-SHA256(SECRET_KEY, passTypeIdentifier/serialNumber): stable across
updates, different for every pass, and nothing in the database leaks it. Changing
SECRET_KEY changes every token, so devices holding older passes stop authenticating.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

# 32 url-safe characters (192 bits) is well above Apple's 16-character minimum.
TOKEN_LENGTH = 32


def authentication_token(secret_key: str, pass_type_identifier: str, serial_number: str) -> str:
    message = f"authenticationToken\0{pass_type_identifier}\0{serial_number}".encode()
    digest = hmac.new(secret_key.encode(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode()[:TOKEN_LENGTH]


def token_matches(
    secret_key: str, pass_type_identifier: str, serial_number: str, offered: str
) -> bool:
    """Constant-time comparison of an offered token with the pass's own."""
    expected = authentication_token(secret_key, pass_type_identifier, serial_number)
    return hmac.compare_digest(expected.encode(), offered.encode())


def bearer_matches(authorization: str, expected: str) -> bool:
    """Whether an Authorization header is `Bearer <expected>`, compared in constant time."""
    scheme, _, offered = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        offered.strip().encode(), expected.encode()
    )

"""Loading the Pass Type ID certificate, its key and Apple's WWDR intermediate.

Users hand us what Keychain Access exports (a .p12) or a PEM, by path or, on hosts where
files are awkward (Heroku), base64 in an environment variable. Every way this goes wrong
becomes one readable paragraph that names the variable to fix.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID, SignatureAlgorithmOID

log = logging.getLogger(__name__)

APPLE_CA_URL = "https://www.apple.com/certificateauthority/"

SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
EXPIRY_WARNING = timedelta(days=30)
# The naming rule, here only: PASS_CERTIFICATE, then PASS_CERTIFICATE_2, PASS_CERTIFICATE_3,
# ... Each is a path, with NAME_BASE64 (the content instead) and NAME_PASSWORD beside it.
CERTIFICATE_PREFIX = "PASS_CERTIFICATE"


class CredentialsError(Exception):
    """Credentials are configured but unusable; the message says what to change."""


@dataclass(frozen=True)
class PassCredentials:
    """What signing and APNs need, read once at start-up."""

    certificate: x509.Certificate
    private_key: SigningKey
    wwdr: x509.Certificate
    pass_type_identifier: str
    team_identifier: str
    # The setting it was read from (PASS_CERTIFICATE, PASS_CERTIFICATE_2, ...).
    variable: str = CERTIFICATE_PREFIX

    @property
    def expires_at(self) -> datetime:
        return self.certificate.not_valid_after_utc

    def days_to_expiry(self, now: datetime | None = None) -> int:
        return (self.expires_at - (now or datetime.now(UTC))).days

    @cached_property
    def fingerprint(self) -> str:
        """SHA-256 of the certificate: which certificate, among renewals of one type."""
        return self.certificate.fingerprint(hashes.SHA256()).hex()

    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def private_key_pem(self) -> bytes:
        """The key unencrypted, for the TLS client of APNs; never log or return it."""
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def __repr__(self) -> str:  # keep the key out of any accidental log line
        return (
            f"PassCredentials({self.pass_type_identifier!r}, team={self.team_identifier!r}, "
            f"from {self.variable})"
        )


@dataclass(frozen=True)
class Certificates:
    """Every configured pass certificate, and for each pass type the one that signs and
    pushes: of several for one Pass Type ID (a renewal), the one that expires last."""

    all: tuple[PassCredentials, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.all)

    @cached_property
    def in_use(self) -> dict[str, PassCredentials]:
        """Pass type identifier -> the certificate used for it."""
        used: dict[str, PassCredentials] = {}
        for credentials in self.all:
            current = used.get(credentials.pass_type_identifier)
            if current is None or credentials.expires_at > current.expires_at:
                used[credentials.pass_type_identifier] = credentials
        return dict(sorted(used.items()))

    @property
    def pass_types(self) -> list[str]:
        return list(self.in_use)

    def for_type(self, pass_type_identifier: str | None) -> PassCredentials | None:
        return self.in_use.get(pass_type_identifier or "")

    def is_used(self, credentials: PassCredentials) -> bool:
        return self.in_use.get(credentials.pass_type_identifier) is credentials


_CERTIFICATE_SETTING = re.compile(
    rf"{CERTIFICATE_PREFIX}(?:_(?P<number>[2-9]|[1-9][0-9]+))?(?P<suffix>_BASE64|_PASSWORD)?"
)


def certificate_settings(env: Mapping[str, str]) -> dict[str, str | None]:
    """Every PASS_CERTIFICATE... variable of the environment, for the app's config."""
    settings: dict[str, str | None] = {
        CERTIFICATE_PREFIX + suffix: None for suffix in ("", "_BASE64", "_PASSWORD")
    }
    settings.update(
        {name: value for name, value in env.items() if name.startswith(CERTIFICATE_PREFIX)}
    )
    return settings


def certificate_names(config: Mapping[str, Any]) -> list[str]:
    """The certificates set in `config` (by their path setting's name), in number order."""
    numbers: dict[str, int] = {}
    for key, value in config.items():
        if not isinstance(key, str) or not key.startswith(CERTIFICATE_PREFIX) or not value:
            continue
        match = _CERTIFICATE_SETTING.fullmatch(key)
        if match is None:
            raise CredentialsError(
                f"{key} is not a setting this server reads. The first pass certificate is "
                f"{CERTIFICATE_PREFIX}, the others {CERTIFICATE_PREFIX}_2, "
                f"{CERTIFICATE_PREFIX}_3 and so on, each with _PASSWORD and _BASE64 beside "
                f"it as for the first: rename {key}."
            )
        if match["suffix"] != "_PASSWORD":
            name = key.removesuffix("_BASE64")
            numbers[name] = int(match["number"] or 1)
    return sorted(numbers, key=numbers.__getitem__)


def load_pass_certificates(config: Mapping[str, Any]) -> Certificates:
    """Every certificate in the config (none at all: empty), checked; for each pass type
    the one that expires last must be valid."""
    names = certificate_names(config)
    wwdr_data = _read_source(config, "WWDR_CERTIFICATE")
    if not names and wwdr_data is None:
        return Certificates()
    if not names:
        raise CredentialsError(
            "WWDR_CERTIFICATE is set but PASS_CERTIFICATE is not. Set PASS_CERTIFICATE to the "
            ".p12 you exported from Keychain Access (or PASS_CERTIFICATE_BASE64 to its base64)."
        )
    if wwdr_data is None:
        raise CredentialsError(
            f"{names[0]} is set but WWDR_CERTIFICATE is not. Download Apple's current "
            "Worldwide Developer Relations intermediate (G4) from "
            f"{APPLE_CA_URL} and set WWDR_CERTIFICATE to its path "
            "(or WWDR_CERTIFICATE_BASE64 to its base64)."
        )
    wwdrs = _load_wwdrs(wwdr_data)
    loaded = []
    for name in names:
        data = _read_source(config, name)
        assert data is not None  # named because it is set
        password = config.get(f"{name}_PASSWORD") or None
        key, certificate = _load_pass_certificate(name, data, password)
        loaded.append(_check(name, key, certificate, wwdrs))
    certificates = Certificates(tuple(loaded))
    now = datetime.now(UTC)
    for credentials in certificates.in_use.values():
        # The one used expires last: when it has expired, every one of its type has.
        if credentials.expires_at < now:
            raise CredentialsError(
                f"The pass certificate in {credentials.variable} expired on "
                f"{credentials.expires_at.date().isoformat()}. Create a new one for "
                f"{credentials.pass_type_identifier} in the Apple Developer portal and export it."
            )
        if credentials.expires_at - now < EXPIRY_WARNING:
            log.warning(
                "the pass certificate for %s expires in %d days (%s); renew it in the Apple "
                "Developer portal and add it (as %s_2, ... or in place of %s) before then, "
                "or passes stop updating",
                credentials.pass_type_identifier,
                credentials.days_to_expiry(now),
                credentials.expires_at.date().isoformat(),
                CERTIFICATE_PREFIX,
                credentials.variable,
            )
    return certificates


def load_credentials(config: Mapping[str, Any]) -> PassCredentials | None:
    """The certificate of a configuration with one pass type, None when none is set."""
    in_use = list(load_pass_certificates(config).in_use.values())
    if len(in_use) > 1:
        raise CredentialsError("several pass types are configured; use load_pass_certificates")
    return in_use[0] if in_use else None


def _read_source(config: Mapping[str, Any], name: str) -> bytes | None:
    """The bytes of `name` (a path) or `name`_BASE64 (the content), or None."""
    path = config.get(name)
    encoded = config.get(f"{name}_BASE64")
    if path and encoded:
        raise CredentialsError(f"Both {name} and {name}_BASE64 are set. Keep one of them.")
    if path:
        try:
            return Path(path).read_bytes()
        except OSError as error:
            raise CredentialsError(
                f"{name} points to {path}, which cannot be read ({error.strerror}). "
                f"Set {name} to the path of the file, or put its base64 in {name}_BASE64."
            ) from None
    if encoded:
        try:
            return base64.b64decode("".join(str(encoded).split()), validate=True)
        except (binascii.Error, ValueError):
            raise CredentialsError(
                f"{name}_BASE64 is not valid base64. Make it with `base64 -w0 FILE` "
                f"(on macOS `base64 -i FILE`) and paste the whole output."
            ) from None
    return None


def _load_pass_certificate(
    name: str, data: bytes, password: str | None
) -> tuple[SigningKey, x509.Certificate]:
    if b"-----BEGIN" in data:
        return _load_pem(name, data, password)
    return _load_p12(name, data, password)


def _load_p12(name: str, data: bytes, password: str | None) -> tuple[SigningKey, x509.Certificate]:
    # Keychain exports may use RC2/3DES; cryptography's bundled OpenSSL loads its legacy
    # provider for these, so no extra step is needed here.
    attempts = [password.encode()] if password else [None, b""]
    last_error: Exception | None = None
    for attempt in attempts:
        try:
            key, certificate, _ = pkcs12.load_key_and_certificates(data, attempt)
        except ValueError as error:
            last_error = error
            continue
        if key is None or certificate is None:
            raise CredentialsError(
                f"{name} holds no private key and certificate pair. In Keychain "
                "Access, expand the Pass Type ID certificate, select it together with its "
                "private key, and export both as one .p12."
            )
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise CredentialsError(f"{name} holds a key that is neither RSA nor EC.")
        return key, certificate
    hint = (
        f"{name}_PASSWORD is wrong"
        if password
        else f"the .p12 needs a password: set {name}_PASSWORD"
    )
    log.debug("p12 load failed: %s", type(last_error).__name__)
    raise CredentialsError(
        f"{name} could not be opened as a .p12: {hint}, or the file is not a "
        "PKCS#12 export. Export the Pass Type ID certificate with its private key from "
        "Keychain Access (File > Export Items, format Personal Information Exchange .p12)."
    )


def _load_pem(name: str, data: bytes, password: str | None) -> tuple[SigningKey, x509.Certificate]:
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        certificates = []
    if not certificates:
        raise CredentialsError(
            f"{name} is a PEM file without a certificate. Put the Pass Type ID "
            "certificate and its private key in the same PEM file."
        )
    try:
        key = serialization.load_pem_private_key(data, password.encode() if password else None)
    except TypeError:
        raise CredentialsError(
            f"The private key in {name} is encrypted: set {name}_PASSWORD."
        ) from None
    except ValueError:
        raise CredentialsError(
            f"The private key in {name} could not be read: it is missing, or "
            f"{name}_PASSWORD is wrong. Put the key (BEGIN PRIVATE KEY) and the "
            "certificate in one PEM file."
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise CredentialsError(f"{name} holds a key that is neither RSA nor EC.")
    # A PEM may carry the WWDR or other certificates too: take the one the key belongs to.
    for certificate in certificates:
        if _same_public_key(certificate, key):
            return key, certificate
    return key, certificates[0]


def load_certificate(data: bytes) -> x509.Certificate:
    """A certificate in PEM or DER, as Apple and Keychain hand them out; ValueError if not."""
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


def load_certificates(data: bytes) -> list[x509.Certificate]:
    """Every certificate in a PEM bundle, or in DER certificates put back to back (`cat
    AppleWWDRCAG4.cer AppleWWDRCAG3.cer`); ValueError when there is none or junk."""
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificates(data)
    certificates = []
    while data:
        length = _der_length(data)
        certificates.append(x509.load_der_x509_certificate(data[:length]))
        data = data[length:]
    if not certificates:
        raise ValueError("no certificate")
    return certificates


def _der_length(data: bytes) -> int:
    """The length, header included, of the DER SEQUENCE at the start of `data`."""
    if len(data) < 2 or data[0] != 0x30:
        raise ValueError("not a DER certificate")
    if data[1] < 0x80:
        return 2 + data[1]
    count = data[1] & 0x7F
    if not 1 <= count <= 4 or len(data) < 2 + count:
        raise ValueError("bad DER length")
    length = 2 + count + int.from_bytes(data[2 : 2 + count], "big")
    if length > len(data):
        raise ValueError("truncated DER certificate")
    return length


def _load_wwdrs(data: bytes) -> list[x509.Certificate]:
    try:
        return load_certificates(data)
    except ValueError:
        raise CredentialsError(
            "WWDR_CERTIFICATE is not a certificate (PEM or DER). Download AppleWWDRCAG4.cer "
            f"from {APPLE_CA_URL} and point WWDR_CERTIFICATE at it."
        ) from None


def _same_public_key(certificate: x509.Certificate, key: SigningKey) -> bool:
    encoding = serialization.Encoding.DER
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    return certificate.public_key().public_bytes(encoding, spki) == key.public_key().public_bytes(
        encoding, spki
    )


def issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether `issuer` signed `certificate`, SHA-1 signatures of older Apple certificates too."""
    try:
        if certificate.signature_algorithm_oid not in _SHA1_SIGNATURES:
            certificate.verify_directly_issued_by(issuer)
            return True
        # cryptography's verify_directly_issued_by refuses sha1WithRSA, which Apple used for
        # every pass certificate until about 2020 (and for WWDR G1): check the name and the
        # signature with the issuer's public key instead.
        if certificate.issuer != issuer.subject:
            return False
        key = issuer.public_key()
        signature, signed = certificate.signature, certificate.tbs_certificate_bytes
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA1())
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, signed, ec.ECDSA(hashes.SHA1()))
        else:
            return False
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


_SHA1_SIGNATURES = frozenset(
    {SignatureAlgorithmOID.RSA_WITH_SHA1, SignatureAlgorithmOID.ECDSA_WITH_SHA1}
)


def subject_value(certificate: x509.Certificate, oid: x509.ObjectIdentifier) -> str | None:
    values = certificate.subject.get_attributes_for_oid(oid)
    return str(values[0].value) if values else None


def _check(
    name: str, key: SigningKey, certificate: x509.Certificate, wwdrs: list[x509.Certificate]
) -> PassCredentials:
    if not _same_public_key(certificate, key):
        raise CredentialsError(
            f"The private key in {name} does not belong to its certificate. Export "
            "the certificate again together with its own private key from Keychain Access."
        )
    pass_type_identifier = subject_value(certificate, NameOID.USER_ID)
    team_identifier = subject_value(certificate, NameOID.ORGANIZATIONAL_UNIT_NAME)
    if not pass_type_identifier or not pass_type_identifier.startswith("pass."):
        raise CredentialsError(
            f"{name} is not a Pass Type ID certificate (its subject has no UID "
            "starting with 'pass.'). In the Apple Developer portal create a Pass Type ID, "
            "make its certificate, and export that one."
        )
    if not team_identifier:
        raise CredentialsError(
            f"{name} has no team identifier (subject OU). Use the certificate the "
            "Apple Developer portal made for your Pass Type ID."
        )
    wwdr = _issuing_wwdr(name, certificate, wwdrs, datetime.now(UTC))
    return PassCredentials(certificate, key, wwdr, pass_type_identifier, team_identifier, name)


def _issuing_wwdr(
    name: str, certificate: x509.Certificate, wwdrs: list[x509.Certificate], now: datetime
) -> x509.Certificate:
    """The WWDR intermediate among those given that issued the pass certificate.

    Apple has several current intermediates (G3, G4, ...), each issuing some Pass Type ID
    certificates, so a server may be given them all and must send the right one with the
    signature: Wallet refuses a pass whose chain does not lead to Apple's root.
    """
    issuers = [wwdr for wwdr in wwdrs if issued_by(certificate, wwdr)]
    download = _wwdr_download(certificate)
    if not issuers:
        given = "; ".join(_describe(wwdr) for wwdr in wwdrs)
        raise CredentialsError(
            f"No certificate in WWDR_CERTIFICATE issued the certificate in {name} "
            f"(it was issued by {_describe_name(certificate.issuer)}; WWDR_CERTIFICATE holds "
            f"{given}). {download}"
        )
    valid = [wwdr for wwdr in issuers if wwdr.not_valid_after_utc >= now]
    if not valid:
        expired = max(wwdr.not_valid_after_utc for wwdr in issuers)
        raise CredentialsError(
            f"The WWDR intermediate in WWDR_CERTIFICATE that issued the pass certificate "
            f"expired on {expired.date().isoformat()} ({name} needs it). {download}"
        )
    # The same intermediate renewed (same name and key) may be given twice: keep the newest.
    wwdr = max(valid, key=lambda candidate: candidate.not_valid_after_utc)
    if len(wwdrs) > 1:
        log.info(
            "WWDR intermediate: %s, valid until %s (chosen from %d given)",
            _describe(wwdr),
            wwdr.not_valid_after_utc.date().isoformat(),
            len(wwdrs),
        )
    return wwdr


def _wwdr_download(certificate: x509.Certificate) -> str:
    """Which file to download from Apple for the intermediate that issued `certificate`."""
    units = certificate.issuer.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    generation = next((str(u.value) for u in units if re.fullmatch(r"G\d+", str(u.value))), None)
    if generation:
        return (
            f"Download AppleWWDRCA{generation}.cer from {APPLE_CA_URL} and add it to "
            "WWDR_CERTIFICATE (several intermediates may be given, one after the other)."
        )
    return (
        f"Download the intermediate named above from {APPLE_CA_URL} (Pass Type ID certificates "
        "made today are issued by G4: AppleWWDRCAG4.cer) and add it to WWDR_CERTIFICATE."
    )


def _describe(certificate: x509.Certificate) -> str:
    return _describe_name(certificate.subject)


def _describe_name(name: x509.Name) -> str:
    common = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    units = name.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    label = repr(str(common[0].value)) if common else repr(name.rfc4514_string())
    return f"{label} ({units[0].value})" if units else label

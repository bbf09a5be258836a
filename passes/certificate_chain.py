"""Certificate chains shaped like Apple's: root -> WWDR intermediate -> Pass Type ID.

Passes are signed with a certificate Apple issues. Without an Apple account, development
(and the tests) sign with a chain of the same shape made here (subject UID = pass type
identifier, OU = team identifier, issued by a "WWDR" intermediate): every part of the
service works with it, but iPhones refuse its passes because Apple's root did not issue it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from passes.credentials import EXPIRY_WARNING, PassCredentials, load_credentials

PASS_TYPE_IDENTIFIER = "pass.com.example.test"
TEAM_IDENTIFIER = "ABCDE12345"
FAKE_APPLE = "Fake Apple Inc."

# The development chain: what `python app.py` signs with when no certificate is configured.
DEVELOPMENT_PASS_TYPE_IDENTIFIER = "pass.dev.local"
DEVELOPMENT_TEAM_IDENTIFIER = "DEVTEAM000"  # ten capitals or digits, as Apple's are
DEVELOPMENT_ISSUER = "Pass server development chain (not Apple)"
DEVELOPMENT_LIFETIME = dt.timedelta(days=5 * 365)
DEVELOPMENT_FILES = ("root.pem", "wwdr.pem", "pass.pem")


@dataclass
class Issued:
    """A certificate with its private key."""

    cert: x509.Certificate
    key: rsa.RSAPrivateKey

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self, password: bytes | None = None) -> bytes:
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password)
            if password
            else serialization.NoEncryption()
        )
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )


@dataclass
class FakeAppleChain:
    root: Issued
    wwdr: Issued
    pass_cert: Issued
    pass_type_identifier: str
    team_identifier: str

    def write(self, folder: Path, password: bytes = b"secret") -> dict[str, Path]:
        """Write the chain as the files a user would have; return their paths."""
        folder.mkdir(parents=True, exist_ok=True)
        paths = {
            "root": folder / "root.pem",
            "wwdr": folder / "wwdr.pem",
            "wwdr_der": folder / "wwdr.cer",
            "pass_pem": folder / "pass.pem",
            "pass_p12": folder / "pass.p12",
        }
        paths["root"].write_bytes(self.root.cert_pem())
        paths["wwdr"].write_bytes(self.wwdr.cert_pem())
        paths["wwdr_der"].write_bytes(self.wwdr.cert.public_bytes(serialization.Encoding.DER))
        paths["pass_pem"].write_bytes(self.pass_cert.key_pem() + self.pass_cert.cert_pem())
        paths["pass_p12"].write_bytes(
            pkcs12.serialize_key_and_certificates(
                b"Pass Type ID",
                self.pass_cert.key,
                self.pass_cert.cert,
                None,
                serialization.BestAvailableEncryption(password),
            )
        )
        return paths


def subject_name(common_name: str, **extra: str) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if "uid" in extra:
        attributes.append(x509.NameAttribute(NameOID.USER_ID, extra["uid"]))
    if "ou" in extra:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, extra["ou"]))
    attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, extra.get("o", "Example")))
    return x509.Name(attributes)


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def issue(
    subject: x509.Name,
    issuer: Issued | None,
    *,
    ca: bool,
    key: rsa.RSAPrivateKey | None = None,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    extended_usages: list[x509.ObjectIdentifier] | None = None,
    san: list[str] | None = None,
) -> Issued:
    """Issue a certificate signed by `issuer` (self-signed when None)."""
    key = key or new_key()
    now = dt.datetime.now(dt.UTC)
    not_before = not_before or now - dt.timedelta(days=1)
    not_after = not_after or now + dt.timedelta(days=365)
    signer_key = issuer.key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
    if extended_usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(extended_usages), critical=False)
    if san:
        names: list[x509.GeneralName] = []
        for host in san:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return Issued(builder.sign(signer_key, hashes.SHA256()), key)


def make_wwdr(
    root: Issued, generation: str, *, organization: str = FAKE_APPLE, **dates: dt.datetime
) -> Issued:
    """A WWDR intermediate of the given generation (G3, G4, ...) under `root`; Apple runs
    several at once, and each issues some Pass Type ID certificates."""
    return issue(
        subject_name(
            "Fake Apple Worldwide Developer Relations Certification Authority",
            ou=generation,
            o=organization,
        ),
        root,
        ca=True,
        **dates,
    )


def make_chain(
    pass_type_identifier: str = PASS_TYPE_IDENTIFIER,
    team_identifier: str = TEAM_IDENTIFIER,
    *,
    not_after: dt.datetime | None = None,
    not_before: dt.datetime | None = None,
    ca_not_after: dt.datetime | None = None,
    organization: str = FAKE_APPLE,
) -> FakeAppleChain:
    """A root, a WWDR intermediate and a Pass Type ID certificate shaped like Apple's
    (`not_before`/`not_after` bound the pass certificate, `ca_not_after` the other two)."""
    ca_dates = {"not_after": ca_not_after} if ca_not_after else {}
    root = issue(subject_name("Fake Apple Root CA", o=organization), None, ca=True, **ca_dates)
    wwdr = make_wwdr(root, "G4", organization=organization, **ca_dates)
    pass_cert = issue_pass_certificate(
        wwdr, pass_type_identifier, team_identifier, not_before=not_before, not_after=not_after
    )
    return FakeAppleChain(root, wwdr, pass_cert, pass_type_identifier, team_identifier)


def issue_pass_certificate(
    wwdr: Issued,
    pass_type_identifier: str,
    team_identifier: str = TEAM_IDENTIFIER,
    *,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
) -> Issued:
    """A Pass Type ID certificate issued by `wwdr`: another pass type of the same team, or
    the same type renewed (with another expiry)."""
    return issue(
        subject_name(
            f"Pass Type ID: {pass_type_identifier}",
            uid=pass_type_identifier,
            ou=team_identifier,
            o="Example Shop",
        ),
        wwdr,
        ca=False,
        not_before=not_before,
        not_after=not_after,
        extended_usages=[ExtendedKeyUsageOID.CLIENT_AUTH],
    )


def development_credentials(folder: Path) -> tuple[PassCredentials, bool]:
    """The development chain kept in `folder`, made on first use (and again when its
    certificate is about to expire); True when it was made now.

    Kept, not made at every start: a pass added to Wallet keeps the certificate it was
    signed with, and the link between a device and its passes should survive restarts.
    """
    made = False
    if not _usable(folder):
        _make_development_chain(folder, replace=folder.exists())
        made = True
    credentials = load_credentials(
        {"PASS_CERTIFICATE": folder / "pass.pem", "WWDR_CERTIFICATE": folder / "wwdr.pem"}
    )
    assert credentials is not None  # both sources are given
    return credentials, made


def _usable(folder: Path) -> bool:
    if not all((folder / name).is_file() for name in DEVELOPMENT_FILES):
        return False
    try:
        certificate = x509.load_pem_x509_certificate((folder / "pass.pem").read_bytes())
    except ValueError:
        return False
    return certificate.not_valid_after_utc - dt.datetime.now(dt.UTC) > EXPIRY_WARNING


def _make_development_chain(folder: Path, *, replace: bool) -> None:
    now = dt.datetime.now(dt.UTC)
    chain = make_chain(
        DEVELOPMENT_PASS_TYPE_IDENTIFIER,
        DEVELOPMENT_TEAM_IDENTIFIER,
        not_after=now + DEVELOPMENT_LIFETIME,
        ca_not_after=now + DEVELOPMENT_LIFETIME + dt.timedelta(days=1),
        organization=DEVELOPMENT_ISSUER,
    )
    folder.parent.mkdir(parents=True, exist_ok=True)
    # Written in a scratch folder and renamed into place, so that two processes starting
    # at once never mix the files of two chains: the first rename wins, the other's goes.
    scratch = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    (scratch / "root.pem").write_bytes(chain.root.cert_pem())
    (scratch / "wwdr.pem").write_bytes(chain.wwdr.cert_pem())
    key_file = scratch / "pass.pem"
    key_file.touch(mode=0o600)
    key_file.write_bytes(chain.pass_cert.key_pem() + chain.pass_cert.cert_pem())
    if replace:  # an expiring or broken chain: replaced whole
        shutil.rmtree(folder, ignore_errors=True)
    try:
        os.rename(scratch, folder)
    except OSError:
        shutil.rmtree(scratch)
        if not _usable(folder):
            raise

"""A fake Apple certificate chain for tests: root -> WWDR -> Pass Type ID certificate.

Real passes are signed with a certificate Apple issues; tests need the same shape
(subject UID = pass type identifier, OU = team identifier, issued by a "WWDR"
intermediate) without an Apple account.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PASS_TYPE_IDENTIFIER = "pass.com.example.test"
TEAM_IDENTIFIER = "ABCDE12345"


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


def _name(common_name: str, **extra: str) -> x509.Name:
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


# AlgorithmIdentifier DER of sha256WithRSAEncryption and sha1WithRSAEncryption (NULL
# parameters); they differ in the OID's last byte only, so swapping keeps every length.
_SHA256_WITH_RSA = bytes.fromhex("06092a864886f70d01010b0500")
_SHA1_WITH_RSA = bytes.fromhex("06092a864886f70d0101050500")


def signed_with_sha1(issued: Issued, issuer: Issued) -> Issued:
    """The same certificate signed with sha1WithRSA, as Apple signed pass certificates until
    about 2020. cryptography no longer signs certificates with SHA-1, so the SHA-256 one is
    rewritten: both algorithm identifiers swapped, the signature replaced."""
    der = issued.cert.public_bytes(serialization.Encoding.DER)
    assert der.count(_SHA256_WITH_RSA) == 2, "expected a SHA-256 RSA certificate"
    der = der.replace(_SHA256_WITH_RSA, _SHA1_WITH_RSA)
    tbs = x509.load_der_x509_certificate(der).tbs_certificate_bytes
    signature = issuer.key.sign(tbs, padding.PKCS1v15(), hashes.SHA1())
    # The certificate ends with the signature BIT STRING, whose length does not change.
    der = der[: -len(signature)] + signature
    return Issued(x509.load_der_x509_certificate(der), issued.key)


def make_wwdr(root: Issued, generation: str, **dates: dt.datetime) -> Issued:
    """A WWDR intermediate of the given generation (G3, G4, ...) under `root`; Apple runs
    several at once, and each issues some Pass Type ID certificates."""
    return issue(
        _name(
            "Fake Apple Worldwide Developer Relations Certification Authority",
            ou=generation,
            o="Fake Apple Inc.",
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
) -> FakeAppleChain:
    """A root, a WWDR intermediate and a Pass Type ID certificate shaped like Apple's."""
    root = issue(_name("Fake Apple Root CA", o="Fake Apple Inc."), None, ca=True)
    wwdr = make_wwdr(root, "G4")
    pass_cert = issue(
        _name(
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
    return FakeAppleChain(root, wwdr, pass_cert, pass_type_identifier, team_identifier)


def make_server_certificate(chain: FakeAppleChain, hosts: list[str]) -> Issued:
    """A TLS server certificate for a local stand-in of api.push.apple.com."""
    return issue(
        _name(hosts[0], o="Fake Apple Inc."),
        chain.root,
        ca=False,
        extended_usages=[ExtendedKeyUsageOID.SERVER_AUTH],
        san=hosts,
    )

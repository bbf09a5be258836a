"""The fake Apple chain of the tests (made by passes/certificate_chain.py, as the
development chain is), and what only tests need: SHA-1 signed certificates and a TLS
server certificate for the local stand-in of APNs."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.x509.oid import ExtendedKeyUsageOID

from passes.certificate_chain import (
    FakeAppleChain,
    Issued,
    issue,
    issue_pass_certificate,
    make_chain,
    make_wwdr,
    subject_name,
)

__all__ = [
    "FakeAppleChain",
    "Issued",
    "issue",
    "issue_pass_certificate",
    "make_chain",
    "make_server_certificate",
    "make_wwdr",
    "signed_with_sha1",
]


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


def make_server_certificate(chain: FakeAppleChain, hosts: list[str]) -> Issued:
    """A TLS server certificate for a local stand-in of api.push.apple.com."""
    return issue(
        subject_name(hosts[0], o="Fake Apple Inc."),
        chain.root,
        ca=False,
        extended_usages=[ExtendedKeyUsageOID.SERVER_AUTH],
        san=hosts,
    )

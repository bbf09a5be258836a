"""Check a .pkpass file the way Wallet would, and explain every problem found.

What is a signed package's own is checked here: the zip, the manifest, the signature and the
certificate chain. What the pass contains is checked by passes/validation.py, the rules
applied before this server signs anything, so both always say the same.

Runs on any file: nothing here trusts the input, and bad input becomes failed
checks rather than exceptions.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import NameOID

from passes import images
from passes.credentials import APPLE_CA_URL, EXPIRY_WARNING, issued_by, subject_value

# What a pass may contain is the validation module's to say: the same rules as before signing.
from passes.validation import STYLES, Problem, unsafe_path, validate_package

SIGNING_FILES = ("manifest.json", "signature")
REQUIRED_FILES = ("pass.json", *SIGNING_FILES)
# Real passes are a few hundred KB; the limit only stops a zip bomb from eating memory.
MAX_UNCOMPRESSED = 64 * 1024 * 1024
PASS_TYPE_ID_MARKER = x509.ObjectIdentifier("1.2.840.113635.100.6.1.16")
WWDR_G1_CN = "Apple Worldwide Developer Relations Certification Authority"
WWDR_G1_EXPIRY = date(2023, 2, 7)

# DER identifier octets used by CMS.
_INTEGER, _OCTET_STRING, _OID, _SEQUENCE, _SET = 0x02, 0x04, 0x06, 0x30, 0x31
_UTC_TIME, _GENERALIZED_TIME = 0x17, 0x18
_CONTEXT_0, _CONTEXT_1, _CONTEXT_0_PRIMITIVE = 0xA0, 0xA1, 0x80
_MAX_DEPTH = 32

_SIGNED_DATA = "1.2.840.113549.1.7.2"
_DATA = "1.2.840.113549.1.7.1"
_CONTENT_TYPE = "1.2.840.113549.1.9.3"
_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
_SIGNING_TIME = "1.2.840.113549.1.9.5"
_DIGESTS: dict[str, type[hashes.HashAlgorithm]] = {
    "1.3.14.3.2.26": hashes.SHA1,
    "2.16.840.1.101.3.4.2.4": hashes.SHA224,
    "2.16.840.1.101.3.4.2.1": hashes.SHA256,
    "2.16.840.1.101.3.4.2.2": hashes.SHA384,
    "2.16.840.1.101.3.4.2.3": hashes.SHA512,
}
# CMS signers may name the bare key algorithm or a hash-with-key one; either way the
# hash that counts is the SignerInfo's digestAlgorithm (RFC 5652, 5.4).
_SIGNATURE_FAMILIES = {
    "1.2.840.113549.1.1.1": "RSA",
    "1.2.840.113549.1.1.5": "RSA",
    "1.2.840.113549.1.1.11": "RSA",
    "1.2.840.113549.1.1.12": "RSA",
    "1.2.840.113549.1.1.13": "RSA",
    "1.2.840.113549.1.1.14": "RSA",
    "1.2.840.10045.2.1": "ECDSA",
    "1.2.840.10045.4.1": "ECDSA",
    "1.2.840.10045.4.3.1": "ECDSA",
    "1.2.840.10045.4.3.2": "ECDSA",
    "1.2.840.10045.4.3.3": "ECDSA",
    "1.2.840.10045.4.3.4": "ECDSA",
}


@dataclass(frozen=True)
class Check:
    """The outcome of one check; `detail` is one line and says what to do on failure."""

    name: str
    ok: bool
    detail: str
    warning: bool = False


@dataclass
class VerifyReport:
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.ok for check in self.checks)

    def render(self) -> str:
        """One line per check, then a summary line."""
        width = max((len(check.name) for check in self.checks), default=0)
        lines = [f"{_label(check)}  {check.name:<{width}}  {check.detail}" for check in self.checks]
        failed = sum(not check.ok for check in self.checks)
        warned = sum(check.ok and check.warning for check in self.checks)
        lines.append(
            f"Result: {'PASS' if self.ok else 'FAIL'} ({failed} failed, {warned} warnings)"
        )
        return "\n".join(lines)


def _label(check: Check) -> str:
    if not check.ok:
        return "FAIL"
    return "WARN" if check.warning else "PASS"


def verify_pkpass(
    data: bytes,
    *,
    trusted_roots: Sequence[x509.Certificate] | None = None,
    now: datetime | None = None,
) -> VerifyReport:
    """Check a .pkpass archive's layout, manifest, signature, certificates and contents."""
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    files, checks = _check_zip(data)
    checks += _check_manifest(files)
    signer, certificates, signature_checks = _check_signature(files)
    checks += signature_checks
    checks += _check_chain(signer, certificates, trusted_roots, now)
    pass_json = _read_pass_json(files)
    contents = _check_contents(files, pass_json)
    checks += contents["pass.json"]
    checks += _check_identifiers(pass_json, signer)
    checks += contents["images"]
    checks += contents["web service"]
    return VerifyReport(checks)


def _results(name: str, problems: list[str], warnings: list[str], ok_detail: str) -> list[Check]:
    """A failed check per problem, a warning per warning, and one pass when nothing failed."""
    checks = [Check(name, False, problem) for problem in problems]
    if not problems:
        checks.append(Check(name, True, ok_detail))
    checks += [Check(name, True, warning, warning=True) for warning in warnings]
    return checks


def _not_checked(name: str, reason: str) -> list[Check]:
    # A check that could not run is not a pass: the report must never look better than the file.
    return [Check(name, False, f"not checked: {reason}")]


# --- zip layout -----------------------------------------------------------------------------


def _check_zip(data: bytes) -> tuple[dict[str, bytes] | None, list[Check]]:
    name = "zip layout"
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            entries = [info for info in archive.infolist() if not info.is_dir()]
            if sum(info.file_size for info in entries) > MAX_UNCOMPRESSED:
                limit = MAX_UNCOMPRESSED // (1024 * 1024)
                return None, _results(name, [f"unpacks to more than {limit} MB"], [], "")
            files = {info.filename: archive.read(info) for info in entries}
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError) as error:
        problem = f"not a readable zip archive ({error}); a .pkpass is a zip of the pass files"
        return None, _results(name, [problem], [], "")
    except (NotImplementedError, RuntimeError, ValueError) as error:
        # Unsupported compression methods and encrypted members land here.
        problem = f"zip cannot be unpacked ({error}); use plain deflate, no encryption"
        return None, _results(name, [problem], [], "")

    problems = [
        f"unsafe file name {path!r} (absolute or '..' path); remove it"
        for path in files
        if unsafe_path(path)
    ]
    counts = Counter(info.filename for info in entries)
    problems += [
        f"{path!r} appears {count} times in the zip; rebuild the archive"
        for path, count in counts.items()
        if count > 1
    ]
    for required in REQUIRED_FILES:
        if required in files:
            continue
        nested = sorted(path for path in files if path.endswith("/" + required))
        if nested:
            folder = nested[0][: -len(required)]
            problems.append(
                f"{required} is inside {folder!r}, not at the top level; "
                "zip the folder's contents, not the folder itself"
            )
        else:
            problems.append(f"{required} is missing from the top level of the zip")
    ok_detail = f"valid zip with {len(files)} files; {', '.join(REQUIRED_FILES)} at the top level"
    return files, _results(name, problems, [], ok_detail)


# --- manifest -------------------------------------------------------------------------------


def _check_manifest(files: dict[str, bytes] | None) -> list[Check]:
    name = "manifest"
    if files is None:
        return _not_checked(name, "the zip could not be read")
    if "manifest.json" not in files:
        return _not_checked(name, "manifest.json is missing")
    try:
        manifest = json.loads(files["manifest.json"])
    except ValueError as error:
        return _results(name, [f"manifest.json is not valid JSON ({error})"], [], "")
    if not isinstance(manifest, dict) or not all(isinstance(v, str) for v in manifest.values()):
        problem = "manifest.json must be a JSON object mapping each file name to its SHA-1 hex"
        return _results(name, [problem], [], "")

    problems = []
    for path in sorted(manifest):
        if path in SIGNING_FILES:
            problems.append(f"manifest.json must not list {path!r}; remove it and sign again")
        elif path not in files:
            problems.append(f"{path!r} is listed in manifest.json but missing from the zip")
        elif hashlib.sha1(files[path]).hexdigest() != manifest[path].lower():
            problems.append(
                f"{path!r} does not match its SHA-1 in manifest.json (changed after signing?); "
                "rebuild the manifest and sign again"
            )
    problems += [
        f"{path!r} is in the zip but not listed in manifest.json; remove it or rebuild the manifest"
        for path in sorted(files)
        if path not in manifest and path not in SIGNING_FILES
    ]
    ok_detail = f"all {len(manifest)} files listed with matching SHA-1"
    return _results(name, problems, [], ok_detail)


# --- signature: a minimal DER reader for CMS SignedData -------------------------------------


class _DerError(ValueError):
    pass


@dataclass(frozen=True)
class _Tlv:
    tag: int
    value: bytes  # contents octets (for indefinite lengths: without the end marker)
    raw: bytes  # the whole encoding, identifier and length included


def _read_tlv(data: bytes, pos: int, depth: int = 0) -> tuple[_Tlv, int]:
    """Read one element at `pos`; return it and the position after it."""
    if pos + 2 > len(data):
        raise _DerError("truncated data")
    tag, first = data[pos], data[pos + 1]
    if tag & 0x1F == 0x1F:
        raise _DerError("multi-byte tags are not used by CMS")
    start = pos + 2
    if first == 0x80:
        # Indefinite length is BER, not DER, but some signers (e.g. Java ones) emit it
        # for the outer structures, and Wallet accepts such passes.
        if not tag & 0x20 or depth >= _MAX_DEPTH:
            raise _DerError("bad indefinite-length element")
        end = start
        while data[end : end + 2] != b"\x00\x00":
            _, end = _read_tlv(data, end, depth + 1)
        return _Tlv(tag, data[start:end], data[pos : end + 2]), end + 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count > 4 or start + count > len(data):
            raise _DerError("bad length")
        length = int.from_bytes(data[start : start + count], "big")
        start += count
    end = start + length
    if end > len(data):
        raise _DerError("truncated data")
    return _Tlv(tag, data[start:end], data[pos:end]), end


def _parse(data: bytes) -> _Tlv:
    tlv, end = _read_tlv(data, 0)
    if end != len(data):
        raise _DerError("trailing bytes after the structure")
    return tlv


def _children(tlv: _Tlv, minimum: int = 0) -> list[_Tlv]:
    if not tlv.tag & 0x20:
        raise _DerError(f"expected a constructed element, got tag {tlv.tag:#04x}")
    children, pos = [], 0
    while pos < len(tlv.value):
        child, pos = _read_tlv(tlv.value, pos)
        children.append(child)
    if len(children) < minimum:
        raise _DerError(f"expected at least {minimum} elements, got {len(children)}")
    return children


def _expect(tlv: _Tlv, tag: int) -> _Tlv:
    if tlv.tag != tag:
        raise _DerError(f"expected tag {tag:#04x}, got {tlv.tag:#04x}")
    return tlv


def _oid(tlv: _Tlv) -> str:
    body = _expect(tlv, _OID).value
    if not body or body[-1] & 0x80:
        raise _DerError("malformed object identifier")
    arcs, value = [], 0
    for byte in body:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(arc) for arc in [first, arcs[0] - 40 * first, *arcs[1:]])


def _algorithm(tlv: _Tlv) -> str:
    return _oid(_children(_expect(tlv, _SEQUENCE), 1)[0])


def _time(tlv: _Tlv) -> datetime:
    text = tlv.value.decode("ascii").rstrip("Z").split(".")[0]
    if tlv.tag == _UTC_TIME:
        # RFC 5280: two-digit years 50-99 are 19xx.
        text = ("19" if int(text[:2]) >= 50 else "20") + text
    elif tlv.tag != _GENERALIZED_TIME:
        raise _DerError("signing time is not a UTCTime or GeneralizedTime")
    return datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=UTC)


@dataclass(frozen=True)
class _SignerInfo:
    sid: _Tlv
    digest_oid: str
    signed_attrs: _Tlv | None
    signature_oid: str
    signature: bytes


@dataclass(frozen=True)
class _SignedData:
    content_type: str
    embedded_content: bool
    certificates: list[x509.Certificate]
    signers: list[_SignerInfo]


def _parse_signed_data(der: bytes) -> _SignedData:
    """Read the parts of a CMS ContentInfo/SignedData (RFC 5652) that verification needs."""
    content_type, content = _children(_expect(_parse(der), _SEQUENCE), 2)[:2]
    if _oid(content_type) != _SIGNED_DATA:
        raise _DerError("the content is not SignedData")
    fields = _children(_expect(_children(_expect(content, _CONTEXT_0), 1)[0], _SEQUENCE), 4)
    _expect(fields[0], _INTEGER)
    _expect(fields[1], _SET)
    encapsulated = _children(_expect(fields[2], _SEQUENCE), 1)
    rest = fields[3:]
    certificates = []
    if rest[0].tag == _CONTEXT_0:
        # Only plain X.509 certificates matter here; other choices (attribute certs) are skipped.
        for child in _children(rest.pop(0)):
            if child.tag == _SEQUENCE:
                certificates.append(_load_certificate(child.raw))
    if rest and rest[0].tag == _CONTEXT_1:
        rest.pop(0)  # CRLs
    if len(rest) != 1:
        raise _DerError("signerInfos missing at the end of SignedData")
    return _SignedData(
        content_type=_oid(encapsulated[0]),
        embedded_content=len(encapsulated) > 1,
        certificates=certificates,
        signers=[_parse_signer_info(child) for child in _children(_expect(rest[0], _SET))],
    )


def _load_certificate(der: bytes) -> x509.Certificate:
    """Load a certificate and read the fields used later, so a bad one fails here, once."""
    try:
        cert = x509.load_der_x509_certificate(der)
        # cryptography decodes some fields lazily; touch them while errors are still expected.
        _ = (cert.subject, cert.issuer, cert.extensions, cert.public_key())
        _ = (cert.serial_number, cert.not_valid_before_utc, cert.not_valid_after_utc)
    except Exception as error:
        # Malformed certificates raise many unrelated types (InvalidVersion,
        # DuplicateExtension, UnsupportedAlgorithm, ValueError...); all mean "unreadable".
        raise _DerError(f"an included certificate cannot be read ({error})") from error
    return cert


def _parse_signer_info(tlv: _Tlv) -> _SignerInfo:
    fields = _children(_expect(tlv, _SEQUENCE), 5)
    _expect(fields[0], _INTEGER)
    signed_attrs = fields[3] if fields[3].tag == _CONTEXT_0 else None
    index = 4 if signed_attrs else 3
    if len(fields) < index + 2:
        raise _DerError("SignerInfo is incomplete")
    return _SignerInfo(
        sid=fields[1],
        digest_oid=_algorithm(fields[2]),
        signed_attrs=signed_attrs,
        signature_oid=_algorithm(fields[index]),
        signature=_expect(fields[index + 1], _OCTET_STRING).value,
    )


def _attributes(signed_attrs: _Tlv) -> dict[str, list[_Tlv]]:
    attributes: dict[str, list[_Tlv]] = {}
    for attribute in _children(signed_attrs):
        attribute_type, values = _children(_expect(attribute, _SEQUENCE), 2)[:2]
        oid = _oid(attribute_type)
        if oid in attributes:
            raise _DerError(f"signed attribute {oid} appears twice")
        attributes[oid] = _children(_expect(values, _SET))
    return attributes


def _find_signer(sid: _Tlv, certificates: list[x509.Certificate]) -> x509.Certificate | None:
    """The certificate named by a SignerIdentifier: issuer and serial, or key identifier."""
    if sid.tag == _SEQUENCE:
        issuer, serial = _children(sid, 2)[:2]
        number = int.from_bytes(_expect(serial, _INTEGER).value, "big", signed=True)
        for cert in certificates:
            if cert.serial_number == number and _issuer_der(cert) == issuer.raw:
                return cert
    elif sid.tag == _CONTEXT_0_PRIMITIVE:
        for cert in certificates:
            try:
                key_id = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
            except x509.ExtensionNotFound:
                continue
            if key_id.value.digest == sid.value:
                return cert
    return None


def _issuer_der(cert: x509.Certificate) -> bytes:
    # Compare the issuer as encoded, not re-encoded, so odd string types still match.
    fields = _children(_parse(cert.tbs_certificate_bytes), 4)
    offset = 1 if fields[0].tag == _CONTEXT_0 else 0
    return fields[offset + 2].raw


def _check_signature(
    files: dict[str, bytes] | None,
) -> tuple[x509.Certificate | None, list[x509.Certificate], list[Check]]:
    name = "signature"
    if files is None:
        return None, [], _not_checked(name, "the zip could not be read")
    if "signature" not in files:
        return None, [], _not_checked(name, "the signature file is missing")
    try:
        signed = _parse_signed_data(files["signature"])
        if len(signed.signers) != 1:
            raise _DerError(f"expected one signer, found {len(signed.signers)}")
        signer_info = signed.signers[0]
        signer = _find_signer(signer_info.sid, signed.certificates)
    except ValueError as error:
        problem = (
            f"signature is not a valid PKCS#7 SignedData ({error}); "
            "sign manifest.json as a detached PKCS#7 signature in DER"
        )
        return None, [], _results(name, [problem], [], "")
    if signer is None:
        problem = (
            "the signer's certificate is not included in the signature; "
            "include the Pass Type ID certificate when signing"
        )
        return None, signed.certificates, _results(name, [problem], [], "")
    if "manifest.json" not in files:
        return signer, signed.certificates, _not_checked(name, "manifest.json is missing")
    try:
        problems, warnings, ok_detail = _verify_signer(signer_info, signer, files["manifest.json"])
    except ValueError as error:
        problems, warnings, ok_detail = [f"signed attributes cannot be read ({error})"], [], ""
    if signed.embedded_content:
        warnings.append("the signature embeds its content; Apple expects a detached signature")
    if signed.content_type != _DATA:
        problems.append("the signed content type is not id-data; sign manifest.json as data")
    return signer, signed.certificates, _results(name, problems, warnings, ok_detail)


def _verify_signer(
    info: _SignerInfo, signer: x509.Certificate, manifest: bytes
) -> tuple[list[str], list[str], str]:
    """Check the message digest and the signature; return problems, warnings and a summary."""
    problems: list[str] = []
    warnings: list[str] = []
    algorithm = _DIGESTS.get(info.digest_oid)
    family = _SIGNATURE_FAMILIES.get(info.signature_oid)
    if algorithm is None or family is None:
        oids = f"{info.digest_oid} / {info.signature_oid}"
        return [f"unsupported digest or signature algorithm ({oids}); sign with SHA-256"], [], ""

    signed_time = None
    if info.signed_attrs is None:
        signed_bytes = manifest
        warnings.append(
            "no signing time in the signature; Apple asks for the signing-time attribute"
        )
    else:
        # RFC 5652, 5.4: the signature covers the attributes DER-encoded as a SET OF,
        # not with the [0] IMPLICIT tag they carry inside SignerInfo.
        signed_bytes = b"\x31" + info.signed_attrs.raw[1:]
        attributes = _attributes(info.signed_attrs)
        content_types = attributes.get(_CONTENT_TYPE, [])
        if len(content_types) != 1 or _oid(content_types[0]) != _DATA:
            problems.append("the contentType signed attribute is missing or not id-data")
        digests = attributes.get(_MESSAGE_DIGEST, [])
        digest = hashes.Hash(algorithm())
        digest.update(manifest)
        if len(digests) != 1:
            problems.append("the messageDigest signed attribute is missing; sign again")
        elif _expect(digests[0], _OCTET_STRING).value != digest.finalize():
            problems.append(
                "manifest.json does not match the digest that was signed (changed after "
                "signing?); sign the current manifest.json again"
            )
        times = attributes.get(_SIGNING_TIME, [])
        if times:
            signed_time = _time(times[0])
        else:
            warnings.append(
                "no signing time in the signature; Apple asks for the signing-time attribute"
            )

    if not _signature_valid(signer.public_key(), family, algorithm(), info.signature, signed_bytes):
        problems.append(
            "the signature does not verify with the signer certificate's public key (signed "
            "with another key?); sign with the Pass Type ID certificate's private key"
        )
    when = f"; signed {_when(signed_time)}" if signed_time else ""
    ok_detail = (
        f"valid {family}/{algorithm.name.upper()} signature over manifest.json by "
        f"{_common_name(signer)!r}{when}"
    )
    return problems, warnings, ok_detail


def _signature_valid(
    key: CertificatePublicKeyTypes,
    family: str,
    algorithm: hashes.HashAlgorithm,
    signature: bytes,
    data: bytes,
) -> bool:
    try:
        if family == "RSA" and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), algorithm)
        elif family == "ECDSA" and isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(algorithm))
        else:
            return False
    except InvalidSignature:
        return False
    return True


# --- certificate chain ----------------------------------------------------------------------


def _check_chain(
    signer: x509.Certificate | None,
    certificates: list[x509.Certificate],
    trusted_roots: Sequence[x509.Certificate] | None,
    now: datetime,
) -> list[Check]:
    name = "certificate chain"
    if signer is None:
        return _not_checked(name, "no signer certificate was found in the signature")
    problems: list[str] = []
    warnings: list[str] = []
    _check_validity(signer, "pass certificate", now, problems, warnings)
    if not _has_extension(signer, PASS_TYPE_ID_MARKER):
        warnings.append(
            "the pass certificate lacks Apple's Pass Type ID extension "
            f"({PASS_TYPE_ID_MARKER.dotted_string}); use a Pass Type ID certificate from Apple"
        )

    wwdr = next((cert for cert in certificates if issued_by(signer, cert)), None)
    if wwdr is None:
        problems.append(
            "the pass certificate is not issued by any WWDR certificate included in the "
            f"signature; include Apple's current WWDR intermediate (G4, {APPLE_CA_URL})"
        )
        return _results(name, problems, warnings, "")
    if _is_wwdr_g1(wwdr):
        problems.append(
            f"the included WWDR intermediate is G1, which expired on {WWDR_G1_EXPIRY} and "
            f"current iOS rejects; sign with the current WWDR (G4) from {APPLE_CA_URL}"
        )
    else:
        _check_validity(wwdr, "WWDR certificate", now, problems, warnings)

    root_detail = "WWDR not checked against Apple's root (no trusted root given)"
    if trusted_roots is not None:
        root = next((cert for cert in trusted_roots if issued_by(wwdr, cert)), None)
        if root is None:
            problems.append(
                "the WWDR certificate is not issued by any trusted root; "
                f"use Apple's genuine WWDR intermediate from {APPLE_CA_URL}"
            )
        else:
            _check_validity(root, "root certificate", now, problems, warnings)
            root_detail = f"WWDR issued by trusted root {_common_name(root)!r}"
    ok_detail = (
        f"pass certificate issued by {_common_name(wwdr)!r}, valid until "
        f"{_when(signer.not_valid_after_utc)}; {root_detail}"
    )
    return _results(name, problems, warnings, ok_detail)


def _is_wwdr_g1(cert: x509.Certificate) -> bool:
    units = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    if any(unit.value == "G1" for unit in units):
        return True
    return _common_name(cert) == WWDR_G1_CN and cert.not_valid_after_utc.date() == WWDR_G1_EXPIRY


def _check_validity(
    cert: x509.Certificate, label: str, now: datetime, problems: list[str], warnings: list[str]
) -> None:
    if now < cert.not_valid_before_utc:
        problems.append(
            f"the {label} is not valid until {_when(cert.not_valid_before_utc)}; "
            "check the clock or wait"
        )
    elif now > cert.not_valid_after_utc:
        problems.append(
            f"the {label} expired on {_when(cert.not_valid_after_utc)}; "
            "get a new one and sign again"
        )
    elif cert.not_valid_after_utc - now < EXPIRY_WARNING:
        days = (cert.not_valid_after_utc - now).days
        warnings.append(
            f"the {label} expires in {days} days ({_when(cert.not_valid_after_utc)}); renew it"
        )


def _has_extension(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> bool:
    try:
        cert.extensions.get_extension_for_oid(oid)
    except x509.ExtensionNotFound:
        return False
    return True


def _common_name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else cert.subject.rfc4514_string()


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


# --- pass contents: the validation module's rules ------------------------------------------

CONTENT_CHECKS = ("pass.json", "images", "web service")
_WEB_SERVICE_KEYS = ("$.webServiceURL", "$.authenticationToken")


def _read_pass_json(files: dict[str, bytes] | None) -> dict[str, Any] | None:
    """pass.json as an object, to compare with the certificate; what is wrong with it is
    validation's to say."""
    if files is None or "pass.json" not in files:
        return None
    try:
        pass_json = json.loads(files["pass.json"].decode("utf-8"))
    except ValueError:
        return None
    return pass_json if isinstance(pass_json, dict) else None


def _check_contents(
    files: dict[str, bytes] | None, pass_json: dict[str, Any] | None
) -> dict[str, list[Check]]:
    """validate_package() on the signed files, its findings sorted into the report's checks."""
    if files is None:
        return {name: _not_checked(name, "the zip could not be read") for name in CONTENT_CHECKS}
    # Names the zip check refused are not read again (validation would refuse them too).
    package = {
        path: body
        for path, body in files.items()
        if path not in SIGNING_FILES and not unsafe_path(path)
    }
    report = validate_package(package)
    found: dict[str, tuple[list[str], list[str]]] = {name: ([], []) for name in CONTENT_CHECKS}
    for problem in report.errors:
        found[_content_check(problem.path)][0].append(_line(problem))
    for problem in report.warnings:
        found[_content_check(problem.path)][1].append(_line(problem))

    styles = " and ".join(repr(style) for style in STYLES if pass_json and style in pass_json)
    pngs = sum(images.parse_image_path(path) is not None for path in package)
    url = pass_json.get("webServiceURL") if pass_json else None
    ok_details = {
        "pass.json": f"valid, with the required keys and style {styles or '?'}",
        "images": f"icon.png present; {pngs} PNG images valid",
        "web service": f"webServiceURL {url!r} with an authentication token"
        if url is not None
        else "no webServiceURL: the pass will not receive updates",
    }
    checks = {
        name: _results(name, errors, warnings, ok_details[name])
        for name, (errors, warnings) in found.items()
    }
    if pass_json is None and not any(found["web service"]):
        checks["web service"] = _not_checked("web service", "pass.json could not be read")
    return checks


def _content_check(path: str) -> str:
    """The check a finding belongs to; the rest is about pass.json and the files it uses."""
    if path in _WEB_SERVICE_KEYS:
        return "web service"
    if images.parse_image_path(path) is not None:
        return "images"
    return "pass.json"


def _line(problem: Problem) -> str:
    return f"{problem.path}: {problem.message} ({problem.fix})"


def _check_identifiers(
    pass_json: dict[str, Any] | None, signer: x509.Certificate | None
) -> list[Check]:
    name = "identifiers"
    if pass_json is None:
        return _not_checked(name, "pass.json could not be read")
    if signer is None:
        return _not_checked(name, "no signer certificate was found in the signature")
    problems = []
    pairs = [
        ("passTypeIdentifier", NameOID.USER_ID, "UID"),
        ("teamIdentifier", NameOID.ORGANIZATIONAL_UNIT_NAME, "OU"),
    ]
    for key, oid, label in pairs:
        expected = subject_value(signer, oid)
        if pass_json.get(key) != expected:
            problems.append(
                f"pass.json {key} {pass_json.get(key)!r} does not match the signing certificate's "
                f"{label} {expected!r}; sign with the certificate for this pass type and team"
            )
    ok_detail = (
        f"passTypeIdentifier {pass_json.get('passTypeIdentifier')!r} and teamIdentifier "
        f"{pass_json.get('teamIdentifier')!r} match the signing certificate"
    )
    return _results(name, problems, [], ok_detail)

"""The pass doctor: why did (or didn't) the last update of a pass reach the phones?

It walks the chain an update travels, in order: the web service URL written in the pass,
the certificate that signs it and authenticates the pushes, the devices registered for
it, each device's last push and APNs's answer, whether the phone downloaded after it,
and what Wallet wrote in its log about the pass. The first link that is broken comes with
what to do. `flask passes doctor` and the dashboard's pass page show the same Diagnosis.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app

from models import DeviceLogEntry, Pass, PendingPush, db, utcnow
from passes import context, delivery, store
from passes.delivery import DeviceDelivery, State
from passes.errors import ApiError
from passes.validation import validate_package

# As at start-up (app.py warns then too): time enough to renew with Apple.
CERTIFICATE_WARNING = timedelta(days=30)
# Devices described one by one; the rest are counted.
DEVICES_DESCRIBED = 20
LOG_ENTRIES = 20

# What APNs's refusals mean for a pass push, and what to do (Apple's "Handling notification
# responses from APNs"). Dead tokens are not here: the device is removed at once.
APNS_REASONS = {
    "BadTopic": "the topic is the pass type identifier: the certificate does not match it",
    "TopicDisallowed": "the certificate may not push to this pass type: use the Pass Type "
    "ID certificate made for it",
    "BadCertificate": "APNs refused the certificate: export the Pass Type ID certificate "
    "again from Keychain",
    "BadCertificateEnvironment": "passes always use APNs production: leave APNS_URL unset",
    "PayloadEmpty": "the push body must be {}: a bug, please report it",
    "MissingTopic": "the push had no topic: a bug, please report it",
}


@dataclass(frozen=True)
class Check:
    """One link of the chain."""

    link: str
    ok: bool
    finding: str
    fix: str = ""


@dataclass
class Diagnosis:
    pass_type_identifier: str
    serial_number: str
    update_tag: int
    checks: list[Check] = field(default_factory=list)
    # Every state's count, over all devices; details for the first few that are not current.
    states: Counter[State] = field(default_factory=Counter)
    devices: list[DeviceDelivery] = field(default_factory=list)
    wallet_log: list[DeviceLogEntry] = field(default_factory=list)
    # Registered devices left out when the walk was capped (the newest registrations).
    unexamined: int = 0

    @property
    def first_broken(self) -> Check | None:
        return next((check for check in self.checks if not check.ok), None)

    @property
    def examined(self) -> int:
        return sum(self.states.values())

    @property
    def registered(self) -> int:
        return self.examined + self.unexamined

    @property
    def all_current(self) -> bool:
        """Every registered device holds the current version (and there is one at least)."""
        return self.registered > 0 and self.states[State.CURRENT] == self.registered


def diagnose(pass_: Pass, now: datetime | None = None, devices: int | None = None) -> Diagnosis:
    """The walk along the chain; over the first `devices` registered devices only, if given
    (the rest are counted, not examined: the command line examines every one)."""
    now = now or utcnow()
    found = Diagnosis(pass_.pass_type_identifier, pass_.serial_number, pass_.update_tag)
    found.checks.append(_web_service_url(pass_))
    found.checks.append(_certificate(pass_, now))
    everyone = delivery.deliveries_of(pass_, limit=devices, now=now)
    found.states = Counter(item.state for item in everyone)
    if devices is not None and len(everyone) == devices:
        found.unexamined = store.count_registrations(pass_) - devices
    found.wallet_log = delivery.log_entries_about(pass_, LOG_ENTRIES)
    found.checks.append(_devices(found))
    behind = [item for item in everyone if item.state is not State.CURRENT]
    found.devices = behind[:DEVICES_DESCRIBED]
    queued = _queued((item.device_id for item in found.devices), pass_.pass_type_identifier)
    found.checks += [_device(item, pass_, queued, now) for item in found.devices]
    if len(behind) > DEVICES_DESCRIBED:
        found.checks.append(
            Check(
                "more devices",
                False,
                f"{len(behind) - DEVICES_DESCRIBED} more devices"
                + (" examined" if found.unexamined else "")
                + " do not hold the current version; the first ones above say why",
            )
        )
    found.checks.append(_wallet_log(found.wallet_log, pass_))
    return found


def _web_service_url(pass_: Pass) -> Check:
    expected = context.web_service_url()
    try:
        if context.runtime().certificates.for_type(pass_.pass_type_identifier) is None:
            # Nothing can be built without it (the next link says so); the URL is the one
            # the service writes into every pass.
            pass_json = {"webServiceURL": expected}
        else:
            pass_json = json.loads(store.pass_files(pass_)["pass.json"])
    except (ApiError, KeyError, ValueError) as error:
        message = error.message if isinstance(error, ApiError) else "pass.json is unreadable"
        return Check(
            "webServiceURL",
            False,
            f"the pass cannot be built: {message}",
            "change the pass (or its template) until it validates",
        )
    url = pass_json.get("webServiceURL")
    if not isinstance(url, str):
        return Check(
            "webServiceURL",
            False,
            "the pass has no webServiceURL, so Wallet never registers it",
            "set PUBLIC_URL; the service writes webServiceURL into every pass it builds",
        )
    # Wallet's rules for the URL live in the validation; a warning there (plain http on
    # this machine) is still a link that real phones cannot use.
    report = validate_package({"pass.json": json.dumps(pass_json).encode()})
    for problem in report.errors + report.warnings:
        if problem.path == "$.webServiceURL":
            return Check("webServiceURL", False, f"{url}: {problem.message}", problem.fix)
    if url.rstrip("/") != expected.rstrip("/"):
        return Check(
            "webServiceURL",
            False,
            f"the pass says {url}, but this server is {expected} (PUBLIC_URL)",
            "devices talk to the URL in their pass: serve it there, or set PUBLIC_URL to it",
        )
    return Check("webServiceURL", True, url)


def _certificate(pass_: Pass, now: datetime) -> Check:
    certificates = context.runtime().certificates
    if not certificates:
        return Check(
            "certificate",
            False,
            "no pass certificate is configured: passes cannot be signed nor pushed",
            "set PASS_CERTIFICATE (your .p12) and WWDR_CERTIFICATE, then restart",
        )
    credentials = certificates.for_type(pass_.pass_type_identifier)
    if credentials is None:
        return Check(
            "certificate",
            False,
            f"the certificates are for {', '.join(certificates.pass_types)}, the pass is "
            f"{pass_.pass_type_identifier}: it can be neither signed nor pushed",
            f"configure the Pass Type ID certificate of {pass_.pass_type_identifier} "
            "(PASS_CERTIFICATE_2, or the next free number)",
        )
    expires = credentials.expires_at
    if expires <= now:
        return Check(
            "certificate",
            False,
            f"the certificate expired on {expires:%Y-%m-%d}: pushes and new passes fail",
            "make a new certificate for the pass type in Apple's developer portal and "
            "configure it (passes already issued keep working)",
        )
    if credentials.certificate.not_valid_before_utc > now:
        return Check("certificate", False, "the certificate is not valid yet", "check the clock")
    note = f"{credentials.pass_type_identifier}, valid until {expires:%Y-%m-%d}"
    if expires - now < CERTIFICATE_WARNING:
        note += f" (expires in {(expires - now).days} days: renew it now)"
    return Check("certificate", True, note)


def _devices(found: Diagnosis) -> Check:
    if not found.registered:
        return Check(
            "devices",
            False,
            "no device has registered this pass",
            "it was not added to Wallet, or Wallet could not register it: see Wallet's log "
            "below, and check that a phone can open the webServiceURL",
        )
    counts = ", ".join(f"{n} {state}" for state, n in sorted(found.states.items()))
    if found.unexamined:
        return Check(
            "devices",
            True,
            f"{found.registered} registered; of the first {found.examined} registered, "
            f"{counts}; the {found.unexamined} registered since were not examined here",
        )
    return Check("devices", True, f"{found.registered} registered: {counts}")


def _queued(device_ids: Iterable[int], pass_type_identifier: str) -> dict[int, PendingPush]:
    """The devices' pushes waiting for the pass's type (each type is its own push)."""
    ids = list(device_ids)
    if not ids:
        return {}
    rows = db.session.scalars(
        sa.select(PendingPush).where(
            PendingPush.device_id.in_(ids),
            PendingPush.pass_type_identifier == pass_type_identifier,
        )
    )
    return {row.device_id: row for row in rows}


def _ago(then: datetime, now: datetime) -> str:
    seconds = max(0, int((now - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def _device(
    item: DeviceDelivery, pass_: Pass, queued: dict[int, PendingPush], now: datetime
) -> Check:
    d = item.delivery
    link = f"device {item.device_library_identifier}"
    push_again = f"flask passes push {pass_.pass_type_identifier} {pass_.serial_number}"
    answer = " ".join(str(part) for part in (d.push_status, d.push_reason) if part)
    if item.state is State.FAILING and d.push_refused:
        meaning = APNS_REASONS.get(d.push_reason or "", "see Apple's list of APNs responses")
        return Check(
            link,
            False,
            f"APNs refused the last push ({_ago(d.pushed_at, now) if d.pushed_at else ''}): "
            f"{answer or 'no reason given'}",
            f"{meaning}; then {push_again}",
        )
    if item.state is State.FAILING:
        failed_at = _ago(d.fetch_failed_at, now) if d.fetch_failed_at else ""
        return Check(
            link,
            False,
            f"its last download of the pass failed ({failed_at}): {d.fetch_error}",
            "look at this server's log at that moment and fix the cause; Wallet tries again "
            f"after the next push: {push_again}",
        )
    if item.state is State.WAITING:
        return _waiting(link, queued.get(item.device_id), answer, now)
    pushed = (
        f"APNs accepted the push {_ago(d.pushed_at, now)}"
        + (f" (apns-id {d.apns_id})" if d.apns_id else "")
        if d.pushed_at
        else "the pass changed, and no push is recorded"
    )
    if item.state is State.SILENT:
        return Check(
            link,
            False,
            f"{pushed}, and the phone has not asked anything since",
            "the phone is off or offline, the pass was removed while it was, or Automatic "
            "Updates is off for this pass (pass details in Wallet). Ask the holder to pull "
            "down on the pass details to refresh",
        )
    asked = (
        f"; it asked for its list {_ago(d.listed_at, now)} but has not downloaded the pass"
        if d.listed_at and d.pushed_at and d.listed_at >= d.pushed_at
        else "; it has not asked since"
    )
    return Check(
        link,
        False,
        pushed + asked,
        "phones put background pushes off (Low Power Mode, no network) for minutes or "
        "hours; if it stays so, see Wallet's log below",
    )


def _waiting(link: str, row: PendingPush | None, answer: str, now: datetime) -> Check:
    mode = current_app.config.get("PUSH_MODE")
    if row is not None and row.attempts:
        finding = (
            f"a push is queued; APNs was busy ({answer or 'no answer'}), tried "
            f"{row.attempts} times, next at {row.due_at:%H:%M:%S} UTC"
        )
        return Check(link, False, finding, "it is retried on its own; APNs recovers in minutes")
    since = f" since {_ago(row.created_at, now)}" if row is not None else ""
    fix = {
        "off": "PUSH_MODE is off: nothing sends pushes here. Set PUSH_MODE=worker and run "
        "flask passes worker",
        "inline": "the web process sends it after a change: look for 'inline push' in its log",
    }.get(
        mode or "",
        "start a worker (flask passes worker; on Heroku heroku ps:scale worker=1) and look "
        "at its log",
    )
    return Check(link, False, f"a push is queued{since} and not sent yet", fix)


def _wallet_log(entries: list[DeviceLogEntry], pass_: Pass) -> Check:
    recent = [entry for entry in entries if entry.created_at >= pass_.updated_at]
    if recent:
        return Check(
            "Wallet's log",
            False,
            f"Wallet reported {len(recent)} problem(s) with this pass since its last change; "
            f"the newest: {recent[0].message[:300]}",
            "Wallet names the request that failed and the answer it got: fix that answer",
        )
    older = f"{len(entries)} older message(s) about it" if entries else "nothing about it"
    return Check("Wallet's log", True, older)


def report_lines(found: Diagnosis) -> list[str]:
    """The diagnosis as text, for the command line."""
    lines = [f"{found.pass_type_identifier} {found.serial_number} (update tag {found.update_tag})"]
    for check in found.checks:
        lines.append(f"  {'ok' if check.ok else 'BROKEN':6}  {check.link}: {check.finding}")
        if check.fix and not check.ok:
            lines.append(f"          what to do: {check.fix}")
    broken = found.first_broken
    if broken is None and found.unexamined:
        lines.append(f"every link holds for the {found.examined} devices examined")
    elif broken is None:
        lines.append("every link holds: every registered device has the current version")
    else:
        lines.append(f"first broken link: {broken.link}")
    return lines

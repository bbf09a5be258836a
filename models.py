"""Database models: passes, templates, devices, registrations, device logs, the push queue and the
webhook outbox.

This module is a leaf: it imports nothing of ours. The schema itself comes from the
migrations in migrations/; these classes must stay in step with them (`flask db check`).
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Lengths the protocol's path parts may have. Apple sets none; these are far above what
# iOS sends (a 32-character device id, a 64-character push token) and keep rows bounded.
PASS_TYPE_ID_LENGTH = 255
SERIAL_NUMBER_LENGTH = 128
DEVICE_ID_LENGTH = 128
PUSH_TOKEN_LENGTH = 256
TEMPLATE_NAME_LENGTH = 64
FILE_NAME_LENGTH = 255
WEBHOOK_URL_LENGTH = 2048
WEBHOOK_SECRET_LENGTH = 128


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every database.

    SQLite keeps no time zone and hands back naive datetimes; comparing those with aware
    ones raises. Values go in as UTC and always come back aware.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use datetime.now(UTC)")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = sa.MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


db = SQLAlchemy(model_class=Base)


@sa.event.listens_for(sa.Engine, "connect")
def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """Make the embedded SQLite database safe for several gunicorn workers."""
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    cursor = dbapi_connection.cursor()
    # WAL lets readers go on while one writer writes; busy_timeout makes a second writer
    # wait for the lock instead of failing at once with "database is locked".
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")  # ON DELETE CASCADE needs it
    cursor.close()


class Pass(db.Model):
    """One issued pass: a template name plus the per-pass part of pass.json."""

    __tablename__ = "passes"
    __table_args__ = (sa.UniqueConstraint("pass_type_identifier", "serial_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    pass_type_identifier: Mapped[str] = mapped_column(sa.String(PASS_TYPE_ID_LENGTH))
    serial_number: Mapped[str] = mapped_column(sa.String(SERIAL_NUMBER_LENGTH))
    template: Mapped[str | None] = mapped_column(sa.String(TEMPLATE_NAME_LENGTH))
    # The version of the template the pass is built from: every change to the template moves
    # its passes to the new version in the same transaction. Null for a pass without a
    # template, and for one made before templates were kept here (its name then decides).
    # No ON DELETE: a template version in use cannot be deleted.
    template_version_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("template_versions.id"), index=True
    )
    # The partial pass.json merged over the template's (RFC 7396 merge patch).
    data: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    # Position in the global update order (see UpdateCounter); what passesUpdatedSince
    # compares against.
    update_tag: Mapped[int] = mapped_column(sa.BigInteger, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # HTTP dates have whole seconds. When this version was made in the same second as the
    # one before it, a device sending that second in If-Modified-Since may hold either,
    # so it must get the pass again rather than a 304.
    shares_second_with_previous: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Rewards enrollment: what the user entered in Wallet's sign-up form, and when.
    personalization_info: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    personalized_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    files: Mapped[list[PassFile]] = relationship(
        back_populates="pass_", cascade="all, delete-orphan", passive_deletes=True
    )


class PassFile(db.Model):
    """A file that belongs to one pass only (a personal thumbnail, a strip image)."""

    __tablename__ = "pass_files"
    __table_args__ = (sa.UniqueConstraint("pass_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    pass_id: Mapped[int] = mapped_column(sa.ForeignKey("passes.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(sa.String(FILE_NAME_LENGTH))
    content: Mapped[bytes] = mapped_column(sa.LargeBinary)

    pass_: Mapped[Pass] = relationship(back_populates="files")


class PassTemplate(db.Model):
    """A template by name; what it holds is in its versions (passes/pass_templates.py)."""

    __tablename__ = "templates"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(TEMPLATE_NAME_LENGTH), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    versions: Mapped[list[TemplateVersion]] = relationship(
        back_populates="template",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="TemplateVersion.version",
    )


class TemplateVersion(db.Model):
    """One state of a template: its pass.json and files, never changed once written.

    Ids are never reused (AUTOINCREMENT on SQLite, a sequence on PostgreSQL), so a web
    process may keep a version it read under its id for as long as it likes.
    """

    __tablename__ = "template_versions"
    __table_args__ = (
        sa.UniqueConstraint("template_id", "version"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    template_id: Mapped[int] = mapped_column(sa.ForeignKey("templates.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column()
    pass_json: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    # SHA-256 of the content (passes/pass_templates.py content_digest): an import of an
    # unchanged folder is recognised without a new version.
    digest: Mapped[str] = mapped_column(sa.String(64))
    # "folder" (imported from PASS_TEMPLATES_DIR) or "upload" (the API, CLI or dashboard).
    source: Mapped[str] = mapped_column(sa.String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    template: Mapped[PassTemplate] = relationship(back_populates="versions")
    files: Mapped[list[TemplateFile]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="TemplateFile.name"
    )


class TemplateFile(db.Model):
    """A file of a template version (an image, a pass.strings), with its manifest digest."""

    __tablename__ = "template_files"
    __table_args__ = (sa.UniqueConstraint("version_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(
        sa.ForeignKey("template_versions.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(sa.String(FILE_NAME_LENGTH))
    content: Mapped[bytes] = mapped_column(sa.LargeBinary)
    # SHA-1 hex, as manifest.json lists it: computed once, not at every signing.
    digest: Mapped[str] = mapped_column(sa.String(40))


class Device(db.Model):
    """An iPhone or Apple Watch, known by the library identifier Wallet gives us."""

    __tablename__ = "devices"

    id: Mapped[int] = mapped_column(primary_key=True)
    device_library_identifier: Mapped[str] = mapped_column(sa.String(DEVICE_ID_LENGTH), unique=True)
    push_token: Mapped[str] = mapped_column(sa.String(PUSH_TOKEN_LENGTH))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class Registration(db.Model):
    """A device holding a pass and asking to hear when it changes."""

    __tablename__ = "registrations"
    __table_args__ = (
        sa.UniqueConstraint("device_id", "pass_id"),
        # Which device a download is credited to (passes/delivery.py): the few waiting.
        sa.Index(
            "ix_registrations_download_due",
            "pass_id",
            "named_at",
            postgresql_where=sa.text("named_at IS NOT NULL"),
            sqlite_where=sa.text("named_at IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(sa.ForeignKey("devices.id", ondelete="CASCADE"))
    pass_id: Mapped[int] = mapped_column(sa.ForeignKey("passes.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    # Delivery: what this device last did with this pass (passes/delivery.py reads these).
    # The last push to the device, for the pass's version (update tag) at that moment,
    # with APNs's answer: outcome (sent, failed, retry_later), HTTP status, reason, apns-id.
    pushed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    pushed_tag: Mapped[int | None] = mapped_column(sa.BigInteger)
    push_outcome: Mapped[str | None] = mapped_column(sa.String(16))
    push_status: Mapped[int | None] = mapped_column()
    push_reason: Mapped[str | None] = mapped_column(sa.String(64))
    apns_id: Mapped[str | None] = mapped_column(sa.String(36))
    # The device's last serial list request (any answer) and the tag it was given; and
    # since when a list has named this pass as changed without a download following (the
    # device fetches it next; cleared by the download).
    listed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    listed_tag: Mapped[int | None] = mapped_column(sa.BigInteger)
    named_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The last version of the pass it downloaded (a 304 counts: it holds that version).
    fetched_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    fetched_tag: Mapped[int | None] = mapped_column(sa.BigInteger)
    # When it first downloaded the version of its last accepted push (or a later one): the
    # end of the push-to-fetch time, counted once per push. Cleared by the next push.
    push_answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The last fetch that failed, ours or as Wallet reported it in its log.
    fetch_failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    fetch_error: Mapped[str | None] = mapped_column(sa.String(300))


class DeviceLogEntry(db.Model):
    """A message Wallet posted to /v1/log (errors it met talking to us)."""

    __tablename__ = "device_log_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    message: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class DashboardSession(db.Model):
    """A browser signed in to the dashboard. Signing out deletes the row, so the cookie
    stops working wherever a copy of it is."""

    __tablename__ = "dashboard_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    # SHA-256 of the random id in the cookie: a copy of this table signs no one in.
    id_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class UpdateCounter(db.Model):
    """A single row whose value orders every pass update.

    Each update increments it inside its own transaction. The row lock is held until
    commit, so tags are handed out in commit order: a device that was told "lastUpdated
    = N" can never later miss an update committed with a tag <= N. A plain sequence
    hands out numbers in call order, so a slow transaction could commit tag 5 after a
    device had already been told 6.
    """

    __tablename__ = "update_counter"

    id: Mapped[int] = mapped_column(primary_key=True)
    value: Mapped[int] = mapped_column(sa.BigInteger)


class PendingPush(db.Model):
    """A device that must be told to fetch its passes of one type again.

    One row per device and pass type, not per update: a burst of updates sends one push.
    APNs takes the pass type as the push's topic, over a connection that presents that
    type's certificate, and the device then asks for its changed passes of that type. `version`
    grows with every new update so that a worker that claimed the row before the update
    does not delete it after sending (its push may have reached the phone too early).
    """

    __tablename__ = "pending_pushes"

    device_id: Mapped[int] = mapped_column(
        sa.ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True
    )
    pass_type_identifier: Mapped[str] = mapped_column(
        sa.String(PASS_TYPE_ID_LENGTH), primary_key=True
    )
    version: Mapped[int] = mapped_column(default=1)
    attempts: Mapped[int] = mapped_column(default=0)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    # A worker's lease: rows claimed and not yet finished are skipped by other workers
    # until it expires, so a crashed worker's rows are sent again by the next one.
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class PushOutcomeCount(db.Model):
    """Push outcomes counted per hour, for admins (sent, removed, failed ...)."""

    __tablename__ = "push_outcome_counts"
    __table_args__ = (sa.UniqueConstraint("hour", "outcome"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    hour: Mapped[datetime] = mapped_column(UTCDateTime())
    outcome: Mapped[str] = mapped_column(sa.String(32))
    count: Mapped[int] = mapped_column(sa.BigInteger, default=0)


class WebhookEndpoint(db.Model):
    """A receiver of webhook events added through the admin API (WEBHOOK_URL, the one set
    in the environment, has no row)."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(sa.String(WEBHOOK_URL_LENGTH))
    # Needed in clear to sign each delivery; never shown again after it is created.
    secret: Mapped[str] = mapped_column(sa.String(WEBHOOK_SECRET_LENGTH))
    # The event types it receives; null: every type.
    events: Mapped[list[str] | None] = mapped_column(sa.JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WebhookMessage(db.Model):
    """One event for one endpoint: the outbox the worker delivers from.

    Written in the transaction of the change that caused it, so an event is never lost and
    never sent for a change that was rolled back. Delivered rows stay a while for the
    dashboard; undelivered rows stay until delivered.
    """

    __tablename__ = "webhook_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Standard Webhooks' webhook-id: the same for every attempt, so receivers can drop a
    # message delivered twice.
    message_id: Mapped[str] = mapped_column(sa.String(64))
    # Null: the endpoint of WEBHOOK_URL.
    endpoint_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE")
    )
    event_type: Mapped[str] = mapped_column(sa.String(64))
    # The exact body sent, serialised once so that every attempt signs the same bytes.
    body: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    # When to try next; null once delivered, so the worker's index holds only what is due.
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    # A worker's lease while it delivers (as for pending pushes).
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The last attempt's HTTP status (null: no answer) and, on failure, why.
    last_status: Mapped[int | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(sa.String(200))


class RegistrationEventCount(db.Model):
    """Devices that registered, unregistered or were removed (dead push token), per hour."""

    __tablename__ = "registration_event_counts"
    __table_args__ = (sa.UniqueConstraint("hour", "event"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    hour: Mapped[datetime] = mapped_column(UTCDateTime())
    event: Mapped[str] = mapped_column(sa.String(32))
    count: Mapped[int] = mapped_column(sa.BigInteger, default=0)

"""Delivery tracking: what each device last did with each pass, registrations counted

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 19:50:00.000000

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

DELIVERY_COLUMNS = [
    ("pushed_at", sa.DateTime(timezone=True)),
    ("pushed_tag", sa.BigInteger()),
    ("push_outcome", sa.String(length=16)),
    ("push_status", sa.Integer()),
    ("push_reason", sa.String(length=64)),
    ("apns_id", sa.String(length=36)),
    ("listed_at", sa.DateTime(timezone=True)),
    ("listed_tag", sa.BigInteger()),
    ("named_at", sa.DateTime(timezone=True)),
    ("fetched_at", sa.DateTime(timezone=True)),
    ("fetched_tag", sa.BigInteger()),
    ("fetch_failed_at", sa.DateTime(timezone=True)),
    ("fetch_error", sa.String(length=300)),
]


def upgrade():
    op.create_table(
        "registration_event_counts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registration_event_counts")),
        sa.UniqueConstraint("hour", "event", name=op.f("uq_registration_event_counts_hour_event")),
    )
    # Nullable columns without defaults: PostgreSQL adds them without rewriting the table.
    with op.batch_alter_table("registrations", schema=None) as batch_op:
        for name, type_ in DELIVERY_COLUMNS:
            batch_op.add_column(sa.Column(name, type_, nullable=True))
    op.create_index(
        "ix_registrations_download_due",
        "registrations",
        ["pass_id", "named_at"],
        postgresql_where=sa.text("named_at IS NOT NULL"),
        sqlite_where=sa.text("named_at IS NOT NULL"),
    )


def downgrade():
    op.drop_index("ix_registrations_download_due", table_name="registrations")
    with op.batch_alter_table("registrations", schema=None) as batch_op:
        for name, _ in reversed(DELIVERY_COLUMNS):
            batch_op.drop_column(name)
    op.drop_table("registration_event_counts")

"""Delivery tracking: when a device first downloaded the version it was last pushed for

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 20:45:00.000000

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade():
    # Nullable without a default: PostgreSQL adds it without rewriting the table.
    with op.batch_alter_table("registrations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("push_answered_at", sa.DateTime(timezone=True)))


def downgrade():
    with op.batch_alter_table("registrations", schema=None) as batch_op:
        batch_op.drop_column("push_answered_at")

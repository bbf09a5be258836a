"""Pending pushes per device and pass type: each type is pushed on its own APNs topic

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 00:10:00.000000

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("pending_pushes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pass_type_identifier", sa.String(length=255)))
    # Until now a server had one certificate, so a waiting device's passes are of one type.
    op.execute(
        "UPDATE pending_pushes SET pass_type_identifier = ("
        " SELECT min(passes.pass_type_identifier) FROM registrations"
        " JOIN passes ON passes.id = registrations.pass_id"
        " WHERE registrations.device_id = pending_pushes.device_id)"
    )
    op.execute("DELETE FROM pending_pushes WHERE pass_type_identifier IS NULL")  # holds none
    with op.batch_alter_table("pending_pushes", schema=None) as batch_op:
        batch_op.alter_column(
            "pass_type_identifier", existing_type=sa.String(length=255), nullable=False
        )
        batch_op.drop_constraint("pk_pending_pushes", type_="primary")
        batch_op.create_primary_key("pk_pending_pushes", ["device_id", "pass_type_identifier"])


def downgrade():
    # One row per device again: keep its first type's.
    op.execute(
        "DELETE FROM pending_pushes WHERE pass_type_identifier > ("
        " SELECT min(p.pass_type_identifier) FROM pending_pushes p"
        " WHERE p.device_id = pending_pushes.device_id)"
    )
    with op.batch_alter_table("pending_pushes", schema=None) as batch_op:
        batch_op.drop_constraint("pk_pending_pushes", type_="primary")
        batch_op.create_primary_key("pk_pending_pushes", ["device_id"])
        batch_op.drop_column("pass_type_identifier")

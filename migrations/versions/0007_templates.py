"""Templates in the database: names, versions, files; each pass's template version

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 00:00:00.000000

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "templates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_templates")),
        sa.UniqueConstraint("name", name=op.f("uq_templates_name")),
    )
    op.create_table(
        "template_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("template_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("pass_json", sa.JSON(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["templates.id"],
            name=op.f("fk_template_versions_template_id_templates"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_template_versions")),
        sa.UniqueConstraint(
            "template_id", "version", name=op.f("uq_template_versions_template_id_version")
        ),
        # Ids are never reused: web processes cache versions by id.
        sqlite_autoincrement=True,
    )
    op.create_table(
        "template_files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("digest", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["template_versions.id"],
            name=op.f("fk_template_files_version_id_template_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_template_files")),
        sa.UniqueConstraint("version_id", "name", name=op.f("uq_template_files_version_id_name")),
    )
    # Nullable without a default: PostgreSQL adds it without rewriting the table. Existing
    # passes keep their template's name; importing the template gives them its version.
    with op.batch_alter_table("passes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("template_version_id", sa.Integer(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_passes_template_version_id"), ["template_version_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_passes_template_version_id_template_versions"),
            "template_versions",
            ["template_version_id"],
            ["id"],
        )


def downgrade():
    with op.batch_alter_table("passes", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_passes_template_version_id_template_versions"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_passes_template_version_id"))
        batch_op.drop_column("template_version_id")
    op.drop_table("template_files")
    op.drop_table("template_versions")
    op.drop_table("templates")

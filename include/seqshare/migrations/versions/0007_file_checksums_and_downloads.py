"""file checksums (one md5 per file version) and the download record of the download API

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 14:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import seqshare.db.types

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "file_checksum",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("pool_id", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("version", sa.String(length=80), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("md5", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("computed_at", seqshare.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["pool_id"], ["pool.id"], name=op.f("fk_file_checksum_pool_id_pool")),
        sa.ForeignKeyConstraint(["run_id"], ["run.id"], name=op.f("fk_file_checksum_run_id_run")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_file_checksum")),
        sa.UniqueConstraint("run_id", "pool_id", "path", "version", name="uq_file_checksum_version"),
    )
    op.create_table(
        "file_download",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", seqshare.db.types.UTCDateTime(), nullable=False),
        sa.Column("finished_at", seqshare.db.types.UTCDateTime(), nullable=True),
        sa.Column("username", sa.String(length=100), nullable=False),
        sa.Column("group_name", sa.String(length=200), nullable=False),
        sa.Column("project", sa.String(length=200), nullable=True),
        sa.Column("run_id", sa.String(length=200), nullable=False),
        sa.Column("pool", sa.String(length=50), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("range_start", sa.BigInteger(), nullable=True),
        sa.Column("bytes_sent", sa.BigInteger(), nullable=False),
        sa.Column("completed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_file_download")),
    )
    with op.batch_alter_table("file_download", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_file_download_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_file_download_project"), ["project"], unique=False)
        batch_op.create_index(batch_op.f("ix_file_download_username"), ["username"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("file_download", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_file_download_username"))
        batch_op.drop_index(batch_op.f("ix_file_download_project"))
        batch_op.drop_index(batch_op.f("ix_file_download_at"))
    op.drop_table("file_download")
    op.drop_table("file_checksum")

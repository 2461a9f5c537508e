"""live edition schedules and scheduler markers

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("edition_runs") as batch:
        batch.add_column(sa.Column("layout", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("requeued_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "edition_schedules",
        sa.Column("edition", sa.String(length=64), nullable=False),
        sa.Column("cron", sa.String(length=128), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("config_cron", sa.String(length=128), nullable=False),
        sa.Column("changed_by", sa.String(length=16), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("edition"),
    )
    op.create_table(
        "scheduler_state",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    with op.batch_alter_table("edition_runs") as batch:
        batch.drop_column("requeued_at")
        batch.drop_column("layout")
    op.drop_table("scheduler_state")
    op.drop_table("edition_schedules")

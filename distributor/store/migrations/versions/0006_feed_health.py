"""feed health: HTTP status, last success and error times, failures in a row

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # --- feed health (issue 9): what `distributor sources` and GET /api/sources show ---
    with op.batch_alter_table("feed_state", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_http_status", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("last_error_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("consecutive_failures", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("feed_state", schema=None) as batch_op:
        for column in ("consecutive_failures", "last_error_at", "last_success_at", "last_http_status"):
            batch_op.drop_column(column)

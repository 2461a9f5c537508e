"""email tables and columns

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # --- email issue: subscribers ---
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source", sa.String(length=16), nullable=False, server_default=""))
    # --- email issue: dispatch ---
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claim", sa.String(length=32), nullable=True))


def downgrade() -> None:
    # --- email issue: subscribers ---
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.drop_column("source")
    # --- email issue: dispatch ---
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_column("claim")

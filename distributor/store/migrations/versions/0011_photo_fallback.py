"""telegram posts remember a refused photo (text fallback)

Revision ID: 0011
Revises: 0008
"""
from alembic import op
import sqlalchemy as sa

revision = "0011"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("telegram_posts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("photo_error", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("telegram_posts", schema=None) as batch_op:
        batch_op.drop_column("photo_error")

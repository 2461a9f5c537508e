"""leases: a claim is a lease its holder renews (deliveries and Telegram posts)

Revision ID: 0008
Revises: 0007
"""
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # --- leases issue (issue 10) ---
    # deliveries.claim now holds the holder id (hostname:pid:uuid), longer than a uuid.
    # SQLite ignores VARCHAR lengths, and widening there would copy the whole table.
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column("deliveries", "claim", type_=sa.String(length=128), existing_nullable=True)
    # A row "sending" whose lease_expires_at has passed belongs to a dead holder and may
    # be taken over. Rows claimed before this migration have none: taken over at once
    # (their old-style holders do not renew anything).
    op.add_column("deliveries", sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_deliveries_status_lease", "deliveries", ["status", "lease_expires_at"])
    op.add_column("telegram_posts", sa.Column("claim", sa.String(length=128), nullable=True))
    op.add_column("telegram_posts", sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("telegram_posts", "lease_expires_at")
    op.drop_column("telegram_posts", "claim")
    op.drop_index("ix_deliveries_status_lease", table_name="deliveries")
    op.drop_column("deliveries", "lease_expires_at")
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column("deliveries", "claim", type_=sa.String(length=32), existing_nullable=True)

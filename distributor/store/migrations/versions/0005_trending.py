"""trending: decayed scores, click tallies, waiting page views

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # --- trending issue ---
    op.create_table(
        "trending_scores",
        sa.Column("half_life", sa.Integer(), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("article_key", sa.String(length=1024), nullable=False),
        sa.Column("score", sa.Double(), nullable=False),
        sa.Column("clicks", sa.BigInteger(), nullable=False),
        sa.Column("views", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("half_life", "epoch", "article_key"),
    )
    op.create_index("ix_trending_scores_rank", "trending_scores", ["half_life", "epoch", "score"])
    op.create_table(
        "trending_clicks",
        sa.Column("article_key", sa.String(length=1024), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("clicks", sa.BigInteger(), nullable=False),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("article_key", "run_id", "channel"),
    )
    op.create_table(
        "trending_pending_views",
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("url", "minute"),
    )
    op.create_index("ix_trending_pending_views_minute", "trending_pending_views", ["minute"])


def downgrade() -> None:
    op.drop_index("ix_trending_pending_views_minute", table_name="trending_pending_views")
    op.drop_table("trending_pending_views")
    op.drop_table("trending_clicks")
    op.drop_index("ix_trending_scores_rank", table_name="trending_scores")
    op.drop_table("trending_scores")

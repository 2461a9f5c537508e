"""a run is unique per edition, zone and local wall-clock slot; runs stamp progress

Revision ID: 0007
Revises: 0006

Adds edition_runs.local_slot, backfilled from the stored UTC slot read in the run's zone
(the site's, passed by `distributor init` as the `site_timezone` attribute, for
site-time runs), and a unique index over (edition, timezone, local_slot, attempt).
Fall-back twins that older code opened (01:30 -04:00 and 01:30 -05:00) become attempts
0, 1, ... of their local slot, in the order they were made, so no row is lost.

Also adds edition_runs.progress_at: when a sender last recorded an outcome of the run,
which the tick reads to find runs whose broker work is gone.
"""
from collections import defaultdict
from datetime import timezone
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import context, op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_runs = sa.table(
    "edition_runs",
    sa.column("id", sa.Integer),
    sa.column("edition", sa.String),
    sa.column("slot", sa.DateTime(timezone=True)),
    sa.column("timezone", sa.String),
    sa.column("attempt", sa.Integer),
    sa.column("local_slot", sa.String),
)


def _site_timezone() -> str:
    return context.config.attributes.get("site_timezone") or "UTC"


def upgrade() -> None:
    with op.batch_alter_table("edition_runs") as batch:
        batch.add_column(sa.Column("local_slot", sa.String(length=19), nullable=True))
        batch.add_column(sa.Column("progress_at", sa.DateTime(timezone=True), nullable=True))
    connection = op.get_bind()
    site = _site_timezone()
    groups: dict[tuple[str, str, str], list[tuple[int, int]]] = defaultdict(list)
    rows = connection.execute(
        sa.select(_runs.c.id, _runs.c.edition, _runs.c.slot, _runs.c.timezone, _runs.c.attempt).order_by(_runs.c.id)
    )
    for run_id, edition, slot, zone, attempt in rows:
        if slot.tzinfo is None:  # SQLite keeps naive UTC
            slot = slot.replace(tzinfo=timezone.utc)
        wall = slot.astimezone(ZoneInfo(zone or site)).replace(tzinfo=None).isoformat(timespec="seconds")
        groups[(edition, zone, wall)].append((run_id, attempt))
    for (_, _, wall), members in groups.items():
        renumber = len({attempt for _, attempt in members}) != len(members)
        for position, (run_id, _) in enumerate(members):
            values = {"local_slot": wall}
            if renumber:
                # Negative first: the old (edition, slot, timezone, attempt) constraint
                # must hold after every single update on PostgreSQL.
                values["attempt"] = -1 - position
            connection.execute(_runs.update().where(_runs.c.id == run_id).values(**values))
        if renumber:
            for position, (run_id, _) in enumerate(members):
                connection.execute(_runs.update().where(_runs.c.id == run_id).values(attempt=position))
    with op.batch_alter_table("edition_runs") as batch:
        batch.alter_column("local_slot", existing_type=sa.String(length=19), nullable=False)
    op.create_index(
        "uq_edition_runs_local_slot", "edition_runs", ["edition", "timezone", "local_slot", "attempt"], unique=True
    )


def downgrade() -> None:
    op.drop_index("uq_edition_runs_local_slot", table_name="edition_runs")
    with op.batch_alter_table("edition_runs") as batch:
        batch.drop_column("progress_at")
        batch.drop_column("local_slot")

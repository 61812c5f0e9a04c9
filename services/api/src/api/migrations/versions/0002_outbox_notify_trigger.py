"""outbox: an insert trigger that NOTIFYs the relays (LISTEN magam_outbox) at commit

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 10:40:00

The relay also installs it at start when it is missing (a database prepared by ``create_all`` in
the dev and test profiles); with this migration applied it finds it there and changes nothing.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The same statements as api.outbox (_NOTIFY_FUNCTION, _NOTIFY_TRIGGER), frozen here: a migration
# must not change when the application code does.
_FUNCTION = """
CREATE OR REPLACE FUNCTION outbox_events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('magam_outbox', '');
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    op.execute(_FUNCTION)
    op.execute("DROP TRIGGER IF EXISTS outbox_events_notify ON outbox_events")
    op.execute(
        "CREATE TRIGGER outbox_events_notify AFTER INSERT ON outbox_events"
        " FOR EACH STATEMENT EXECUTE FUNCTION outbox_events_notify()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS outbox_events_notify ON outbox_events")
    op.execute("DROP FUNCTION IF EXISTS outbox_events_notify()")

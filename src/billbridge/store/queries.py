"""Read queries that more than one caller shares, written once so that every
screen, metric and command counts the same way."""

from __future__ import annotations

from sqlalchemy import Connection, func, select

from billbridge.store.tables import inbox, outbox


def outbox_depth(conn: Connection) -> dict[str, int]:
    """The queue depth: commands waiting to be sent, per target."""
    rows = conn.execute(select(outbox.c.target, func.count())
                        .where(outbox.c.status == "pending").group_by(outbox.c.target))
    return {str(target): int(count) for target, count in rows}


def inbox_by_status(conn: Connection, *statuses: str) -> dict[str, int]:
    """Inbox events per status (only ``statuses`` when given)."""
    query = select(inbox.c.status, func.count()).group_by(inbox.c.status)
    if statuses:
        query = query.where(inbox.c.status.in_(statuses))
    return {str(status): int(count) for status, count in conn.execute(query)}

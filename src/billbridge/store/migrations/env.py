"""Alembic environment: migrations run through the connection the caller
hands over (``billbridge.store.db.migrate``), never from a URL in a file."""

from alembic import context

from billbridge.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    engine = context.config.attributes["engine"]
    with engine.begin() as connection:
        context.configure(connection=connection, target_metadata=metadata,
                          render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()

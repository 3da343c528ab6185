"""Alembic's entry point for the catalog's migrations.

`catalog.db.migrate` builds the Alembic config in code and hands over an open
connection (config.attributes["connection"]); there is no alembic.ini and no
offline (SQL script) mode.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from catalog.db import VERSION_TABLE
from catalog.tables import Base

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise TypeError("run the catalog's migrations with catalog.db.migrate(engine)")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    version_table=VERSION_TABLE,
    # SQLite alters a table by copying it: Alembic's batch mode does that for us.
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()

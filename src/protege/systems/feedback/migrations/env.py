"""Alembic environment of the studio database. `protege studio` runs it in-process through
`protege.systems.feedback.db.upgrade`, which hands over an open connection (so SQLite's pragmas
and the psycopg driver are the server's own); `alembic -x db=URL upgrade head` from this folder
works too, for an operator who wants to migrate by hand."""

from alembic import context

from protege.systems.feedback.db import Base, make_engine

target_metadata = Base.metadata


def run_migrations(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    run_migrations(connection)
else:
    db = context.get_x_argument(as_dictionary=True).get("db")
    if not db:
        raise SystemExit("pass the database: alembic -x db=studio.db upgrade head")
    with make_engine(db).begin() as conn:
        run_migrations(conn)

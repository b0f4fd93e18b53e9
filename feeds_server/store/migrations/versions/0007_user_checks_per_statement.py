"""The people that notifications and follows name checked once per statement, not once per row.

Migrations 0005 and 0006 dropped the foreign keys of audience rows, notifications, events, event
channels and follows, whose per-row checks were most of the cost of a record batch. Most of what
those rows name is held by their own transaction: the post or comment of an audience row or a
notification is written in it (or, for a comment, checked by the comment's foreign key), a follow's
record is written or locked by it, and every such transaction appends events, which locks the org
row until commit. The people are the exception: a mention names members the transaction only read.
So that no writer can name a user that does not exist, nor one being deleted, user references are
checked again, per statement: after each INSERT the distinct users its rows name are looked up once
and locked `FOR KEY SHARE`, as the foreign key's check did, and a missing one fails the statement
with the foreign-key error (23503). The columns are never updated to another user (an actor is only
unset). On SQLite, where writers run one at a time, a row trigger does the same.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

# table -> (column, parent table) of the user references whose foreign keys 0005 and 0006 dropped
PARENTS = {
    'notifications': (('user_id', 'users'), ('actor_id', 'users')),
    'follows': (('user_id', 'users'),),
}


def _pg_check(table: str, column: str, parent: str) -> str:
    return (
        f"IF (SELECT count(*) FROM (SELECT 1 FROM \"{parent}\" p WHERE p.id IN (SELECT {column} FROM added) FOR KEY SHARE OF p) l)\n"
        f"   <> (SELECT count(DISTINCT {column}) FROM added) THEN\n"
        f"  RAISE EXCEPTION 'insert on \"{table}\": {column} names no row of \"{parent}\"' USING ERRCODE = 'foreign_key_violation';\n"
        "END IF;"
    )


def upgrade() -> None:
    sqlite = op.get_context().dialect.name == 'sqlite'
    for table, keys in PARENTS.items():
        if sqlite:
            for column, parent in keys:
                op.execute(
                    f'CREATE TRIGGER {table}_{column}_exists BEFORE INSERT ON "{table}"'
                    f' WHEN NEW.{column} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "{parent}" WHERE id = NEW.{column})'
                    f" BEGIN SELECT RAISE(ABORT, 'FOREIGN KEY constraint failed: {table}.{column}'); END"
                )
            continue
        checks = '\n'.join(_pg_check(table, column, parent) for column, parent in keys)
        # As a foreign key's check, whatever the transaction's org scope (users belong to no org).
        op.execute(
            f"CREATE FUNCTION {table}_users_exist() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            "BEGIN\n"
            f"{checks}\n"
            "RETURN NULL;\nEND $$"
        )
        op.execute(
            f'CREATE TRIGGER {table}_users_exist AFTER INSERT ON "{table}" REFERENCING NEW TABLE AS added'
            f' FOR EACH STATEMENT EXECUTE FUNCTION {table}_users_exist()'
        )


def downgrade() -> None:
    sqlite = op.get_context().dialect.name == 'sqlite'
    for table, keys in PARENTS.items():
        if sqlite:
            for column, _ in keys:
                op.execute(f'DROP TRIGGER IF EXISTS {table}_{column}_exists')
            continue
        op.execute(f'DROP TRIGGER IF EXISTS {table}_users_exist ON "{table}"')
        op.execute(f'DROP FUNCTION IF EXISTS {table}_users_exist()')

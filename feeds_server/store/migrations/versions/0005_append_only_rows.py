"""Append-only rows without per-row foreign-key checks; indexes on the org alone dropped.

A batch of record events writes, per follower of each item, an audience row, a notification, the
notification's event and event-channel rows: about 24,000 rows for 500 events. Each foreign key
made PostgreSQL look the parent up again for every one of those rows (a trigger and a query per
row and key: most of the time of the inserts). These tables are written only by the server, in the
transaction that writes or reads their parents:

- `post_audience` rows with their post, which the same statement sequence inserts;
- `notifications` for a post or comment of the same transaction (or one whose new comment the
  database checked), for members the transaction read; a record batch also locks its followers'
  user rows as the foreign key did (actions/records.py);
- `events` and `event_channels` after the transaction's `UPDATE orgs … RETURNING event_seq`
  (store/events.py): the org row is locked until commit, so it exists, and an org deleted before
  makes that update find nothing and the transaction fail.

What the foreign keys did on delete stays in the database: a trigger on `orgs`, `posts`, `comments`
and `users` deletes (or, for a notification's actor, sets to null) the rows that named the deleted
parent, once per statement on PostgreSQL, once per row on SQLite.

`ix_<table>_org_id` on these tables and on `follows` is dropped: every query of them, the org's
deletion included, filters by the org and more, which a composite index or primary key beginning
with `org_id` serves.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

# table -> (column, parent, on delete) of each dropped foreign key
FOREIGN_KEYS = {
    'post_audience': (('org_id', 'orgs', 'CASCADE'), ('post_id', 'posts', 'CASCADE')),
    'notifications': (
        ('org_id', 'orgs', 'CASCADE'), ('user_id', 'users', 'CASCADE'), ('actor_id', 'users', 'SET NULL'),
        ('post_id', 'posts', 'CASCADE'), ('comment_id', 'comments', 'CASCADE'),
    ),
    'event_channels': (('org_id', 'orgs', 'CASCADE'),),
    'events': (('org_id', 'orgs', 'CASCADE'),),
}
ORG_INDEXED = ('post_audience', 'notifications', 'event_channels', 'events', 'follows')

# parent -> what deleting it does to the rows that name it: (child, column, on delete)
CHILDREN: dict[str, list[tuple[str, str, str]]] = {}
for _child, _keys in FOREIGN_KEYS.items():
    for _column, _parent, _action in _keys:
        CHILDREN.setdefault(_parent, []).append((_child, _column, _action))


def _fk(table: str, column: str, parent: str) -> str:
    return f'fk_{table}_{column}_{parent}'


def _pg_statement(child: str, column: str, action: str) -> str:
    gone = f'{column} = ANY (ARRAY(SELECT id FROM gone))'
    if action == 'CASCADE':
        return f'DELETE FROM "{child}" WHERE {gone};'
    return f'UPDATE "{child}" SET {column} = NULL WHERE {gone};'


def _sqlite_statement(child: str, column: str, action: str) -> str:
    if action == 'CASCADE':
        return f'DELETE FROM "{child}" WHERE {column} = OLD.id;'
    return f'UPDATE "{child}" SET {column} = NULL WHERE {column} = OLD.id;'


def upgrade() -> None:
    sqlite = op.get_context().dialect.name == 'sqlite'
    if sqlite:
        # Recreating `notifications` drops the old table, which nulls `email_jobs.notification_id`
        # (ON DELETE SET NULL): keep the links and put them back.
        op.execute('CREATE TEMP TABLE keep_email_job_notifications AS SELECT id, notification_id FROM email_jobs WHERE notification_id IS NOT NULL')
    for table in ORG_INDEXED:
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_index(f'ix_{table}_org_id')
            for column, parent, _ in FOREIGN_KEYS.get(table, ()):
                batch_op.drop_constraint(_fk(table, column, parent), type_='foreignkey')
    if sqlite:
        op.execute(
            'UPDATE email_jobs SET notification_id = (SELECT k.notification_id FROM keep_email_job_notifications k WHERE k.id = email_jobs.id)'
            ' WHERE id IN (SELECT id FROM keep_email_job_notifications)'
        )
        op.execute('DROP TABLE keep_email_job_notifications')
    for parent, children in CHILDREN.items():
        if sqlite:
            body = ' '.join(_sqlite_statement(*c) for c in children)
            op.execute(f'CREATE TRIGGER {parent}_drop_children AFTER DELETE ON "{parent}" FOR EACH ROW BEGIN {body} END')
            continue
        # As the foreign keys' actions did, past row-level security (the rows named a parent this
        # transaction was allowed to delete), then the transaction's scope as it was.
        body = '\n'.join(_pg_statement(*c) for c in children)
        op.execute(
            f"CREATE FUNCTION {parent}_drop_children() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            "DECLARE scope text := coalesce(current_setting('feeds.all_orgs', true), '');\n"
            "BEGIN\nIF EXISTS (SELECT 1 FROM gone) THEN\n"
            "PERFORM set_config('feeds.all_orgs', 'on', true);\n"
            f"{body}\n"
            "PERFORM set_config('feeds.all_orgs', scope, true);\n"
            "END IF;\nRETURN NULL;\nEND $$"
        )
        op.execute(
            f'CREATE TRIGGER {parent}_drop_children AFTER DELETE ON "{parent}" REFERENCING OLD TABLE AS gone'
            f' FOR EACH STATEMENT EXECUTE FUNCTION {parent}_drop_children()'
        )


def downgrade() -> None:
    sqlite = op.get_context().dialect.name == 'sqlite'
    for parent in CHILDREN:
        op.execute(f'DROP TRIGGER IF EXISTS {parent}_drop_children' + ('' if sqlite else f' ON "{parent}"'))
        if not sqlite:
            op.execute(f'DROP FUNCTION IF EXISTS {parent}_drop_children()')
    for table in ORG_INDEXED:
        with op.batch_alter_table(table) as batch_op:
            batch_op.create_index(f'ix_{table}_org_id', ['org_id'], unique=False)
            for column, parent, action in FOREIGN_KEYS.get(table, ()):
                batch_op.create_foreign_key(_fk(table, column, parent), parent, [column], ['id'], ondelete=action)

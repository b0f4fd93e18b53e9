"""Follows without per-row foreign-key checks, as audience rows and notifications (0005).

A batch of record events adds a follow per follower of each new record (about 2,600 for 500
events), and each of the three foreign keys made PostgreSQL look its parent up again for every
row. Follows are written only by the server: a record batch writes them for records it inserted or
locked (`SELECT … FOR UPDATE`), for people whose user rows it locks (`FOR KEY SHARE`, as the
foreign key's check did), and appends events, which lock the org row (0005); a follow by hand locks
its user and record likewise (actions/records.py).

What the foreign keys did on delete stays: deleting an org, a record or a user deletes the follows
that named it (a trigger, once per statement on PostgreSQL, once per row on SQLite).

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

# parent -> (condition naming the deleted rows on PostgreSQL, the same for one row on SQLite)
PARENTS = {
    'orgs': ('org_id = ANY (ARRAY(SELECT id FROM gone))', 'org_id = OLD.id'),
    'records': ('(org_id, record_id) IN (SELECT org_id, id FROM gone)', 'org_id = OLD.org_id AND record_id = OLD.id'),
    'users': ('user_id = ANY (ARRAY(SELECT id FROM gone))', 'user_id = OLD.id'),
}
FOREIGN_KEYS = (('org_id', 'orgs'), ('record_id', 'records'), ('user_id', 'users'))


def upgrade() -> None:
    sqlite = op.get_context().dialect.name == 'sqlite'
    with op.batch_alter_table('follows') as batch_op:
        for column, parent in FOREIGN_KEYS:
            batch_op.drop_constraint(f'fk_follows_{column}_{parent}', type_='foreignkey')
    for parent, (pg_gone, sqlite_gone) in PARENTS.items():
        if sqlite:
            op.execute(f'CREATE TRIGGER {parent}_drop_follows AFTER DELETE ON "{parent}" FOR EACH ROW BEGIN DELETE FROM follows WHERE {sqlite_gone}; END')
            continue
        # Past row-level security, as the foreign keys' actions did (0005), then the scope as it was.
        op.execute(
            f"CREATE FUNCTION {parent}_drop_follows() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            "DECLARE scope text := coalesce(current_setting('feeds.all_orgs', true), '');\n"
            "BEGIN\nIF EXISTS (SELECT 1 FROM gone) THEN\n"
            "PERFORM set_config('feeds.all_orgs', 'on', true);\n"
            f"DELETE FROM follows WHERE {pg_gone};\n"
            "PERFORM set_config('feeds.all_orgs', scope, true);\n"
            "END IF;\nRETURN NULL;\nEND $$"
        )
        op.execute(
            f'CREATE TRIGGER {parent}_drop_follows AFTER DELETE ON "{parent}" REFERENCING OLD TABLE AS gone'
            f' FOR EACH STATEMENT EXECUTE FUNCTION {parent}_drop_follows()'
        )


def downgrade() -> None:
    sqlite = op.get_context().dialect.name == 'sqlite'
    for parent in PARENTS:
        op.execute(f'DROP TRIGGER IF EXISTS {parent}_drop_follows' + ('' if sqlite else f' ON "{parent}"'))
        if not sqlite:
            op.execute(f'DROP FUNCTION IF EXISTS {parent}_drop_follows()')
    with op.batch_alter_table('follows') as batch_op:
        for column, parent in FOREIGN_KEYS:
            batch_op.create_foreign_key(f'fk_follows_{column}_{parent}', parent, [column], ['id'], ondelete='CASCADE')

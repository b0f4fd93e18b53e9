"""Full-text search over posts, messages, record updates and comments, kept by triggers.

`search_items` holds one row per post and per comment with what a search filters on (author,
group, module, kind, files, time). Triggers on `posts`, `comments` and `attachments` write it in
the statement that writes them, so every path (the ORM, the group commit's single driver statement,
bulk record updates, edits, imports, deletes and erasure) keeps the index in its own transaction.

PostgreSQL: `search_items.tsv` holds the English and the French lexemes of the unaccented text
(`feeds_search_vector`, IMMUTABLE, on the `unaccent` extension), under a GIN index. The triggers
are per statement with transition tables for inserts and deletes (a batch of record updates is one
INSERT), per row for updates of the few columns that matter.

SQLite: the FTS5 table `search_fts` (rowid = `search_items.id`) holds the lexemes in two columns,
`en` and `fr`, computed by `search_stems(text, lang)`, a Python function the server registers on
every connection (store/sqlite_functions.py). Its rows follow `search_items` rows by triggers.

Existing posts and comments are indexed here.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import TSVECTOR

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
When = sa.DateTime(timezone=True)

# The org-owned tables this revision adds (tests/abuse/test_row_level_security.py reads this name).
ORG_TABLES_ADDED = ('search_items',)
# SQLite only, outside the models: the FTS5 table (and the shadow tables SQLite names after it).
SQLITE_FTS_TABLE = 'search_fts'
POLICY = (
    "org_id = nullif(current_setting('feeds.org_id', true), '')::bigint "
    "OR current_setting('feeds.all_orgs', true) = 'on'"
)

SEARCH_ORDER_INDEXES = {
    'ix_search_items_recent': ['org_id', 'id'],
    'ix_search_items_author': ['org_id', 'author_id', 'id'],
    'ix_search_items_group': ['org_id', 'group_id', 'id'],
    'ix_search_items_module': ['org_id', 'module', 'id'],
    'ix_search_items_kind': ['org_id', 'kind', 'id'],
    'ix_search_items_time': ['org_id', 'created_at'],
}

_KIND = "CASE {p}.kind WHEN 'private' THEN 'message' WHEN 'record' THEN 'record' ELSE 'status' END"
_COLUMNS = 'org_id, post_id, comment_id, kind, author_id, group_id, module, has_file, created_at'
_MENTION = r"'@\[(user|role|group):[0-9]{1,19}\]'"

PG_FUNCTIONS = {
    'feeds_search_vector(text)': f"""
CREATE OR REPLACE FUNCTION feeds_search_vector(body text) RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $$
    SELECT to_tsvector('english'::regconfig, t) || to_tsvector('french'::regconfig, t)
    FROM (SELECT lower(public.unaccent('public.unaccent'::regdictionary, regexp_replace(body, {_MENTION}, ' ', 'g'))) AS t) AS s
$$""",
    # A query word or phrase, already unaccented and in lower case: either language's lexemes.
    'feeds_search_word(text)': """
CREATE OR REPLACE FUNCTION feeds_search_word(word text) RETURNS tsquery
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $$
    SELECT plainto_tsquery('english'::regconfig, word) || plainto_tsquery('french'::regconfig, word)
$$""",
    'feeds_search_phrase(text)': """
CREATE OR REPLACE FUNCTION feeds_search_phrase(words text) RETURNS tsquery
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $$
    SELECT phraseto_tsquery('english'::regconfig, words) || phraseto_tsquery('french'::regconfig, words)
$$""",
    'feeds_search_posts_added()': f"""
CREATE OR REPLACE FUNCTION feeds_search_posts_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO search_items ({_COLUMNS}, tsv)
    SELECT p.org_id, p.id, NULL, {_KIND.format(p='p')}, p.author_id, p.group_id, p.module, false, p.created_at,
           feeds_search_vector(p.body)
    FROM added AS p;
    RETURN NULL;
END $$""",
    'feeds_search_post_changed()': """
CREATE OR REPLACE FUNCTION feeds_search_post_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.body IS DISTINCT FROM OLD.body OR NEW.author_id IS DISTINCT FROM OLD.author_id THEN
        UPDATE search_items SET tsv = feeds_search_vector(NEW.body), author_id = NEW.author_id
        WHERE org_id = NEW.org_id AND post_id = NEW.id AND comment_id IS NULL;
    END IF;
    IF NEW.group_id IS DISTINCT FROM OLD.group_id OR NEW.module IS DISTINCT FROM OLD.module THEN
        UPDATE search_items SET group_id = NEW.group_id, module = NEW.module
        WHERE org_id = NEW.org_id AND post_id = NEW.id;
    END IF;
    RETURN NULL;
END $$""",
    'feeds_search_posts_gone()': """
CREATE OR REPLACE FUNCTION feeds_search_posts_gone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM search_items AS s USING gone AS g WHERE s.org_id = g.org_id AND s.post_id = g.id;
    RETURN NULL;
END $$""",
    'feeds_search_comments_added()': f"""
CREATE OR REPLACE FUNCTION feeds_search_comments_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO search_items ({_COLUMNS}, tsv)
    SELECT c.org_id, c.post_id, c.id, 'comment', c.author_id, p.group_id, p.module, false, c.created_at,
           feeds_search_vector(c.body)
    FROM added AS c JOIN posts AS p ON p.id = c.post_id;
    RETURN NULL;
END $$""",
    'feeds_search_comment_changed()': """
CREATE OR REPLACE FUNCTION feeds_search_comment_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.body IS DISTINCT FROM OLD.body OR NEW.author_id IS DISTINCT FROM OLD.author_id THEN
        UPDATE search_items SET tsv = feeds_search_vector(NEW.body), author_id = NEW.author_id
        WHERE org_id = NEW.org_id AND comment_id = NEW.id;
    END IF;
    RETURN NULL;
END $$""",
    'feeds_search_comments_gone()': """
CREATE OR REPLACE FUNCTION feeds_search_comments_gone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM search_items AS s USING gone AS g WHERE s.org_id = g.org_id AND s.comment_id = g.id;
    RETURN NULL;
END $$""",
    'feeds_search_files_added()': """
CREATE OR REPLACE FUNCTION feeds_search_files_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE search_items AS s SET has_file = true
    FROM (SELECT DISTINCT org_id, post_id FROM added) AS a
    WHERE s.org_id = a.org_id AND s.post_id = a.post_id AND s.comment_id IS NULL AND NOT s.has_file;
    RETURN NULL;
END $$""",
    'feeds_search_files_gone()': """
CREATE OR REPLACE FUNCTION feeds_search_files_gone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE search_items AS s SET has_file = EXISTS (SELECT 1 FROM attachments AS x WHERE x.org_id = s.org_id AND x.post_id = s.post_id)
    FROM (SELECT DISTINCT org_id, post_id FROM gone) AS g
    WHERE s.org_id = g.org_id AND s.post_id = g.post_id AND s.comment_id IS NULL;
    RETURN NULL;
END $$""",
}

# (trigger, table, when, function)
PG_TRIGGERS = (
    ('search_posts_added', 'posts', 'AFTER INSERT', 'REFERENCING NEW TABLE AS added FOR EACH STATEMENT', 'feeds_search_posts_added'),
    ('search_post_changed', 'posts', 'AFTER UPDATE OF body, author_id, group_id, module', 'FOR EACH ROW', 'feeds_search_post_changed'),
    ('search_posts_gone', 'posts', 'AFTER DELETE', 'REFERENCING OLD TABLE AS gone FOR EACH STATEMENT', 'feeds_search_posts_gone'),
    ('search_comments_added', 'comments', 'AFTER INSERT', 'REFERENCING NEW TABLE AS added FOR EACH STATEMENT', 'feeds_search_comments_added'),
    ('search_comment_changed', 'comments', 'AFTER UPDATE OF body, author_id', 'FOR EACH ROW', 'feeds_search_comment_changed'),
    ('search_comments_gone', 'comments', 'AFTER DELETE', 'REFERENCING OLD TABLE AS gone FOR EACH STATEMENT', 'feeds_search_comments_gone'),
    ('search_files_added', 'attachments', 'AFTER INSERT', 'REFERENCING NEW TABLE AS added FOR EACH STATEMENT', 'feeds_search_files_added'),
    ('search_files_gone', 'attachments', 'AFTER DELETE', 'REFERENCING OLD TABLE AS gone FOR EACH STATEMENT', 'feeds_search_files_gone'),
)

_FTS_BODY = (
    "CASE WHEN new.comment_id IS NULL THEN (SELECT body FROM posts WHERE id = new.post_id) "
    "ELSE (SELECT body FROM comments WHERE id = new.comment_id) END"
)
SQLITE_TRIGGERS = {
    'search_items_added': f"""
CREATE TRIGGER search_items_added AFTER INSERT ON search_items BEGIN
    INSERT INTO search_fts (rowid, en, fr)
    SELECT new.id, search_stems(b, 'en'), search_stems(b, 'fr') FROM (SELECT {_FTS_BODY} AS b);
END""",
    'search_items_gone': """
CREATE TRIGGER search_items_gone AFTER DELETE ON search_items BEGIN
    DELETE FROM search_fts WHERE rowid = old.id;
END""",
    'search_posts_added': f"""
CREATE TRIGGER search_posts_added AFTER INSERT ON posts BEGIN
    INSERT INTO search_items ({_COLUMNS})
    VALUES (new.org_id, new.id, NULL, {_KIND.format(p='new')}, new.author_id, new.group_id, new.module, 0, new.created_at);
END""",
    'search_post_text': """
CREATE TRIGGER search_post_text AFTER UPDATE OF body ON posts WHEN new.body IS NOT old.body BEGIN
    UPDATE search_fts SET en = search_stems(new.body, 'en'), fr = search_stems(new.body, 'fr')
    WHERE rowid IN (SELECT id FROM search_items WHERE org_id = new.org_id AND post_id = new.id AND comment_id IS NULL);
END""",
    'search_post_fields': """
CREATE TRIGGER search_post_fields AFTER UPDATE OF author_id, group_id, module ON posts BEGIN
    UPDATE search_items SET author_id = new.author_id WHERE org_id = new.org_id AND post_id = new.id AND comment_id IS NULL;
    UPDATE search_items SET group_id = new.group_id, module = new.module WHERE org_id = new.org_id AND post_id = new.id;
END""",
    'search_posts_gone': """
CREATE TRIGGER search_posts_gone AFTER DELETE ON posts BEGIN
    DELETE FROM search_items WHERE org_id = old.org_id AND post_id = old.id;
END""",
    'search_comments_added': f"""
CREATE TRIGGER search_comments_added AFTER INSERT ON comments BEGIN
    INSERT INTO search_items ({_COLUMNS})
    SELECT new.org_id, new.post_id, new.id, 'comment', new.author_id, p.group_id, p.module, 0, new.created_at
    FROM posts AS p WHERE p.id = new.post_id;
END""",
    'search_comment_text': """
CREATE TRIGGER search_comment_text AFTER UPDATE OF body ON comments WHEN new.body IS NOT old.body BEGIN
    UPDATE search_fts SET en = search_stems(new.body, 'en'), fr = search_stems(new.body, 'fr')
    WHERE rowid IN (SELECT id FROM search_items WHERE org_id = new.org_id AND comment_id = new.id);
END""",
    'search_comment_fields': """
CREATE TRIGGER search_comment_fields AFTER UPDATE OF author_id ON comments BEGIN
    UPDATE search_items SET author_id = new.author_id WHERE org_id = new.org_id AND comment_id = new.id;
END""",
    'search_comments_gone': """
CREATE TRIGGER search_comments_gone AFTER DELETE ON comments BEGIN
    DELETE FROM search_items WHERE org_id = old.org_id AND comment_id = old.id;
END""",
    'search_files_added': """
CREATE TRIGGER search_files_added AFTER INSERT ON attachments BEGIN
    UPDATE search_items SET has_file = 1 WHERE org_id = new.org_id AND post_id = new.post_id AND comment_id IS NULL AND NOT has_file;
END""",
    'search_files_gone': """
CREATE TRIGGER search_files_gone AFTER DELETE ON attachments BEGIN
    UPDATE search_items SET has_file = EXISTS (SELECT 1 FROM attachments AS x WHERE x.org_id = old.org_id AND x.post_id = old.post_id)
    WHERE org_id = old.org_id AND post_id = old.post_id AND comment_id IS NULL;
END""",
}


def upgrade() -> None:
    pg = op.get_context().dialect.name == 'postgresql'
    op.create_table(
        'search_items',
        sa.Column('id', BigId, primary_key=True, autoincrement=True),
        sa.Column('post_id', BigId, nullable=False),
        sa.Column('comment_id', BigId, nullable=True),
        sa.Column('kind', sa.String(16), nullable=False),
        sa.Column('author_id', BigId, nullable=True),
        sa.Column('group_id', BigId, nullable=True),
        sa.Column('module', sa.String(64), nullable=True),
        sa.Column('has_file', sa.Boolean(), nullable=False),
        sa.Column('created_at', When, nullable=False),
        sa.Column('tsv', TSVECTOR().with_variant(sa.Text(), 'sqlite'), nullable=True),
        sa.Column('org_id', BigId, sa.ForeignKey('orgs.id', name='fk_search_items_org_id_orgs', ondelete='CASCADE'), nullable=False),
        sa.PrimaryKeyConstraint('id', name='pk_search_items'),
    )
    op.create_index('ix_search_items_org_id', 'search_items', ['org_id'])
    op.create_index('ix_search_items_post', 'search_items', ['org_id', 'post_id', 'comment_id'])
    op.create_index('ix_search_items_comment', 'search_items', ['org_id', 'comment_id'])
    # A search takes the newest matches first (store/search.py): an org's items by id, alone or
    # under a filter, so that a backward scan of one of these stops after a window of matches.
    for name, columns in SEARCH_ORDER_INDEXES.items():
        op.create_index(name, 'search_items', columns)
    op.create_index('ix_search_items_files', 'search_items', ['org_id', 'id'],
                    postgresql_where=sa.text('has_file'), sqlite_where=sa.text('has_file'))

    if pg:
        op.execute('CREATE EXTENSION IF NOT EXISTS unaccent SCHEMA public')
        for sql in PG_FUNCTIONS.values():
            op.execute(sql)
        # Existing items, before the triggers exist (migrations run with feeds.all_orgs on).
        # Existing items, before the triggers exist (migrations run with feeds.all_orgs on), in the
        # order they were written, so that ids grow with time as they do for new items.
        op.execute(
            f"INSERT INTO search_items ({_COLUMNS}, tsv) SELECT * FROM ("
            f"SELECT p.org_id, p.id, NULL::bigint, {_KIND.format(p='p')}, p.author_id, p.group_id, p.module, "
            "EXISTS (SELECT 1 FROM attachments AS a WHERE a.post_id = p.id), p.created_at, feeds_search_vector(p.body) "
            "FROM posts AS p UNION ALL "
            "SELECT c.org_id, c.post_id, c.id, 'comment', c.author_id, p.group_id, p.module, false, c.created_at, "
            "feeds_search_vector(c.body) FROM comments AS c JOIN posts AS p ON p.id = c.post_id"
            ") AS x (org_id, post_id, comment_id, kind, author_id, group_id, module, has_file, created_at, tsv) "
            "ORDER BY x.created_at, x.post_id, x.comment_id NULLS FIRST"
        )
        op.create_index('ix_search_items_tsv', 'search_items', ['tsv'], postgresql_using='gin')
        for name, table, when, each, function in PG_TRIGGERS:
            op.execute(f'CREATE TRIGGER {name} {when} ON "{table}" {each} EXECUTE FUNCTION {function}()')
        for table in ORG_TABLES_ADDED:
            op.execute(f'ALTER TABLE "{table}" ENABLE ROW LEVEL SECURITY')
            op.execute(f'ALTER TABLE "{table}" FORCE ROW LEVEL SECURITY')
            op.execute(f'CREATE POLICY org_scope ON "{table}" USING ({POLICY}) WITH CHECK ({POLICY})')
    else:
        op.create_index('ix_search_items_tsv', 'search_items', ['tsv'])
        op.execute(f"CREATE VIRTUAL TABLE {SQLITE_FTS_TABLE} USING fts5(en, fr, tokenize = 'unicode61 remove_diacritics 2')")
        op.execute(SQLITE_TRIGGERS['search_items_added'])
        op.execute(SQLITE_TRIGGERS['search_items_gone'])
        # Existing items (the trigger just made fills search_fts), in the order they were written.
        op.execute(
            f"INSERT INTO search_items ({_COLUMNS}) SELECT * FROM ("
            f"SELECT p.org_id, p.id, NULL, {_KIND.format(p='p')}, p.author_id, p.group_id, p.module, "
            "EXISTS (SELECT 1 FROM attachments AS a WHERE a.post_id = p.id), p.created_at FROM posts AS p UNION ALL "
            "SELECT c.org_id, c.post_id, c.id, 'comment', c.author_id, p.group_id, p.module, 0, c.created_at "
            "FROM comments AS c JOIN posts AS p ON p.id = c.post_id) ORDER BY 9, 2, 3"
        )
        for name, sql in SQLITE_TRIGGERS.items():
            if name not in ('search_items_added', 'search_items_gone'):
                op.execute(sql)


def downgrade() -> None:
    if op.get_context().dialect.name == 'postgresql':
        for name, table, _when, _each, _function in PG_TRIGGERS:
            op.execute(f'DROP TRIGGER IF EXISTS {name} ON "{table}"')
        op.drop_table('search_items')
        for signature in PG_FUNCTIONS:
            op.execute(f'DROP FUNCTION IF EXISTS {signature}')
    else:
        for name in SQLITE_TRIGGERS:
            op.execute(f'DROP TRIGGER IF EXISTS {name}')
        op.execute(f'DROP TABLE IF EXISTS {SQLITE_FTS_TABLE}')
        op.drop_table('search_items')

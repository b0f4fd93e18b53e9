#!/bin/sh
# Run once by the postgres image on an empty data folder: the role the feeds processes connect as.
# It owns the database but is neither a superuser nor BYPASSRLS, so PostgreSQL's row-level security
# applies to it (docs/operations.md, "Row-level security"); the superuser is for administration only.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v role="feeds" -v password="$POSTGRES_PASSWORD" <<'SQL'
CREATE ROLE :"role" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS PASSWORD :'password';
CREATE DATABASE feeds OWNER :"role";
SQL

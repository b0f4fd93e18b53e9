"""Storage: SQLAlchemy models, the org-scoped session layer and Alembic migrations."""

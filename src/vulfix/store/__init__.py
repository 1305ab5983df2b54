"""Persistence: SQLAlchemy Core tables, queries and alembic migrations (SQLite, PostgreSQL)."""

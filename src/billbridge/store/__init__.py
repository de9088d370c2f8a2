"""Persistence: SQLAlchemy tables, the database engine and migrations."""

"""Alembic migrations of the application database."""

"""Database tables (SQLModel), input schemas, settings and database setup."""

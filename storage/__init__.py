"""Persistence: SQLModel tables, engine and sessions, repositories, Alembic migrations. Imports nothing from app/."""

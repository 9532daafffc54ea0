"""Repositories: the only code that adds, changes or commits rows. Every user-data query filters by user."""

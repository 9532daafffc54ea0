"""Users."""

from __future__ import annotations

from sqlmodel import Session, select

from storage.models import User


def get_by_email(session: Session, email: str) -> User | None:
    return session.exec(select(User).where(User.email == email)).first()


def get(session: Session, user_id: str) -> User | None:
    return session.get(User, user_id)


def add(session: Session, user: User) -> User:
    session.add(user)
    session.flush()
    return user


def bump_token_version(session: Session, user_id: str) -> int:
    user = session.get(User, user_id, with_for_update=True)
    if user is None:
        raise LookupError(user_id)
    user.token_version += 1
    session.add(user)
    return user.token_version

"""Lease rows with fencing tokens and cluster heartbeats (app/cluster/leases.py is the API).

Every time is the database's clock in epoch milliseconds, never a replica's: two replicas whose clocks disagree
still agree on who holds a lease. Each function is one statement, so two replicas racing cannot both win."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Table,
    and_,
    case,
    delete,
    func,
    literal_column,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from storage.models import ClusterMember, LeaseRow

LEASES: Table = LeaseRow.__table__  # type: ignore[attr-defined]
MEMBERS: Table = ClusterMember.__table__  # type: ignore[attr-defined]
# How long `acquire` waits for a lease row that an owner's batch has locked `FOR SHARE` (its fence): that owner is
# writing under the lease right now, so it is not free; waiting longer would stall the caller's renewals.
ACQUIRE_LOCK_TIMEOUT_MS = 200
LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's SQLSTATE when lock_timeout ends a wait
# A replica's database sessions carry this prefix and its owner id as `application_name` (PostgreSQL).
SESSION_NAME_PREFIX = "tradewind:"
# A member not seen for this many ttls is deleted (a replica gets a new owner id at every start).
FORGET_MEMBERS_AFTER_TTLS = 100

_NOW_SQL = {
    "postgresql": "(extract(epoch from clock_timestamp()) * 1000)::bigint",
    "sqlite": "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)",
}


def _is_sqlite(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"


def db_now(session: Session) -> ColumnElement[int]:
    """The database's clock, epoch milliseconds, as an SQL expression."""
    return literal_column(_NOW_SQL["sqlite" if _is_sqlite(session) else "postgresql"], BigInteger)


def now_ms(session: Session) -> int:
    return int(session.execute(select(db_now(session))).scalar_one())


def acquire(session: Session, name: str, owner: str, ttl_ms: int) -> int | None:
    """Take the lease if it is missing (token 1), expired (token + 1) or already ours and live (same token, renewed);
    return its token, or None while another owner holds it live. One INSERT … ON CONFLICT DO UPDATE … WHERE.
    PostgreSQL: a row locked by a fenced batch raises OperationalError with SQLSTATE `LOCK_NOT_AVAILABLE` after
    `ACQUIRE_LOCK_TIMEOUT_MS` (the holder is busy, not gone)."""
    if not _is_sqlite(session):
        session.execute(text(f"SET LOCAL lock_timeout = {ACQUIRE_LOCK_TIMEOUT_MS}"))
    now = db_now(session)
    dialect = sqlite if _is_sqlite(session) else postgresql
    insert = dialect.insert(LEASES).values(name=name, owner=owner, token=1, expires_at_ms=now + ttl_ms)
    c = LEASES.c
    mine_and_live = and_(c.owner == owner, c.expires_at_ms > now)
    statement = insert.on_conflict_do_update(
        index_elements=[c.name],
        set_={
            "owner": owner,
            "token": case((mine_and_live, c.token), else_=c.token + 1),
            "expires_at_ms": now + ttl_ms,
        },
        where=or_(c.expires_at_ms <= now, c.owner == owner),
    ).returning(c.token)
    token = session.execute(statement).scalar_one_or_none()
    return None if token is None else int(token)


def renew(session: Session, name: str, owner: str, token: int, ttl_ms: int) -> bool:
    """Extend the lease iff `owner` still holds it with this `token` (expired or not: nobody took it).
    PostgreSQL: waits at most a quarter ttl for a batch that holds the row (lock_timeout: an OperationalError, the
    caller tries again; not a lost lease)."""
    if not _is_sqlite(session):
        session.execute(text(f"SET LOCAL lock_timeout = {max(ACQUIRE_LOCK_TIMEOUT_MS, ttl_ms // 4)}"))
    c = LEASES.c
    statement = (
        update(LEASES)
        .where(c.name == name, c.owner == owner, c.token == token)
        .values(expires_at_ms=db_now(session) + ttl_ms)
        .returning(c.name)
    )
    return session.execute(statement).first() is not None


def release(session: Session, name: str, owner: str, token: int) -> None:
    """Expire the lease now iff still ours; the token stays, so the next owner gets token + 1."""
    c = LEASES.c
    session.execute(
        update(LEASES).where(c.name == name, c.owner == owner, c.token == token).values(expires_at_ms=db_now(session))
    )


def holders(session: Session, names: Sequence[str], *, for_share: bool) -> dict[str, tuple[str, int]]:
    """name -> (owner, token) of these leases; `for_share` locks the rows (PostgreSQL `FOR SHARE`) until the end
    of the transaction, so a takeover's UPDATE waits for it."""
    c = LEASES.c
    query = select(c.name, c.owner, c.token).where(c.name.in_(sorted(set(names)))).order_by(c.name)
    if for_share and not _is_sqlite(session):
        query = query.with_for_update(read=True)
    return {name: (owner, int(token)) for name, owner, token in session.execute(query)}


def takeable(session: Session, names: Sequence[str], owner: str) -> list[str]:
    """Those of `names` that `acquire` would give `owner` now (missing, expired, or already ours), in their order:
    one read, so a replica looks for free partitions without one write per partition."""
    c = LEASES.c
    query = select(c.name).where(c.name.in_(set(names)), c.expires_at_ms > db_now(session), c.owner != owner)
    taken = set(session.execute(query).scalars())
    return [name for name in names if name not in taken]


def heartbeat(session: Session, owner: str, ttl_ms: int) -> None:
    """Upsert this replica's `seen_at_ms`; forget replicas gone for long."""
    now = db_now(session)
    dialect = sqlite if _is_sqlite(session) else postgresql
    insert = dialect.insert(MEMBERS).values(owner=owner, seen_at_ms=now)
    session.execute(insert.on_conflict_do_update(index_elements=[MEMBERS.c.owner], set_={"seen_at_ms": now}))
    forget = delete(MEMBERS).where(MEMBERS.c.seen_at_ms < now - ttl_ms * FORGET_MEMBERS_AFTER_TTLS)
    if not _is_sqlite(session):  # not while its sessions may still hold locks: `end_sessions_of_dead_members` first
        sessions_gone = text(
            "NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = :prefix || cluster_members.owner"
            " AND xact_start IS NOT NULL)"
        ).bindparams(prefix=SESSION_NAME_PREFIX)
        forget = forget.where(sessions_gone)
    session.execute(forget)


def live_members(session: Session, ttl_ms: int) -> int:
    """Replicas seen within the ttl."""
    query = select(func.count()).select_from(MEMBERS).where(MEMBERS.c.seen_at_ms > db_now(session) - ttl_ms)
    return int(session.execute(query).scalar_one())


def forget_member(session: Session, owner: str) -> None:
    """A replica leaving gracefully: the others stop counting it at once."""
    session.execute(delete(MEMBERS).where(MEMBERS.c.owner == owner))


def session_name(owner: str) -> str:
    """The `application_name` of a replica's database sessions."""
    return f"{SESSION_NAME_PREFIX}{owner}"


def end_sessions_of_dead_members(session: Session, ttl_ms: int) -> int:
    """PostgreSQL: terminate the sessions that replicas no longer heartbeating (not seen for a ttl) left inside a
    transaction; returns how many. A replica frozen mid-batch (SIGSTOP, a VM pause) holds its row locks, the lease
    rows it fenced `FOR SHARE` among them, and the server never times such a session out on its own: a pipelined
    statement waiting for the rest of its messages is "active", not "idle in transaction". Until it ends nobody can
    take the partitions over. Its work is rolled back, which is safe: it had not committed, and its lease is gone.
    SQLite: nothing to do (one process)."""
    if _is_sqlite(session):
        return 0
    statement = text(
        "SELECT count(pg_terminate_backend(activity.pid)) FROM pg_stat_activity AS activity"
        " JOIN cluster_members AS member ON activity.application_name = :prefix || member.owner"
        " WHERE member.seen_at_ms <= (extract(epoch from clock_timestamp()) * 1000)::bigint - :ttl_ms"
        " AND activity.xact_start IS NOT NULL AND activity.pid <> pg_backend_pid()"
    )
    return int(session.execute(statement, {"prefix": SESSION_NAME_PREFIX, "ttl_ms": ttl_ms}).scalar_one())

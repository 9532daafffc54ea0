"""SQLModel tables. Money columns use ExactDecimal; times are integer milliseconds (UTC); ids are ULID strings."""

from __future__ import annotations

import re
from decimal import Decimal

from sqlalchemy import BigInteger, Column, Index, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from storage.types import ExactDecimal


def millis(nullable: bool = False) -> int:
    """Milliseconds since the epoch: BIGINT, because they overflow PostgreSQL's 32-bit INTEGER."""
    return Field(  # type: ignore[no-any-return]
        default=None if nullable else ..., sa_type=BigInteger, nullable=nullable
    )


def money(default: Decimal | None = None, nullable: bool = False) -> Decimal:
    """A Decimal column that stays exact on SQLite and PostgreSQL."""
    return Field(  # type: ignore[no-any-return]
        default=default, sa_column=Column(ExactDecimal(), nullable=nullable)
    )


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: str = Field(primary_key=True, max_length=26)
    email: str = Field(index=True, unique=True, max_length=254)
    password_hash: str = Field(max_length=255)
    created_at: int = millis()
    # Bumped by "log out everywhere" and password changes: older tokens and sessions stop working.
    token_version: int = 0
    # The last event sequence number handed out; incremented in the same transaction as the event row.
    last_seq: int = 0


class Account(SQLModel, table=True):
    __tablename__ = "accounts"

    id: str = Field(primary_key=True, max_length=26)
    user_id: str = Field(foreign_key="users.id", index=True, max_length=26)
    venue: str = Field(max_length=32)
    label: str = Field(max_length=64)
    created_at: int = millis()
    api_key_hint: str | None = Field(default=None, max_length=16)
    # AES-GCM ciphertexts (base64 of nonce + ciphertext) and the id of the key that sealed them.
    api_key_enc: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    api_secret_enc: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    key_id: str | None = Field(default=None, max_length=16)
    # Set when the venue refused the stored API key: the account needs a new key; no request is sent meanwhile.
    key_rejected_at: int | None = millis(nullable=True)
    # How the ciphertexts are bound (AES-GCM associated data): 1 = the account id for both (rows from before
    # 2026-12), 2 = account id and field. Start-up re-seals version 1 rows to version 2 (app/sealed_keys.py).
    seal_version: int = Field(default=1, sa_column_kwargs={"server_default": "1"})
    # Kill switch (app/trading_state.py): ACTIVE, REDUCE_ONLY or HALTED. Loaded into memory at start; intake reads
    # the memory copy, never this column.
    trading_state: str = Field(default="ACTIVE", max_length=16, sa_column_kwargs={"server_default": "ACTIVE"})
    deleted_at: int | None = millis(nullable=True)


class Balance(SQLModel, table=True):
    __tablename__ = "balances"

    account_id: str = Field(foreign_key="accounts.id", primary_key=True, max_length=26)
    asset: str = Field(primary_key=True, max_length=16)
    free: Decimal = money(Decimal(0))
    locked: Decimal = money(Decimal(0))


def _index_of_set_values(table: str, column: str) -> Index:
    """A partial index over the rows where `column` is set. Most orders have no parent, OCO group or replaced order:
    a full index took an entry (and, on SQLite, a page written at commit) per order for nothing; `column = x`
    queries use the partial one on SQLite and PostgreSQL alike."""
    where = text(f"{column} IS NOT NULL")
    return Index(f"ix_{table}_{column}", column, sqlite_where=where, postgresql_where=where)


# The open orders' predicate, as literal SQL: the partial indexes below are built on it, and queries for open orders
# carry the same text (storage/repositories/orders.py), so both databases can prove the index applies (a bound
# parameter list could not be matched).
OPEN_ORDER_STATUSES = ("PENDING", "OPEN", "PARTIALLY_FILLED")
OPEN_ORDER = "status IN ('PENDING', 'OPEN', 'PARTIALLY_FILLED')"
# A client order id Tradewind made is this prefix + the order's own id (app/ids.py venue_client_order_id; storage
# never imports app, so the prefix is spelled here too and tests/storage/test_client_order_ids.py holds them
# together). Callers cannot choose ids of this shape (app/orders.py).
MADE_CLIENT_ORDER_ID_PREFIX = "tw"
MADE_CLIENT_ORDER_ID = re.compile(MADE_CLIENT_ORDER_ID_PREFIX + "[0-9A-Z]{26}")  # an order id is a ULID: 26 of these
# The orders whose client order id a caller chose, as literal SQL: the partial unique index is built on it, and its
# lookups carry the same text so both databases can prove the index applies.
CALLERS_CLIENT_ORDER_ID = f"client_order_id <> ('{MADE_CLIENT_ORDER_ID_PREFIX}' || id)"


def _index_of_open_orders(column: str) -> Index:
    """A partial index of the open orders by (`column`, id): filtered, and in creation order without a sort. A full
    (column, status) index took two entries per order at two places (PENDING, then FILLED), spread over every
    user's range: ~1.6 pages per user written by each transaction (docs/orders.md, "Speed"). Open orders are few,
    so this index is a handful of pages."""
    where = text(OPEN_ORDER)
    return Index(f"ix_orders_open_{column}", column, "id", sqlite_where=where, postgresql_where=where)


class Order(SQLModel, table=True):
    __tablename__ = "orders"
    __table_args__ = (
        # Idempotency: a client order id a caller chose is unique in its account. An id Tradewind made is "tw" + the
        # order's own id (app/ids.py), unique by construction and found by primary key, so it takes no entry here:
        # a full index cost every commit a leaf page per account under load (docs/orders.md, "Speed").
        Index(
            "uq_orders_account_client_order_id",
            "account_id",
            "client_order_id",
            unique=True,
            sqlite_where=text(CALLERS_CLIENT_ORDER_ID),
            postgresql_where=text(CALLERS_CLIENT_ORDER_ID),
        ),
        # Orders are indexed by account only, and in id order: a user's orders are read through their accounts (one
        # or a few) and merged, newest first a page at a time; a statement's range is an id range, because an order's
        # created_at is its id's millisecond (app/ids.py). Each user- or account-keyed index costs every commit a page
        # per user under load (docs/orders.md, "Speed").
        Index("ix_orders_account_id", "account_id", "id"),
        _index_of_open_orders("account_id"),
        *(_index_of_set_values("orders", column) for column in ("parent_id", "oco_group", "replaces")),
    )

    id: str = Field(primary_key=True, max_length=26)
    user_id: str = Field(foreign_key="users.id", max_length=26)
    account_id: str = Field(foreign_key="accounts.id", max_length=26)
    client_order_id: str = Field(max_length=36)
    symbol: str = Field(max_length=20)
    side: str = Field(max_length=4)
    type: str = Field(max_length=20)
    time_in_force: str | None = Field(default=None, max_length=3)
    quantity: Decimal | None = money(nullable=True)
    quote_quantity: Decimal | None = money(nullable=True)
    price: Decimal | None = money(nullable=True)
    stop_price: Decimal | None = money(nullable=True)
    # TRAILING_STOP_MARKET: the retrace (basis points from the best price since placement) that fires it.
    trailing_delta_bps: int | None = None
    status: str = Field(max_length=20)
    filled_quantity: Decimal = money(Decimal(0))
    filled_quote: Decimal = money(Decimal(0))
    fee: Decimal = money(Decimal(0))
    fee_asset: str | None = Field(default=None, max_length=16)
    reject_reason: str | None = Field(default=None, max_length=500)
    parent_id: str | None = Field(default=None, max_length=26)
    # Bracket legs share an oco_group: when one fills the other is canceled.
    oco_group: str | None = Field(default=None, max_length=26)
    # Modify/replace (Alpaca's model): the order this one replaces; that one ends REPLACED.
    replaces: str | None = Field(default=None, max_length=26)
    take_profit_price: Decimal | None = money(nullable=True)
    stop_loss_price: Decimal | None = money(nullable=True)
    venue_order_id: str | None = Field(default=None, max_length=64)
    # Set, and committed, before the venue call: an order with sent_at and no venue answer is "in flight".
    sent_at: int | None = millis(nullable=True)
    cancel_requested_at: int | None = millis(nullable=True)
    # When a STOP/TAKE_PROFIT order's trigger fired (a triggered *_LIMIT order rests as a plain limit).
    triggered_at: int | None = millis(nullable=True)
    external: bool = False
    created_at: int = millis()
    updated_at: int = millis()


class Fill(SQLModel, table=True):
    __tablename__ = "fills"
    __table_args__ = (
        # Only a venue's fills carry its trade id (a paper fill has none): a full index took an entry per fill.
        Index(
            "uq_fills_account_venue_trade",
            "account_id",
            "venue_trade_id",
            unique=True,
            sqlite_where=text("venue_trade_id IS NOT NULL"),
            postgresql_where=text("venue_trade_id IS NOT NULL"),
        ),
        # A user's fills, and one account's (statements, fees): every read of an account's fills also names its
        # user, so this one index serves both; a second by (account_id, ts) cost a page per account per commit.
        Index("ix_fills_user_ts", "user_id", "ts"),
    )

    id: str = Field(primary_key=True, max_length=26)
    order_id: str = Field(foreign_key="orders.id", index=True, max_length=26)
    user_id: str = Field(foreign_key="users.id", max_length=26)
    account_id: str = Field(foreign_key="accounts.id", max_length=26)
    symbol: str = Field(max_length=20)
    side: str = Field(max_length=4)
    price: Decimal = money()
    quantity: Decimal = money()
    fee: Decimal = money(Decimal(0))
    fee_asset: str = Field(max_length=16)
    liquidity: str = Field(max_length=5)
    venue_trade_id: str | None = Field(default=None, max_length=64)
    ts: int = millis()


class Position(SQLModel, table=True):
    __tablename__ = "positions"

    account_id: str = Field(foreign_key="accounts.id", primary_key=True, max_length=26)
    symbol: str = Field(primary_key=True, max_length=20)
    quantity: Decimal = money(Decimal(0))
    # Total cost of the quantity held, fees included; avg entry = cost / quantity.
    cost: Decimal = money(Decimal(0))
    realized_pnl: Decimal = money(Decimal(0))


class Event(SQLModel, table=True):
    """The append-only account-event log: the WebSocket's RESUME reads it, nothing ever updates it."""

    __tablename__ = "events"
    __table_args__ = (UniqueConstraint("user_id", "seq", name="uq_events_user_seq"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: str = Field(foreign_key="users.id", max_length=26)
    seq: int
    type: str = Field(max_length=32)
    payload: str = Field(sa_column=Column(Text, nullable=False))
    ts: int = millis()


class PriceAlert(SQLModel, table=True):
    __tablename__ = "price_alerts"

    id: str = Field(primary_key=True, max_length=26)
    user_id: str = Field(foreign_key="users.id", index=True, max_length=26)
    symbol: str = Field(max_length=20)
    price: Decimal = money()
    # ABOVE fires when the price rises to or through `price`, BELOW when it falls to or through it.
    direction: str = Field(max_length=5)
    created_at: int = millis()
    triggered_at: int | None = millis(nullable=True)


class ApiKey(SQLModel, table=True):
    """A bot's API key. Only a SHA-256 of the key is stored (app/api_keys.py says why); a revoked key keeps its row
    (revoked_at set) so the activity log can still name it."""

    __tablename__ = "api_keys"

    id: str = Field(primary_key=True, max_length=26)
    user_id: str = Field(foreign_key="users.id", index=True, max_length=26)
    label: str = Field(max_length=64)
    # The key's first characters ("tw_" + 8): shown in lists so a person can tell keys apart; useless to log in.
    prefix: str = Field(max_length=16)
    key_hash: str = Field(index=True, unique=True, max_length=64)
    # Comma-separated scopes ("read" or "read,trade") and allowed client networks (None: any address).
    scopes: str = Field(max_length=32)
    allowed_addresses: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: int = millis()
    last_used_at: int | None = millis(nullable=True)
    revoked_at: int | None = millis(nullable=True)


class Activity(SQLModel, table=True):
    """The append-only record of account actions (logins, password and key changes, paper resets). Kept bounded
    per user by storage/repositories/activity.py."""

    __tablename__ = "activity"
    __table_args__ = (Index("ix_activity_user_id_id", "user_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: str = Field(foreign_key="users.id", max_length=26)
    kind: str = Field(max_length=32)
    ts: int = millis()
    address: str | None = Field(default=None, max_length=64)
    # A small JSON object of strings (e.g. the key's label and prefix); never a secret.
    detail: str = Field(sa_column=Column(Text, nullable=False))


class EquitySnapshot(SQLModel, table=True):
    """An account's value in the quote currency (USDT): one row per account per minute (the latest value taken in
    that minute). Rows older than two days are thinned to the last one of each hour (app/equity.py)."""

    __tablename__ = "equity_snapshots"

    account_id: str = Field(foreign_key="accounts.id", primary_key=True, max_length=26)
    # The minute's start, in epoch milliseconds.
    bucket: int = Field(sa_type=BigInteger, primary_key=True, sa_column_kwargs={"autoincrement": False})
    equity: Decimal = money()


class Webhook(SQLModel, table=True):
    """A user's outgoing webhook: where to POST which event kinds, and the sealed signing secret."""

    __tablename__ = "webhooks"

    id: str = Field(primary_key=True, max_length=26)
    user_id: str = Field(foreign_key="users.id", index=True, max_length=26)
    url: str = Field(max_length=2048)
    # Comma-separated event kinds: fill, rejection, alert.
    events: str = Field(max_length=64)
    # AES-GCM sealed (associated data: "<webhook id>/secret") under the key named by key_id.
    secret_enc: str = Field(sa_column=Column(Text, nullable=False))
    key_id: str = Field(max_length=16)
    created_at: int = millis()


class WebhookDelivery(SQLModel, table=True):
    """One delivery attempt (or one record of events dropped because the delivery queue was full)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_webhook_id_id", "webhook_id", "id"),)

    id: str = Field(primary_key=True, max_length=26)
    webhook_id: str = Field(foreign_key="webhooks.id", max_length=26)
    user_id: str = Field(foreign_key="users.id", max_length=26)
    event_id: str | None = Field(default=None, max_length=26)
    event: str | None = Field(default=None, max_length=16)
    attempt: int = 0
    # DELIVERED (2xx) | FAILED (error or non-2xx) | REFUSED (the SSRF guard) | DROPPED (queue full)
    outcome: str = Field(max_length=16)
    status_code: int | None = None
    error: str | None = Field(default=None, max_length=200)
    duration_ms: int | None = None
    created_at: int = millis()


class LeaseRow(SQLModel, table=True):
    """A named lease (a partition `exec:<p>`, or `feed`) with its fencing token (app/cluster/leases.py). The token
    grows by one at every change of owner and is never reused; times come from the database's clock."""

    __tablename__ = "leases"

    name: str = Field(sa_column=Column(Text, primary_key=True))
    owner: str = Field(sa_column=Column(Text, nullable=False))
    token: int = Field(sa_type=BigInteger)
    expires_at_ms: int = millis()


class EngineWrite(SQLModel, table=True):
    """An execution engine write's token, stored in that write's own transaction (PostgreSQL): when the connection
    is lost before the commit's answer, the engine reads it to tell a write that committed from one that did not,
    and does not write (and number events) twice. Ids are ULIDs: old tokens are pruned by id
    (storage/repositories/engine_writes.py)."""

    __tablename__ = "engine_writes"

    id: str = Field(primary_key=True, max_length=26)


class ClusterMember(SQLModel, table=True):
    """A replica's heartbeat: replicas seen within a lease ttl are live and share the partitions."""

    __tablename__ = "cluster_members"

    owner: str = Field(sa_column=Column(Text, primary_key=True))
    seen_at_ms: int = millis()

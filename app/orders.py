"""Order intake, shared by the REST API and the UI: validate, de-duplicate by client order id, store the order and
its PENDING event in one transaction, then hand the id to the execution engine. Intake never waits for a venue."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from app import intake_journal
from app.client_order_ids import check_client_order_id, refuse_made_client_order_id
from app.client_order_lookups import ClientOrderIdLookups
from app.domain import (
    OrderStatus,
    OrderType,
    Side,
    StoredEnum,
    SymbolRules,
    TimeInForce,
    Venue,
    check_trailing_delta,
    normalize_symbol,
    parse_decimal,
)
from app.errors import Conflict, NotFound, Unavailable, ValidationFailed
from app.events import UserEvent
from app.execution.commands import CancelOrder, SubmitOrder
from app.execution.records import OrderRecord
from app.ids import new_timed_id, now_ms, venue_client_order_id
from app.immutable import immutable
from app.open_orders import OpenOrderCounts
from app.retry import RetryPolicy, retry
from app.trading_state import TradingStates
from app.views import fill_data, order_data
from storage.db import Database, is_transient
from storage.models import Account, Order
from storage.repositories import accounts as account_repo
from storage.repositories import events, orders

MAX_LIST_LIMIT = 1000
# Intake's transaction again after a lost connection: quick, few, within the client's patience. If the lost one
# had in fact committed, the retry meets its own order id: accepted, once.
INTAKE_RETRY = RetryPolicy(initial=0.05, maximum=0.5, max_attempts=4)
CLOSED_STATUSES = tuple(s.value for s in OrderStatus if s.is_terminal)
OPEN_STATUSES = tuple(s.value for s in OrderStatus if not s.is_terminal)


class ExecutionQueue(Protocol):
    """The execution core's router (app/execution/core.py)."""

    def submit(self, command: SubmitOrder) -> None: ...
    def cancel(self, command: CancelOrder) -> None: ...


class AccountResolver(Protocol):
    async def resolve(self, user_id: str, account_id: str | None) -> Account: ...


@immutable
class OrderRequest:
    """Raw fields as they arrive (strings, JSON numbers or None); `OrderService.submit` validates them."""

    symbol: Any
    side: Any
    type: Any
    quantity: Any = None
    quote_quantity: Any = None
    price: Any = None
    stop_price: Any = None
    time_in_force: Any = None
    take_profit_price: Any = None
    stop_loss_price: Any = None
    trailing_delta_bps: Any = None
    account_id: str | None = None
    client_order_id: str | None = None


@immutable
class Submitted:
    order: dict[str, Any]
    created: bool  # False: an order with this client_order_id already existed and is returned as it is
    json: str | None = None  # `order` serialised already (the stored event's payload), when there is one


def store_event(session: Session, user_id: str, type_: str, data: dict[str, Any], ts: int) -> UserEvent:
    """Append to the durable event log (same transaction as the change it describes). The returned event's `seq`
    is filled in when the transaction commits; publish it only after that."""
    event = UserEvent.create(user_id, type_, data, ts)
    events.append(session, user_id, type_, event.payload, ts, on_seq=event.numbered)
    return event


class OrderService:
    def __init__(
        self,
        db: Database,
        accounts: AccountResolver,
        rules_for: Callable[[Account], Awaitable[Mapping[str, SymbolRules]]],
        last_price: Callable[[str], Decimal | None],
        queue: ExecutionQueue,
        publish: Callable[[UserEvent], None],
        *,
        priced_venues: frozenset[str] = frozenset({Venue.PAPER}),
        open_orders: OpenOrderCounts | None = None,
        trading: TradingStates | None = None,
    ) -> None:
        """`last_price` is the market feed's price; it is the reference for market orders' checks only on
        `priced_venues` (an exchange account's orders are not checked against a simulated market's prices)."""
        self.db = db
        self.accounts = accounts
        self.rules_for = rules_for
        self.last_price = last_price
        self.queue = queue
        self.publish = publish
        self.priced_venues = priced_venues
        self.open_orders = open_orders or OpenOrderCounts()
        self.trading = trading or TradingStates()
        self.client_order_lookups = ClientOrderIdLookups(db)

    # ---- intake ---------------------------------------------------------------------------------------------

    async def submit(self, user_id: str, request: OrderRequest) -> Submitted:
        """Validate and store a new order (PENDING), enqueue it, and return it. 422 on bad input, nothing stored."""
        account = await self.accounts.resolve(user_id, request.account_id)
        if account.key_rejected_at is not None:
            raise Conflict(
                "The exchange refuses this account's API key; add a new key before trading.",
                code="ACCOUNT_KEY_REJECTED",
                field="account_id",
            )
        client_order_id = check_client_order_id(request.client_order_id)
        if client_order_id is not None:
            existing = await self.client_order_lookups.find(account.id, client_order_id)
            if existing is not None:
                return Submitted(order_data(existing), created=False)
            refuse_made_client_order_id(client_order_id)
        order = self._build(user_id, account, request, await self.rules_for(account))
        return await self.journal(account, order)

    async def journal(self, account: Account, order: OrderRecord) -> Submitted:
        """Store a validated new order (PENDING) with its first event in one transaction, then enqueue it. A lost
        race on the same client order id answers with the winner's order."""
        user_id, client_order_id = order.user_id, order.client_order_id
        # The kill switch, from memory (409 TRADING_HALTED / REDUCE_ONLY); the engine checks again at execution.
        self.trading.check(account.id, order.symbol, order.side, order.quantity, order.quote_quantity)
        rests = order.type != OrderType.MARKET
        if rests:
            self.open_orders.reserve(account.id, order.symbol)  # 422 TOO_MANY_OPEN_ORDERS past the limit
        row = order.as_row()
        event = UserEvent.create(user_id, "ORDER_UPDATE", order_data(order), order.created_at)

        try:  # a lost connection (failover; a cluster peer ended a frozen session) is retried: the entry re-runs
            event = await retry(
                lambda: intake_journal.store(self.db, row, event), policy=INTAKE_RETRY, retry_on=is_transient
            )
        except Exception as error:  # (not a cancelled request: its order may still commit)
            existing = None
            if isinstance(error, IntegrityError) or is_transient(error):  # transient: the last answer may be lost
                try:
                    existing = await self.db.fetch_in(
                        lambda r: orders.with_client_order_id(r, account.id, client_order_id)
                    )
                except Exception:  # stored or not is unknown: its slot stays taken, the sweepers find it if stored
                    raise Unavailable("The database is not answering; send the order again later.") from error
            if existing is not None and existing.id == order.id:
                # Our own commit, whose answer the lost connection took: stored once, so it runs. Its event is
                # in the log but not published (the failed retry renumbered it): sockets fill the gap from the log.
                self.queue.submit(SubmitOrder(order.id, account.id, Venue(account.venue), order))
                return Submitted(event.data, created=True, json=event.payload)
            if rests:
                self.open_orders.release(account.id, order.symbol)
            if existing is None:
                if is_transient(error):
                    raise Unavailable("The database is not answering; nothing was stored.") from error
                raise
            # A concurrent request with the same client_order_id won the race: answer with its order.
            return Submitted(order_data(existing), created=False)
        self.publish(event)
        self.queue.submit(SubmitOrder(order.id, account.id, Venue(account.venue), order))
        return Submitted(event.data, created=True, json=event.payload)

    def _build(
        self, user_id: str, account: Account, request: OrderRequest, rules_by_symbol: Mapping[str, SymbolRules]
    ) -> OrderRecord:
        if not isinstance(request.symbol, str) or not request.symbol.strip():
            raise ValidationFailed("symbol is required", field="symbol")
        symbol = normalize_symbol(request.symbol)
        rules = rules_by_symbol.get(symbol)
        if rules is None:
            raise ValidationFailed(f"unknown symbol {symbol}", code="UNKNOWN_SYMBOL", field="symbol")
        side = _enum(Side, request.side, "side")
        kind = _enum(OrderType, request.type, "type")
        tif = self._time_in_force(kind, request.time_in_force)
        quantity, quote_quantity = self._sizes(kind, request, rules)
        price = self._price(kind, request.price, rules, "price", required=kind.has_limit_price)
        stop_price = self._price(kind, request.stop_price, rules, "stop_price", required=kind.has_stop_price)
        trailing_delta_bps = check_trailing_delta(kind, side, request.trailing_delta_bps)
        market_price = self.last_price(symbol) if account.venue in self.priced_venues else None
        reference = price or stop_price or market_price
        if quantity is not None and reference is not None:
            rules.check_notional(quantity * reference)
        if quote_quantity is not None:
            rules.check_notional(quote_quantity, field="quote_quantity")
        take_profit, stop_loss = self._bracket(side, request, rules, reference)
        order_id, now = new_timed_id()  # created_at is the id's millisecond (app/ids.py)
        return OrderRecord(
            id=order_id,
            user_id=user_id,
            account_id=account.id,
            client_order_id=request.client_order_id or venue_client_order_id(order_id),
            symbol=symbol,
            side=side.value,
            type=kind.value,
            time_in_force=tif,
            quantity=quantity,
            quote_quantity=quote_quantity,
            price=price,
            stop_price=stop_price,
            trailing_delta_bps=trailing_delta_bps,
            status=OrderStatus.PENDING.value,
            take_profit_price=take_profit,
            stop_loss_price=stop_loss,
            created_at=now,
            updated_at=now,
        )

    @staticmethod
    def _time_in_force(kind: OrderType, raw: Any) -> str | None:
        if not kind.takes_time_in_force:
            if raw is not None:
                raise ValidationFailed(f"time_in_force does not apply to {kind} orders", field="time_in_force")
            return None
        return str(_enum(TimeInForce, raw, "time_in_force")) if raw is not None else TimeInForce.GTC.value

    @staticmethod
    def _sizes(kind: OrderType, request: OrderRequest, rules: SymbolRules) -> tuple[Decimal | None, Decimal | None]:
        if request.quote_quantity is not None:
            if kind is not OrderType.MARKET:
                raise ValidationFailed("quote_quantity is only for MARKET orders", field="quote_quantity")
            if request.quantity is not None:
                raise ValidationFailed("send quantity or quote_quantity, not both", field="quote_quantity")
            quote_quantity = parse_decimal(request.quote_quantity, "quote_quantity")
            if quote_quantity <= 0:
                raise ValidationFailed("quote_quantity must be greater than 0", field="quote_quantity")
            return None, quote_quantity
        if request.quantity is None:
            raise ValidationFailed("quantity is required", field="quantity")
        quantity = parse_decimal(request.quantity, "quantity")
        rules.check_quantity(quantity)
        return quantity, None

    @staticmethod
    def _price(kind: OrderType, raw: Any, rules: SymbolRules, field: str, *, required: bool) -> Decimal | None:
        if raw is None:
            if required:
                raise ValidationFailed(f"{field} is required for {kind} orders", field=field)
            return None
        if not required:
            raise ValidationFailed(f"{field} is not allowed for {kind} orders", field=field)
        value = parse_decimal(raw, field)
        rules.check_price(value, field)
        return value

    @staticmethod
    def _bracket(
        side: Side, request: OrderRequest, rules: SymbolRules, reference: Decimal | None
    ) -> tuple[Decimal | None, Decimal | None]:
        take_profit = stop_loss = None
        if request.take_profit_price is not None:
            take_profit = parse_decimal(request.take_profit_price, "take_profit_price")
            rules.check_price(take_profit, "take_profit_price")
        if request.stop_loss_price is not None:
            stop_loss = parse_decimal(request.stop_loss_price, "stop_loss_price")
            rules.check_price(stop_loss, "stop_loss_price")
        if (take_profit is None) != (stop_loss is None):
            missing = "stop_loss_price" if stop_loss is None else "take_profit_price"
            raise ValidationFailed("a bracket needs both take_profit_price and stop_loss_price", field=missing)
        if take_profit is None or stop_loss is None or reference is None:
            return take_profit, stop_loss
        above, below = (take_profit, stop_loss) if side is Side.BUY else (stop_loss, take_profit)
        if not below < reference < above:
            field = "take_profit_price" if (take_profit <= reference) == (side is Side.BUY) else "stop_loss_price"
            where = "above" if (field == "take_profit_price") == (side is Side.BUY) else "below"
            raise ValidationFailed(f"{field} must be {where} the entry price for a {side} order", field=field)
        return take_profit, stop_loss

    async def replace(self, user_id: str, order_id: str, change: Any) -> Submitted:
        """Modify/replace a working order (app/replacements.py): a new order that replaces it at the venue."""
        from app.replacements import replace_order  # it builds on this service

        return await replace_order(self, user_id, order_id, change)

    # ---- cancels --------------------------------------------------------------------------------------------

    async def cancel(self, user_id: str, order_id: str) -> dict[str, Any]:
        """Request a cancel (executed asynchronously; CANCELED follows). 404 if not the user's, 409 if terminal."""

        def mark(session: Session) -> tuple[Order, str]:
            order = orders.get_owned(session, user_id, order_id)
            if order is None:
                raise NotFound("Order not found.", code="ORDER_NOT_FOUND")
            order = orders.get_for_update(session, order_id)
            assert order is not None
            if OrderStatus(order.status).is_terminal:
                raise Conflict(f"The order is already {order.status}.", code="ORDER_NOT_OPEN")
            if order.cancel_requested_at is None:
                order.cancel_requested_at = now_ms()
                session.add(order)
            account = account_repo.get(session, order.account_id)
            return order, account.venue if account else "paper"

        order, venue = await self.db.write(mark)
        self.queue.cancel(CancelOrder(order.id, order.account_id, Venue(venue)))
        return order_data(order)

    async def cancel_all(self, user_id: str, account_id: str | None, symbol: str | None) -> int:
        account = await self.accounts.resolve(user_id, account_id)
        wanted = normalize_symbol(symbol) if symbol else None

        def mark(session: Session) -> list[str]:
            now = now_ms()
            marked = []
            for order in orders.open_for_account(session, account.id, wanted):
                if order.cancel_requested_at is None:
                    order.cancel_requested_at = now
                    session.add(order)
                marked.append(order.id)
            return marked

        ids = await self.db.write(mark)
        for order_id in ids:
            self.queue.cancel(CancelOrder(order_id, account.id, Venue(account.venue)))
        return len(ids)

    # ---- reads ----------------------------------------------------------------------------------------------

    async def get(self, user_id: str, order_id: str) -> dict[str, Any]:
        found = await self.db.fetch_plan(lambda: orders.owned_with_fills(user_id, order_id))
        if found is None:
            raise NotFound("Order not found.", code="ORDER_NOT_FOUND")
        order, fills = found
        return {**order_data(order), "fills": [fill_data(fill._asdict()) for fill in fills]}

    async def list_orders(
        self,
        user_id: str,
        *,
        status: str = "all",
        symbol: str | None = None,
        account_id: str | None = None,
        limit: int = 100,
        before: str | None = None,
    ) -> list[dict[str, Any]]:
        if status not in {"open", "closed", "all"}:
            raise ValidationFailed("status must be open, closed or all", field="status")
        account = await self.accounts.resolve(user_id, account_id) if account_id else None
        statuses = {"open": OPEN_STATUSES, "closed": CLOSED_STATUSES, "all": None}[status]
        wanted = normalize_symbol(symbol) if symbol else None
        rows = await self.db.fetch_plan(
            lambda: orders.list_for_user(
                user_id,
                account_id=account.id if account else None,
                statuses=statuses,
                symbol=wanted,
                before=before,
                limit=limit,
            )
        )
        return [order_data(row) for row in rows]

    async def fills(
        self, user_id: str, *, account_id: str | None = None, symbol: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        account = await self.accounts.resolve(user_id, account_id) if account_id else None
        wanted = normalize_symbol(symbol) if symbol else None
        rows = await self.db.read(
            lambda s: orders.fills_for_user(
                s, user_id, account_id=account.id if account else None, symbol=wanted, limit=limit
            )
        )
        return [fill_data(row) for row in rows]


def _enum(enum: type[StoredEnum], raw: Any, field: str) -> Any:
    try:
        return enum.of(raw.upper() if isinstance(raw, str) else raw)
    except ValueError:
        allowed = ", ".join(member.value for member in enum)
        raise ValidationFailed(f"{field} must be one of {allowed}", field=field) from None

"""The paper venue's ledger: every paper account's balances (free and locked) and each resting order's lock, in
memory. Like an exchange's, it is the authority while the venue runs; the execution engine writes the balances of
the accounts it touched in each batch's transaction and loads them back at start."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

from app.domain import Side, SymbolRules
from app.portfolio import Requirement

ZERO = Decimal(0)


class PaperLedger:
    def __init__(self) -> None:
        self._balances: dict[str, dict[str, list[Decimal]]] = {}  # account -> asset -> [free, locked]
        self._locks: dict[str, tuple[str, str, Decimal]] = {}  # order id -> (account, asset, amount)
        self.touched: dict[str, set[str]] = {}  # account -> assets changed since the last `take_touched`

    # ---- accounts -----------------------------------------------------------------------------------------

    def has_account(self, account_id: str) -> bool:
        return account_id in self._balances

    def load_account(self, account_id: str, rows: Iterable[tuple[str, Decimal, Decimal]]) -> None:
        """Balances as stored: (asset, free, locked)."""
        self._balances[account_id] = {asset: [free, locked] for asset, free, locked in rows}

    def forget_all(self) -> None:
        self._balances.clear()
        self._locks.clear()
        self.touched.clear()

    def set_balances(self, account_id: str, amounts: Mapping[str, Decimal]) -> list[str]:
        """Paper reset: the account holds exactly `amounts` (free). Returns the assets it no longer has."""
        current = self._balances.setdefault(account_id, {})
        removed = sorted(set(current) - set(amounts))
        for asset in removed:
            del current[asset]
        for asset, amount in amounts.items():
            current[asset] = [amount, ZERO]
        self._touch(account_id, *amounts)
        return removed

    def snapshot(self, account_id: str) -> list[tuple[str, Decimal, Decimal]]:
        """(asset, free, locked) for every asset of the account, by asset."""
        return [(asset, row[0], row[1]) for asset, row in sorted(self._balances.get(account_id, {}).items())]

    def take_touched(self) -> dict[str, set[str]]:
        touched, self.touched = self.touched, {}
        return touched

    # ---- funds --------------------------------------------------------------------------------------------

    def free(self, account_id: str, asset: str) -> Decimal:
        return self._row(account_id, asset)[0]

    def lock(self, order_id: str, account_id: str, need: Requirement) -> bool:
        """Lock `need` for the order from free; False (and nothing changes) when free is short."""
        if need.amount == 0:
            return True
        row = self._row(account_id, need.asset)
        if row[0] < need.amount:
            return False
        row[0] -= need.amount
        row[1] += need.amount
        self._locks[order_id] = (account_id, need.asset, need.amount)
        self._touch(account_id, need.asset)
        return True

    def restore_lock(self, order_id: str, account_id: str, need: Requirement) -> None:
        """Start-up: the stored balances already count this lock; remember whose it is."""
        if need.amount:
            self._locks[order_id] = (account_id, need.asset, need.amount)

    def release(self, order_id: str) -> None:
        """Give the order's locked funds back to free."""
        held = self._locks.pop(order_id, None)
        if held is None:
            return
        account_id, asset, amount = held
        row = self._row(account_id, asset)
        row[1] -= amount
        row[0] += amount
        self._touch(account_id, asset)

    def trade(
        self, account_id: str, rules: SymbolRules, side: Side, price: Decimal, qty: Decimal, fee: Decimal
    ) -> None:
        """Move the money of one fill (from free; the order's lock was released first); the fee is in the asset
        received."""
        base, quote = self._row(account_id, rules.base), self._row(account_id, rules.quote)
        if side is Side.BUY:
            quote[0] -= price * qty
            base[0] += qty - fee
        else:
            base[0] -= qty
            quote[0] += price * qty - fee
        self._touch(account_id, rules.base, rules.quote)

    def _row(self, account_id: str, asset: str) -> list[Decimal]:
        assets = self._balances.setdefault(account_id, {})
        row = assets.get(asset)
        if row is None:
            row = assets[asset] = [ZERO, ZERO]
        return row

    def _touch(self, account_id: str, *assets: str) -> None:
        self.touched.setdefault(account_id, set()).update(assets)

"""AG Grid with live rows: changes travel as `applyTransaction` deltas keyed by row id, never by reassigning the
options (that destroys and rebuilds the grid, losing sort and scroll). The server copy of `rowData` is kept in sync
under `props.suspend_updates()`, so a reconnect replay or a full render shows the same rows."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from nicegui import ui

MAX_ROWS = 200


class LiveGrid(ui.aggrid):
    """A grid of dict rows with a string `id`; newest rows on top."""

    def __init__(self, columns: list[dict[str, Any]], rows: Iterable[dict[str, Any]] = (), *, empty: str) -> None:
        self._rows: dict[str, dict[str, Any]] = {}
        initial = list(rows)[:MAX_ROWS]
        super().__init__(
            {
                "columnDefs": columns,
                "rowData": initial,
                ":getRowId": "(params) => params.data.id",
                "defaultColDef": {"sortable": True, "resizable": True, "flex": 1, "minWidth": 80},
                "rowHeight": 28,
                "headerHeight": 30,
                "overlayNoRowsTemplate": f"<span style='opacity:.6'>{empty}</span>",
            },
            theme="balham",
            auto_size_columns=False,
        )
        self._rows = {row["id"]: row for row in initial}

    def row(self, row_id: str) -> dict[str, Any] | None:
        return self._rows.get(row_id)

    def rows(self) -> list[dict[str, Any]]:
        """The rows as shown, newest first."""
        return list(self.options["rowData"])

    def upsert(self, rows: Iterable[dict[str, Any]]) -> None:
        """Add new rows on top and update known ones in place (one transaction)."""
        add: list[dict[str, Any]] = []
        update: list[dict[str, Any]] = []
        for row in rows:
            (update if row["id"] in self._rows else add).append(row)
            self._rows[row["id"]] = row
        if not add and not update:
            return
        data = self.options["rowData"]
        with self.props.suspend_updates():
            index = {r["id"]: i for i, r in enumerate(data)}
            for row in update:
                data[index[row["id"]]] = row
            data[:0] = list(reversed(add))
        transaction: dict[str, Any] = {"add": list(reversed(add)), "addIndex": 0, "update": update}
        overflow = data[MAX_ROWS:]
        if overflow:
            transaction["remove"] = [{"id": r["id"]} for r in overflow]
            self._forget(overflow)
        self.run_grid_method("applyTransaction", transaction)

    def remove_rows(self, row_ids: Iterable[str]) -> None:
        """Remove rows by id (unknown ids are ignored)."""
        gone = [self._rows[i] for i in row_ids if i in self._rows]
        if gone:
            self._forget(gone)
            self.run_grid_method("applyTransaction", {"remove": [{"id": r["id"]} for r in gone]})

    def replace_all(self, rows: Iterable[dict[str, Any]]) -> None:
        """Swap in a fresh row set (after a reconnect or a bulk change) without rebuilding the grid."""
        fresh = list(rows)[:MAX_ROWS]
        self._rows = {row["id"]: row for row in fresh}
        with self.props.suspend_updates():
            self.options["rowData"] = fresh
        self.run_grid_method("setGridOption", "rowData", fresh)

    def _forget(self, rows: list[dict[str, Any]]) -> None:
        ids = {r["id"] for r in rows}
        for row_id in ids:
            self._rows.pop(row_id, None)
        with self.props.suspend_updates():
            self.options["rowData"] = [r for r in self.options["rowData"] if r["id"] not in ids]

    def _displayed_contents(self, *, only_visible: bool) -> list[Any]:
        # Lets `user.should_see(...)` find cell text, as a person reading the grid would.
        cells = [value for row in self._rows.values() for value in row.values() if isinstance(value, str)]
        return [*super()._displayed_contents(only_visible=only_visible), *cells]

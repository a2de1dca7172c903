"""Inventory: locations, stock levels, reservations and the movement ledger."""

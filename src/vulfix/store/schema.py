"""Every table, imported once so the metadata is complete wherever it is used."""

from vulfix.store import fixing_tables, inventory_tables, tables

metadata = tables.metadata

__all__ = ["fixing_tables", "inventory_tables", "metadata", "tables"]

"""Lineage: the graph of what every stored thing was made from (docs/architecture.md, "Lineage")."""

"""FAIR packages: RO-Crate, BagIt and DataCite exports, and public landing pages of published
dataset versions (docs/architecture.md, "Publishing and archiving")."""

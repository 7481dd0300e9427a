"""Ingestion workers: one module per format, each turning a file into datasets (Parquet + stats)."""

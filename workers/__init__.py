"""Pure synchronous functions run in the process pool (parse, stats, plot)."""

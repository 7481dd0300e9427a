"""LabHub's domain: models, rules and async services; no HTTP here."""

__version__ = "0.1.0"

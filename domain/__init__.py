"""LabHub's domain: models, rules and async services; no HTTP here."""

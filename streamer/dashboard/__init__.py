"""The fraud-ops dashboard page, served by the worker at /."""

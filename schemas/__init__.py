"""The wire contract as pydantic v2 models (no I/O)."""

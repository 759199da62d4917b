"""Online features: declarations, the Redis store, its in-memory twin."""

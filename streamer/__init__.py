"""fraud-streamer: a streaming real-time fraud scorer (Faust worker, Redis features, sklearn)."""

__version__ = "0.1.0"

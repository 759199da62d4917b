"""The worker's Faust transport: the consumer it builds carries the project's fetch settings."""

from streamer.app import create_app
from streamer.settings import Settings


async def test_the_worker_consumer_uses_the_configured_fetch_wait() -> None:
    # Faust builds its aiokafka consumer with a fixed 1.5 s fetch wait; the worker's must not
    app = create_app(Settings(kafka_fetch_max_wait_ms=7))
    consumer = app.consumer._thread._create_worker_consumer(app.transport)
    assert consumer._fetch_max_wait_ms == 7

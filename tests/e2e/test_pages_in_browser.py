"""The worker's page and the fleet's page in a real browser (headless Chromium), fed by a real
worker and ``fraud-streamer dashboard`` on the local Kafka and Redis: what an analyst sees, the
markup in producer-sent fields shown as text, and a page that says when its server has gone."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
from pathlib import Path

from playwright.async_api import Browser, Locator, Page, expect

from streamer.bench.infra import free_port
from tests.integration.harness import WorkerEnv, consume_until, produce

# the worker's summary refreshes every 2 s, the fleet's group state every 5 s
WAIT_MS = 30_000
MARKUP_CARD = "c-<img src=x onerror=\"document.title='pwned'\">"


def _tx(tx_id: str, customer: str, amount: float) -> bytes:
    return json.dumps({
        "transaction_id": tx_id, "timestamp": "2018-05-01T12:00:00+02:00",
        "customer_id": customer, "terminal_id": "t-1", "amount": amount,
    }).encode()  # fmt: skip


async def _open(browser: Browser, url: str, problems: list[str]) -> Page:
    """A page at ``url`` whose script errors, console errors and failed requests are added to
    ``problems``."""
    page = await browser.new_page()
    page.on("pageerror", lambda error: problems.append(f"{url}: {error}"))
    page.on("console", lambda m: problems.append(f"{url}: {m.text}") if m.type == "error" else None)
    page.on(
        "response", lambda r: problems.append(f"{r.url}: {r.status}") if r.status >= 400 else None
    )
    page.on("dialog", lambda dialog: problems.append(f"{url}: a dialog: {dialog.message}"))
    await page.goto(url)
    return page


def _card(page: Page, label: str) -> Locator:
    """The figure of the card labelled exactly ``label``."""
    label_re = re.compile(f"^{re.escape(label)}$")
    return page.locator(".card").filter(has=page.locator(".l", has_text=label_re)).locator(".n")


async def test_the_ops_pages_in_a_browser(
    worker_env: WorkerEnv, browser: Browser, tmp_path: Path
) -> None:
    settings = worker_env.settings
    worker_env.env["STREAMER_EXCHANGE_RATES"] = '{"USD": 0.86, "GBP": 1.14}'
    worker = worker_env.start_worker()
    dashboard_port = free_port()
    log = (tmp_path / "dashboard.log").open("wb")
    dashboard = subprocess.Popen(
        [sys.executable, "-m", "streamer", "dashboard", "--port", str(dashboard_port)],
        env=worker_env.env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    problems: list[str] = []
    try:
        # 20 transactions, every fifth over the amount limit (declined by rule: an alert), one
        # of those from a card whose id is markup; and two records that are not JSON
        cards = [MARKUP_CARD if i == 5 else f"c{i}" for i in range(20)]
        records: list[tuple[bytes | None, bytes]] = [
            (card.encode(), _tx(f"p{i}", card, 20_000 if i % 5 == 0 else 12))
            for i, card in enumerate(cards)
        ]
        records += [(b"bad", b"not json"), (None, b"{also not json")]
        await produce(settings, settings.topic_transactions, records)
        ids = {f"p{i}" for i in range(20)}
        decided = [
            json.loads(r.value)
            for r in await consume_until(
                settings, settings.topic_decisions, ids=ids, worker=worker_env
            )
        ]
        flagged = [d for d in decided if d["decision"] != "approve"]
        declined = sum(d["decision"] == "decline" for d in decided)
        assert len(flagged) >= 4 and declined >= 4

        page = await _open(browser, f"http://127.0.0.1:{worker_env.ports[0]}/", problems)
        await expect(page.locator("#model")).to_have_text("test-model-a", timeout=WAIT_MS)
        await expect(page.locator("#rates")).to_have_text("1 GBP = 1.14 EUR, 1 USD = 0.86 EUR")
        # consumed: the 20 transactions and the 2 records that were not
        await expect(_card(page, "transactions consumed")).to_have_text("22", timeout=WAIT_MS)
        await expect(_card(page, "declined")).to_have_text(str(declined))
        await expect(_card(page, "dead letters")).to_have_text("2")
        await expect(page.locator("#lag")).to_have_text("0")
        # from the second summary on: how busy the agent was between the two
        await expect(page.locator("#busy")).to_have_text(re.compile(r"^\d{1,3}%$"), timeout=WAIT_MS)
        rows = page.locator("#alerts tbody tr")
        await expect(rows).to_have_count(len(flagged))
        # a producer's markup is shown as the text it is, never run
        markup_row = rows.filter(has_text=MARKUP_CARD)
        await expect(markup_row).to_have_count(1)
        await expect(markup_row.locator("td").nth(5)).to_have_text("t-1")
        await expect(markup_row.locator("td").nth(6)).to_contain_text("is over the limit of")
        await expect(markup_row.locator("td").nth(3)).to_have_text("20,000.00 EUR")
        assert await page.locator("#alerts img").count() == 0
        assert await page.title() == "fraud-streamer"
        await expect(page.locator("#stale")).to_be_hidden()
        await page.screenshot(path=tmp_path / "worker-page.png", full_page=True)

        fleet = await _open(browser, f"http://127.0.0.1:{dashboard_port}/", problems)
        await expect(fleet.locator("#workers")).to_have_text(
            "1 worker(s) in the group", timeout=WAIT_MS
        )
        await expect(_card(fleet, "decisions")).to_have_text("20", timeout=WAIT_MS)
        await expect(_card(fleet, "declined")).to_have_text(str(declined))
        await expect(_card(fleet, "alerts")).to_have_text(str(len(flagged)))
        await expect(_card(fleet, "dead letters")).to_have_text("2")
        await expect(_card(fleet, "ms p50 / p99 in the worker (last minute)")).to_have_text(
            re.compile(r"^\d+(\.\d+)? / \d+(\.\d+)?$")
        )
        await expect(fleet.locator("#models")).to_have_text("test-model-a")
        await expect(fleet.locator("#lag")).to_have_text(
            f"0 {settings.topic_transactions}, 0 {settings.topic_labels}", timeout=WAIT_MS
        )
        await expect(fleet.locator("#alerts tbody tr")).to_have_count(len(flagged))
        await expect(fleet.locator("#alerts tbody tr").filter(has_text=MARKUP_CARD)).to_have_count(
            1
        )
        letters = fleet.locator("#letters tbody tr")
        await expect(letters).to_have_count(2)
        for i in range(2):
            await expect(letters.nth(i).locator("td").nth(1)).to_contain_text(
                f"{settings.topic_transactions}["
            )
            await expect(letters.nth(i).locator("td").nth(3)).to_contain_text(
                "(value): Invalid JSON"
            )
        await expect(letters.filter(has_text="(none)")).to_have_count(1)  # the record without a key
        await fleet.screenshot(path=tmp_path / "fleet-page.png", full_page=True)
        assert problems == []

        # the worker stops: its page says so and keeps the last figures; the fleet's page
        # sees the group empty
        worker.send_signal(signal.SIGTERM)
        await asyncio.to_thread(worker.wait, 60)
        stale = page.locator("#stale")
        await expect(stale).to_be_visible(timeout=WAIT_MS)
        await expect(stale).to_contain_text("The worker is not answering since")
        await expect(_card(page, "transactions consumed")).to_have_text("22")
        await expect(fleet.locator("#workers")).to_have_text(
            "0 worker(s) in the group", timeout=WAIT_MS
        )
        await expect(fleet.locator("#stale")).to_be_hidden()
        # and so does the fleet's, when the dashboard stops
        dashboard.send_signal(signal.SIGTERM)
        await asyncio.to_thread(dashboard.wait, 30)
        await expect(fleet.locator("#stale")).to_contain_text(
            "The dashboard is not answering since", timeout=WAIT_MS
        )
        await expect(_card(fleet, "decisions")).to_have_text("20")
    finally:
        if dashboard.poll() is None:
            dashboard.terminate()
            dashboard.wait(30)
        log.close()
    assert dashboard.returncode == 0, (tmp_path / "dashboard.log").read_text()

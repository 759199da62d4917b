"""The whole system through its own commands, as a user runs it: train, then the demo."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

from streamer.settings import Settings


def _run(args: list[str], cwd: Path, env: dict[str, str], timeout: float) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "streamer", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def test_train_then_demo_decides_every_transaction(stack: Settings, tmp_path: Path) -> None:
    suffix = uuid.uuid4().hex[:8]
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "STREAMER_MODEL_REGISTRY": str(tmp_path / "registry"),
        "STREAMER_DATA_DIR": str(tmp_path / "state"),
        "STREAMER_REDIS_URL": stack.redis_url.rsplit("/", 1)[0] + "/12",
        "STREAMER_WEB_PORT": "16300",
        "STREAMER_CONSUMER_GROUP": f"demo-{suffix}",
        **{
            f"STREAMER_TOPIC_{t.upper()}": f"{t}-{suffix}"
            for t in ("transactions", "labels", "decisions", "alerts", "dead_letters")
        },
    }
    # a worker refuses to start without a model, naming the command that makes one
    refused = subprocess.run(
        [sys.executable, "-m", "streamer", "worker"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0 and "fraud-streamer train" in refused.stderr

    out = _run(
        [
            "train",
            "--customers",
            "400",
            "--terminals",
            "800",
            "--days",
            "80",
            "--train-days",
            "14",
            "--candidates",
            "hist_gb,logreg",
        ],
        tmp_path,
        env,
        600,
    )
    assert "promoted" in out

    out = _run(
        ["demo", "--customers", "300", "--terminals", "600", "--days", "8", "--exit-when-done"],
        tmp_path,
        env,
        600,
    )
    match = re.search(r"all ([\d,]+) transactions decided", out)
    assert match, out
    assert int(match.group(1).replace(",", "")) > 1000
    assert "dead letters 3" in out  # the demo's three malformed messages

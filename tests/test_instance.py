"""One Poolwarden per var/ folder: the lock is held for the holder's life, names the holder,
and is released by the kernel however the holder ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from config import instance
from tests.support import REPO

HOLD = """
import sys, time
from pathlib import Path
from config import instance
instance.lock(Path(sys.argv[1]), "beat")
print("held", flush=True)
time.sleep(120)
"""


@pytest.fixture
def holder(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "held"
    yield proc
    proc.kill()
    proc.wait()


def test_second_holder_is_refused_with_the_first_ones_pid(tmp_path, holder):
    with pytest.raises(instance.AlreadyRunning) as refused:
        instance.lock(tmp_path, "beat")
    message = str(refused.value)
    assert f"another Poolwarden beat is running on {tmp_path} (pid {holder.pid}, " in message
    assert "give this one its own POOLWARDEN_VAR_DIR" in message
    assert "\n" not in message
    # Another role on the same folder, or the same role elsewhere, is free.
    instance.lock(tmp_path, "worker")
    instance.unlock("worker")


def test_lock_is_released_when_the_holder_is_killed(tmp_path, holder):
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert (tmp_path / "beat.lock").exists()  # the stale file does not block a restart
    instance.lock(tmp_path, "beat")
    try:
        text = (tmp_path / "beat.lock").read_text()
        assert text.startswith(f"pid {os.getpid()}, ")
    finally:
        instance.unlock("beat")

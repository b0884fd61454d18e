"""The unit tier: no Airflow process, no emulator, no real sleeps. Time that decides (commit locks) is a fake
clock here."""

from __future__ import annotations

import pytest

from tests.support.fakes import FakeClock


@pytest.fixture(autouse=True)
def fake_commit_clock(monkeypatch) -> FakeClock:
    from airflow_provider_schneider.outputs import commit

    clock = FakeClock()
    monkeypatch.setattr(commit, "CLOCK", clock)
    return clock

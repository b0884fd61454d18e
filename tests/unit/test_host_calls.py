"""The host's share of a client: slot files, the shared cool-down and pace (two handles = two processes)."""

from __future__ import annotations

import math
import struct
import time

import pytest

from airflow_provider_schneider.client.host import HostCalls, client_folder
from airflow_provider_schneider.process import STATE, private_directory


@pytest.fixture
def folder(tmp_path):
    return private_directory(tmp_path / "calls" / "client")


def test_two_processes_share_the_slots_and_a_freed_slot_goes_to_the_other(folder):
    first, second = HostCalls(folder, 2), HostCalls(folder, 2)  # own open files, as two processes have
    held = [first.try_take(), first.try_take()]
    assert None not in held and second.try_take() is None
    first.release(held[0])
    assert second.try_take() == held[0]


def test_threads_of_one_process_never_share_a_slot(folder):
    calls = HostCalls(folder, 3)
    taken = {calls.try_take() for _ in range(3)}
    assert taken == {0, 1, 2}
    assert calls.try_take() is None, "a second flock through the same open file must not count as a new slot"


def test_the_cool_down_one_process_sets_is_the_host_s_and_only_ever_extends(folder):
    first, second = HostCalls(folder, 1), HostCalls(folder, 1)
    now = time.time()
    first.cool_down(30)
    assert second.cool_down_left(now, 120) == pytest.approx(30, abs=1)
    second.cool_down(5)  # shorter: the longer one stands
    assert first.cool_down_left(now, 120) == pytest.approx(30, abs=1)
    assert first.cool_down_left(now, 10) == 10, "a wait read from the file is capped"


def test_a_garbage_or_far_away_pace_file_cannot_stall_a_call(folder):
    calls = HostCalls(folder, 1)
    (folder / "pace").write_bytes(struct.pack("=dd", math.nan, 1e300))
    assert calls.cool_down_left(time.time(), 120) == 0
    assert calls.reserve(10.0, 60) == 0  # a next-free moment far ahead is a clock jump: start again from now
    (folder / "pace").write_bytes(struct.pack("=dd", 1e300, 0.0))
    assert calls.cool_down_left(time.time(), 120) == 120


def test_the_configured_pace_spaces_the_calls_of_every_process_of_the_host(folder):
    first, second = HostCalls(folder, 1), HostCalls(folder, 1)
    waits = [first.reserve(10.0, 60), second.reserve(10.0, 60), first.reserve(10.0, 60)]
    assert waits[0] == pytest.approx(0, abs=0.01)
    assert waits[1] == pytest.approx(0.1, abs=0.01)
    assert waits[2] == pytest.approx(0.2, abs=0.01)


def test_one_handle_per_folder_and_process_and_a_reset_releases_its_slots(folder):
    STATE.reset()
    calls = HostCalls.open(folder, 1)
    assert calls is not None and HostCalls.open(folder, 1) is calls
    calls.try_take()
    assert HostCalls(folder, 1).try_take() is None
    STATE.reset()  # closing the process's files releases what it held
    assert HostCalls(folder, 1).try_take() == 0


def test_a_folder_that_cannot_be_private_turns_the_host_cap_off(tmp_path, caplog):
    STATE.reset()
    target = tmp_path / "real"
    target.mkdir()
    (tmp_path / "link").symlink_to(target)
    assert HostCalls.open(tmp_path / "link", 10) is None
    assert "host-wide cap on calls in flight is off" in caplog.text


def test_the_client_folder_names_neither_the_client_nor_the_key():
    folder = client_folder("https://api.se.com", "apikey:very-secret-key", "/cache")
    assert "very-secret-key" not in str(folder) and str(folder).startswith("/cache/calls/")
    assert folder != client_folder("https://api.qa.se.com", "apikey:very-secret-key", "/cache")

"""The host token cache against a hostile file system: symlinked directories, FIFOs, oversized entries.

Real files and directories under a private temp folder; no mocks.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from pathlib import Path

import pytest

from airflow_provider_schneider.tokens.tiers import MAX_ENTRY_BYTES, CacheKey, FileTier, TokenCipher
from airflow_provider_schneider.tokens.token import Token

KEY = CacheKey("https://api.example.com/token", "client-1", "")
CIPHER = TokenCipher("secret-value", KEY)


def token(size: int = 40) -> Token:
    return Token("t" * size, expires_at=4_000_000_000.0, lifetime=3600)


def test_symlinked_cache_directory_is_refused_and_its_target_untouched(tmp_path, caplog):
    target = tmp_path / "victim"
    target.mkdir(mode=0o755)
    link = tmp_path / "cache"
    link.symlink_to(target)
    with caplog.at_level(logging.WARNING):
        assert FileTier.create(link, KEY, CIPHER) is None
    assert "is a symlink" in caplog.text
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o755  # never chmodded


def test_symlink_planted_in_a_world_writable_folder_is_refused(tmp_path, caplog):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)  # like /tmp
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "tokens").mkdir(parents=True)
    (shared / "airflow").symlink_to(elsewhere)
    with caplog.at_level(logging.WARNING):
        assert FileTier.create(shared / "airflow" / "tokens", KEY, CIPHER) is None
    assert "inside world-writable" in caplog.text


def test_private_directory_is_accepted_and_made_0700(tmp_path):
    tier = FileTier.create(tmp_path / "a" / "b", KEY, CIPHER)
    assert tier is not None
    assert stat.S_IMODE(os.stat(tmp_path / "a" / "b").st_mode) == 0o700


def test_fifo_in_place_of_the_token_file_never_blocks(tmp_path):
    tier = FileTier.create(tmp_path / "cache", KEY, CIPHER)
    assert tier is not None
    os.mkfifo(tier.path)
    result: list[object] = []
    reader = threading.Thread(target=lambda: result.append(tier.read()), daemon=True)
    reader.start()
    reader.join(timeout=5)
    assert not reader.is_alive(), "opening a FIFO blocked the token read"
    assert result == [None] and tier.unreadable


def test_fifo_in_place_of_the_lock_file_never_blocks(tmp_path):
    tier = FileTier.create(tmp_path / "cache", KEY, CIPHER)
    assert tier is not None
    os.mkfifo(tier.lock_path)
    outcome: list[bool] = []

    def take() -> None:
        with tier.locked(timeout=1) as held:
            outcome.append(held)

    taker = threading.Thread(target=take, daemon=True)
    taker.start()
    taker.join(timeout=5)
    assert not taker.is_alive() and outcome == [False]


def test_symlinked_token_file_is_not_followed(tmp_path):
    tier = FileTier.create(tmp_path / "cache", KEY, CIPHER)
    assert tier is not None
    secret_elsewhere = tmp_path / "elsewhere.txt"
    secret_elsewhere.write_text(CIPHER.seal(token()) or "")
    Path(tier.path).symlink_to(secret_elsewhere)
    assert tier.read() is None and tier.unreadable


def test_an_entry_too_large_to_read_back_is_not_written(tmp_path, caplog):
    tier = FileTier.create(tmp_path / "cache", KEY, CIPHER)
    assert tier is not None
    big = token(size=MAX_ENTRY_BYTES)  # sealed, this is over the read limit
    with caplog.at_level(logging.WARNING):
        tier.write(big)
    assert not Path(tier.path).exists()
    assert "too large to cache" in caplog.text


@pytest.mark.parametrize("size", [40, 60_000, 150_000])
def test_every_entry_written_is_read_back(tmp_path, size):
    """The old limit wrote entries over 64 KiB that no process could read (every one then asked anew)."""
    tier = FileTier.create(tmp_path / "cache", KEY, CIPHER)
    assert tier is not None
    tier.write(token(size=size))
    assert tier.read() == token(size=size)

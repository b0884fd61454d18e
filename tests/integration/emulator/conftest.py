"""The emulator's own tests talk to an in-process server (one per module), reset before each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from airflow_provider_schneider.emulator import EmulatorConfig, EmulatorServer
from airflow_provider_schneider.emulator.client import EmulatorClient


@pytest.fixture(scope="module")
def emulator_config() -> EmulatorConfig:
    """The server's startup configuration; a module overrides this fixture to pin a knob (``today``)."""
    return EmulatorConfig(port=0)


@pytest.fixture(scope="module")
def server(emulator_config: EmulatorConfig) -> Iterator[EmulatorServer]:
    with EmulatorServer(emulator_config) as srv:
        yield srv


@pytest.fixture
def emu(server: EmulatorServer) -> EmulatorClient:
    client = server.client
    client.reset()
    return client

"""``[core] hostname_callable`` of the cluster run: each worker "host" names itself (``SCHNEIDER_E2E_HOSTNAME``).

On one machine every worker would otherwise record the machine's hostname on its task instances.
"""

from __future__ import annotations

import os
import socket

HOSTNAME_ENV = "SCHNEIDER_E2E_HOSTNAME"


def hostname() -> str:
    return os.environ.get(HOSTNAME_ENV) or socket.getfqdn()

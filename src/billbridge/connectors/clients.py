"""One client per vendor account in a process, shared by the connection's
source, target and webhook door, so that together they keep within the
account's rate limits and concurrency (each client paces its own calls)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

C = TypeVar("C")


class ClientCache(Generic[C]):
    """Clients by account key: ``get`` builds one the first time a key is
    asked for and hands the same one back after."""

    def __init__(self) -> None:
        self._clients: dict[Hashable, C] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, make: Callable[[], C]) -> C:
        with self._lock:
            if key not in self._clients:
                self._clients[key] = make()
            return self._clients[key]

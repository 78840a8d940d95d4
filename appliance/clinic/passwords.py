"""Argon2id password hashes (PHC strings) from `cryptography`: no extra dependency."""

from __future__ import annotations

import os
import threading

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

# RFC 9106 second recommended option (64 MiB, t=3, p=4): about 0.1-0.3 s on this 2-core box.
_MEMORY_KIB = 64 * 1024
_ITERATIONS = 3
_LANES = 4
# One derivation at a time per process: with cryptography 50 two Argon2id derivations running
# at once in two threads hang forever (found by `appliance soak load`: two patients signing in
# together froze both requests). Each derivation already fills both cores, so this costs little.
_ONE_AT_A_TIME = threading.Lock()


def hash_password(password: str) -> str:
    with _ONE_AT_A_TIME:
        return _derive(password)


def _derive(password: str) -> str:
    kdf = Argon2id(
        salt=os.urandom(16),
        length=32,
        iterations=_ITERATIONS,
        lanes=_LANES,
        memory_cost=_MEMORY_KIB,
    )
    return kdf.derive_phc_encoded(password.encode("utf-8"))


def verify_password(password: str, encoded: str) -> bool:
    try:
        with _ONE_AT_A_TIME:
            Argon2id.verify_phc_encoded(password.encode("utf-8"), encoded)
    except (InvalidKey, ValueError):
        return False
    return True

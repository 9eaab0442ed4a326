"""Password verifiers for tests (issue 15): real :class:`kernel.password_checks.PasswordVerifier`s that
count their runs or are held busy on purpose; shared by the core, gateway and portal tests."""

from __future__ import annotations

import threading

from kernel.password_checks import PasswordVerifier


class CountingVerifier(PasswordVerifier):
    """A real verifier that counts the Argon2 verifications it ran."""

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.runs = 0

    async def verify(self, password_hash: str | None, password: str) -> bool:
        self.runs += 1
        return await super().verify(password_hash, password)


class GatedVerifier(PasswordVerifier):
    """A real verifier whose threads wait for :attr:`gate` before verifying: a pool held busy on purpose."""

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.gate = threading.Event()

    def _run(self, password_hash: str | None, password: str, box: list[float]) -> bool:
        self.gate.wait(30)
        return super()._run(password_hash, password, box)

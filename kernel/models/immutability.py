"""Guards that make records immutable at the ORM level (CDRs): an UPDATE or DELETE through the ORM raises."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event

from kernel.models.cdrs import Cdr


class ImmutableRecordError(RuntimeError):
    """An attempt to change a record that may only ever be inserted."""


def _refuse(kind: str) -> Any:
    def listener(_mapper: Any, _connection: Any, target: Any) -> None:
        raise ImmutableRecordError(
            f"{type(target).__name__} {getattr(target, 'id', '?')} is immutable ({kind})"
        )

    return listener


refuse_changes = _refuse
"""The guard for another immutable table: ``event.listen(Model, "before_update", refuse_changes("update"))``."""

event.listen(Cdr, "before_update", _refuse("update"))
event.listen(Cdr, "before_delete", _refuse("delete"))

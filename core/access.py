"""Who may change what: the user who triggered a run (or uploaded a document, or made a folder), or an
OWNER/ADMIN of its tenant. Reading is open to the whole tenant."""

from __future__ import annotations

import uuid

from db.accounts import Principal, Role
from errors import Forbidden


def is_admin(who: Principal) -> bool:
    return who.role in (Role.OWNER, Role.ADMIN)


def may_change(who: Principal, owner: uuid.UUID | None) -> bool:
    return is_admin(who) or owner == who.user_id


def ensure_may_change(who: Principal, owner: uuid.UUID | None, refusal: str) -> None:
    """Raises:
    Forbidden(refusal): a USER acting on what another user owns (each surface words it its own way).
    """
    if not may_change(who, owner):
        raise Forbidden(refusal)


def ensure_may_change_run(who: Principal, triggered_by: uuid.UUID | None) -> None:
    ensure_may_change(
        who, triggered_by, "Only the user who started this run, or an owner or admin, may change it"
    )

"""The one rule for changing a run, an upload or a folder: its user, or an OWNER/ADMIN of the tenant."""

from __future__ import annotations

import uuid

import pytest

from core.access import ensure_may_change, ensure_may_change_run, is_admin, may_change
from db.accounts import Principal, Role
from errors import Forbidden

TENANT, ME, OTHER = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


def who(role: Role) -> Principal:
    return Principal(TENANT, ME, role)


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN])
def test_owners_and_admins_may_change_what_anyone_owns(role: Role) -> None:
    assert is_admin(who(role))
    assert may_change(who(role), OTHER) and may_change(who(role), None) and may_change(who(role), ME)


def test_a_user_may_change_only_what_they_own() -> None:
    assert not is_admin(who(Role.USER))
    assert may_change(who(Role.USER), ME)
    assert not may_change(who(Role.USER), OTHER)
    # A run whose triggering user was deleted belongs to nobody a USER can be.
    assert not may_change(who(Role.USER), None)


def test_a_refusal_carries_the_surfaces_own_words() -> None:
    with pytest.raises(Forbidden, match="may delete it"):
        ensure_may_change(who(Role.USER), OTHER, "Only the uploader may delete it")
    with pytest.raises(Forbidden, match="Only the user who started this run, or an owner or admin"):
        ensure_may_change_run(who(Role.USER), OTHER)
    ensure_may_change_run(who(Role.USER), ME)

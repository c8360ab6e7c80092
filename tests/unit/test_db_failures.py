"""Which database errors are permanent (a refused value: fail now) and which are not (retry)."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError


class _Orig(Exception):
    def __init__(self, sqlstate: str | None) -> None:
        super().__init__("driver error")
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("sqlstate", "permanent"),
    [
        ("22021", True),
        ("22P05", True),
        ("23505", True),
        ("54001", True),
        ("08006", False),
        ("57P01", False),
        (None, False),
    ],
    ids=["nul-in-text", "nul-in-jsonb", "unique", "too-deep", "connection", "admin-shutdown", "unknown"],
)
def test_refused_values_are_permanent_and_lost_connections_are_not(
    sqlstate: str | None, permanent: bool
) -> None:
    from db.failures import permanent as is_permanent

    err = DBAPIError("INSERT ...", {}, _Orig(sqlstate))
    assert is_permanent(err) is permanent


def test_a_value_the_driver_cannot_encode_is_permanent_though_reported_as_an_interface_error() -> None:
    from db.failures import permanent

    cause = asyncpg.exceptions.DataError("invalid input for query argument $1 (surrogates not allowed)")
    err = InterfaceError("INSERT ...", {}, Exception("wrapped"))
    err.__cause__ = cause
    assert permanent(err)
    assert not permanent(OperationalError("SELECT 1", {}, Exception("connection refused")))


@pytest.mark.parametrize(
    ("sqlstate", "unavailable"),
    [("57P03", True), ("57P01", True), ("08006", True), ("22021", False), ("23505", False), (None, False)],
    ids=["starting-up", "admin-shutdown", "connection", "nul-in-text", "unique", "unknown"],
)
def test_a_server_starting_up_or_gone_is_unavailable_and_a_refused_statement_is_not(
    sqlstate: str | None, unavailable: bool
) -> None:
    from db.failures import unavailable as is_unavailable

    assert is_unavailable(DBAPIError("SELECT ...", {}, _Orig(sqlstate))) is unavailable


def test_a_connection_left_mid_operation_is_unavailable() -> None:
    """What a pooled connection answered after PostgreSQL was killed under load (the chaos soak)."""
    from db.failures import unavailable

    cause = asyncpg.exceptions.InternalClientError(
        "cannot switch to state 12; another operation (2) is in progress"
    )
    wrapped = DBAPIError("SELECT ...", {}, _Orig(None))
    wrapped.__cause__ = cause
    assert unavailable(wrapped)
    assert not unavailable(RuntimeError("bug"))

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

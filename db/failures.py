"""Which database errors would fail again the same way: a refused value, not an unreachable server.

asyncpg's data exceptions reach SQLAlchemy as a generic `DBAPIError` (its translation table knows only
integrity and syntax errors), and a value asyncpg cannot even encode (a lone surrogate) as an
`InterfaceError`, the class that otherwise means a lost connection; so the SQLSTATE and the cause
chain decide, not the class.
"""

from __future__ import annotations

import asyncpg
from sqlalchemy.exc import DBAPIError

# SQLSTATE classes: 22 data exception (U+0000 in text or jsonb, NaN, out of range), 23 integrity
# constraint violation, 54 program limit exceeded (jsonb nested too deep, row too big).
_PERMANENT_CLASSES = ("22", "23", "54")


def permanent(err: BaseException) -> bool:
    """Whether retrying the statement that raised `err` can only fail again."""
    seen: BaseException | None = err
    for _ in range(8):  # a cause chain can loop
        if seen is None:
            break
        if isinstance(seen, DBAPIError):
            state = getattr(seen.orig, "sqlstate", None)
            if isinstance(state, str) and state[:2] in _PERMANENT_CLASSES:
                return True
        if isinstance(seen, asyncpg.exceptions.DataError | UnicodeEncodeError | RecursionError):
            return True
        state = getattr(seen, "sqlstate", None)
        if isinstance(state, str) and state[:2] in _PERMANENT_CLASSES:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


# SQLSTATE classes: 08 connection exception, 57 operator intervention (57P01 admin shutdown, 57P02
# crash shutdown, 57P03 "the database system is starting up").
_UNAVAILABLE_CLASSES = ("08", "57")


def unavailable(err: BaseException) -> bool:
    """Whether `err` says the server is away (restarting, shutting down, the connection lost) rather
    than that the statement is wrong: worth trying again shortly, on a fresh connection.

    asyncpg's "cannot switch to state ...; another operation is in progress" is counted too: it is
    what a pooled connection answers whose last operation was cut off when the server went away
    (seen by the chaos soak after PostgreSQL was killed), and only a new connection cures it.
    """
    todo: list[BaseException] = [err]
    for _ in range(16):  # the driver's error, its causes and contexts; a chain can loop
        if not todo:
            break
        seen = todo.pop(0)
        if isinstance(
            seen,
            ConnectionError
            | TimeoutError
            | asyncpg.exceptions.InternalClientError
            | asyncpg.exceptions.ConnectionDoesNotExistError
            | asyncpg.exceptions.PostgresConnectionError,
        ):
            return True
        state = getattr(seen, "sqlstate", None)
        if isinstance(state, str) and state[:2] in _UNAVAILABLE_CLASSES:
            return True
        orig = seen.orig if isinstance(seen, DBAPIError) else None
        todo += [e for e in (orig, seen.__cause__, seen.__context__) if isinstance(e, BaseException)]
    return False

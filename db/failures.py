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

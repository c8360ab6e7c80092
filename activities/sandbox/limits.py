"""What a sandboxed run may use and how it can fail: ``SandboxLimits``, ``SandboxError``, output checks."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

_SCHEMA_TYPES: dict[str, tuple[str, tuple[type, ...]]] = {
    alias: (label, accepted)
    for label, aliases, accepted in (
        ("string", ("string", "str"), (str,)),
        ("integer", ("integer", "int"), (int,)),
        ("number", ("number", "float"), (int, float)),
        ("boolean", ("boolean", "bool"), (bool,)),
        ("list", ("list", "array"), (list,)),
        ("dict", ("dict", "object"), (dict,)),
    )
    for alias in aliases
}


TMPFS_SHARE = 4  # the tmpfs gets 1/TMPFS_SHARE of the memory budget


@dataclass(frozen=True)
class SandboxLimits:
    wall_seconds: float = 60.0
    cpu_seconds: int = 60
    memory_mb: int = 512
    output_bytes: int = 1024 * 1024

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            if not getattr(self, field.name) > 0:
                raise ValueError(f"sandbox limit {field.name} must be positive")

    def memory_split(self, private_tmpfs: bool) -> tuple[int, int]:
        """(address-space MB, tmpfs MB): one memory budget for the process and the files it
        keeps in its /tmp and /dev/shm (tmpfs pages are not in RLIMIT_AS). A quarter of the
        budget goes to the tmpfs when the run has one of its own."""
        if not private_tmpfs:
            return self.memory_mb, 0
        tmpfs_mb = max(1, self.memory_mb // TMPFS_SHARE)  # never 0: for tmpfs that means unbounded
        return max(1, self.memory_mb - tmpfs_mb), tmpfs_mb

    def lowered_by(self, other: SandboxLimits | dict[str, Any] | None) -> SandboxLimits:
        """Field-wise minimum: a node's configuration may only tighten the service limits."""
        if other is None:
            return self
        values = dataclasses.asdict(other) if isinstance(other, SandboxLimits) else dict(other)
        unknown = set(values) - {field.name for field in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"unknown sandbox limits: {sorted(unknown)}")
        changes: dict[str, Any] = {}
        for name, value in values.items():
            if value is not None:
                current = getattr(self, name)
                changes[name] = min(current, type(current)(value))
        return dataclasses.replace(self, **changes)


class SandboxError(Exception):
    """A user function did not produce a valid result; ``kind`` says why: one of
    timeout, cpu_limit, memory_limit, output_too_large, crashed, user_error,
    bad_output, unavailable."""

    def __init__(self, kind: str, message: str, *, stderr: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.stderr = stderr  # bounded tail of the child's stderr (user print() output lands here)

    def __reduce__(self) -> tuple[Any, ...]:
        return (SandboxError, (self.kind, self.message), {"stderr": self.stderr})


def validate_output(result: dict[str, Any], schema: dict[str, str]) -> None:
    for name, type_name in schema.items():
        if name not in result:
            raise SandboxError("bad_output", f"Output validation error: missing field '{name}'")
        known = _SCHEMA_TYPES.get(str(type_name).lower())
        if known is None:
            continue
        label, accepted = known
        value = result[name]
        # bool is an int subclass in Python but not an integer/number in a schema.
        if not isinstance(value, accepted) or (isinstance(value, bool) and bool not in accepted):
            got = "null" if value is None else type(value).__name__
            raise SandboxError(
                "bad_output", f"Output validation error: field '{name}' expected {label}, got {got}"
            )

"""The dev stack keeps its data directory out of reach of other users (sandboxed code runs as one)."""

from __future__ import annotations

import stat
from pathlib import Path

import devstack


def test_data_dir_is_traverse_only_and_its_contents_owner_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "logs").mkdir(parents=True)
    (data / "pg").mkdir()
    (data / "temporal.db").write_text("history")
    data.chmod(0o755)  # as pgserver leaves it
    (data / "temporal.db").chmod(0o644)
    (data / "logs").chmod(0o755)
    (data / "pg").chmod(0o700)
    devstack.secure_data_dir(data)
    assert stat.S_IMODE(data.stat().st_mode) == 0o711
    assert stat.S_IMODE((data / "temporal.db").stat().st_mode) == 0o600
    assert stat.S_IMODE((data / "logs").stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "pg").stat().st_mode) == 0o700  # pgserver's own, untouched

"""How sandbox processes are launched: the interpreter, the system tools and the zygote's argv.

The zygote (``zygote_main.py``) and the child runtime (``child_main.py``) are
handed to ``python -I -S -c`` as source text, so that no file of ours has to be
readable by the sandbox uids and no ``site`` or environment is consulted.
"""

from __future__ import annotations

import functools
import os
import secrets
import stat
import sys
import tempfile
from pathlib import Path

# Each concurrently running child gets uid = gid = UID_BASE + slot, slot < UID_COUNT;
# no account or file on the host uses this range.
UID_BASE = 200_000
UID_COUNT = 4096


def find_tool(name: str) -> str | None:
    """Locate a system binary without consulting $PATH (we read no environment)."""
    for directory in ("/usr/bin", "/bin", "/usr/sbin", "/sbin"):
        candidate = os.path.join(directory, name)
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def _others_may_execute(path: str) -> bool:
    # The sandbox uids own no files and have no supplementary groups: only the
    # "other" bits apply to them.
    return bool(os.stat(path).st_mode & stat.S_IXOTH)


def nobody_can_execute(path: str) -> bool:
    """True if an unprivileged sandbox uid can reach and execute ``path`` (through its symlinks).

    Judged from mode bits, not by trying: we run as root, and root's access checks
    pass where the sandbox's fail (e.g. anything under the 0700 /root). Children
    are forked, not exec'd, but the interpreter's standard library has to be
    readable by them for imports in user code, and it lives next to the binary.
    """
    real = os.path.realpath(path)
    directories = {os.path.dirname(os.path.abspath(path)), os.path.dirname(real)}
    try:
        for directory in directories:
            while True:
                if not _others_may_execute(directory):
                    return False
                if directory == "/":
                    break
                directory = os.path.dirname(directory)
        return stat.S_ISREG(os.stat(real).st_mode) and _others_may_execute(real)
    except OSError:
        return False


def choose_interpreter(python: str | None) -> str:
    """The caller's interpreter, else the first candidate the sandbox uids can execute."""
    if python:
        return python
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3", sys.executable):
        if candidate and nobody_can_execute(candidate):
            return candidate
    return sys.executable


@functools.cache
def program_source() -> str:
    """The ``-c`` program: the zygote, started with the child runtime's source."""
    here = Path(__file__).parent
    zygote = (here / "zygote_main.py").read_text(encoding="utf-8")
    child = (here / "child_main.py").read_text(encoding="utf-8")
    return f"{zygote}\n\nmain(sys.argv[1:], {child!r})\n"


def zygote_argv(
    interpreter: str,
    *,
    namespaces: bool,
    unshare: str | None,
    setpriv: str | None,
    control_fd: int,
    seccomp_program: bytes | None,
) -> list[str]:
    """argv for a zygote; with namespaces it has no network and no view of host
    processes, and keeps only the capabilities needed to set children up.
    ``seccomp_program`` is the BPF filter its children load (``seccomp_filter``)."""
    mode = "namespaces" if namespaces else "none"
    python = [interpreter, "-I", "-S", "-c", program_source(), mode, str(UID_BASE), str(UID_COUNT)]
    python.append(str(control_fd))
    python.append(seccomp_program.hex() if seccomp_program else "-")
    if not namespaces:
        return python
    if unshare is None or setpriv is None:
        raise RuntimeError("unshare/setpriv not found")
    return [
        unshare,
        *["--net", "--pid", "--ipc", "--mount", "--fork", "--mount-proc", "--kill-child"],
        setpriv,
        # Root in the new namespaces, but only with what the zygote uses: namespaces
        # and mounts for children (sys_admin), their uid/gid (setuid, setgid) and
        # emptying their bounding set (setpcap). Children drop all of these.
        "--inh-caps=-all",
        "--bounding-set=-all,+sys_admin,+setuid,+setgid,+setpcap",
        "--no-new-privs",
        *python,
    ]


def make_workdir() -> tuple[str, str]:
    """(root to delete afterwards, fresh empty cwd) for a child without namespaces,
    which runs as we do and has no private /tmp of its own."""
    root = tempfile.mkdtemp(prefix="sandbox-")
    workdir = os.path.join(root, secrets.token_hex(8))
    os.mkdir(workdir, 0o700)
    return root, workdir

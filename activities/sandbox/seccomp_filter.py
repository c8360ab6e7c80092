"""The seccomp filter every sandbox child loads as the last step of its set-up, before user code.

Built here, in the worker, by libseccomp (through ``pyseccomp``, ctypes bindings to the
system's libseccomp.so.2) and handed to the zygote as compiled BPF, so the zygote
stays stdlib-only and only has to load it (one ``prctl``). libseccomp does the
error-prone parts: syscall numbers per architecture, argument comparisons, and
refusing foreign-architecture calls (i386 ``int 0x80``, x32) that could slip past a
hand-written filter.

A deny list, not an allow list: user code may legitimately use most of Python's
standard library, but it never needs to create namespaces, mount, trace other
processes, use the kernel keyring, load BPF or kernel modules, or touch the
machine's clock or power. Denied calls fail with EPERM, so user code sees an
ordinary ``PermissionError``.
"""

from __future__ import annotations

import errno
import tempfile

DENIED = (
    # new namespaces (a user namespace would hand back every capability we dropped)
    "unshare",
    "setns",
    # mounts and root changes
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    # other processes' memory and descriptors
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "process_madvise",
    "kcmp",
    "pidfd_getfd",
    # kernel keyring
    "keyctl",
    "add_key",
    "request_key",
    # large kernel attack surface that Python code has no use for
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "open_by_handle_at",
    "name_to_handle_at",
    "lookup_dcookie",
    # the machine itself
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "kexec_file_load",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "quotactl",
    "quotactl_fd",
    "syslog",
    "iopl",
    "ioperm",
    "vhangup",
    "sethostname",
    "setdomainname",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
)

# clone(2) flags that create namespaces (CLONE_NEWTIME shares its bit with the exit
# signal in clone(2), and unshare/clone3 are refused outright).
CLONE_NEW_FLAGS = (
    0x00020000,  # CLONE_NEWNS
    0x02000000,  # CLONE_NEWCGROUP
    0x04000000,  # CLONE_NEWUTS
    0x08000000,  # CLONE_NEWIPC
    0x10000000,  # CLONE_NEWUSER
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
)


def compiled_filter() -> bytes:
    """The filter as BPF instructions (``struct sock_filter[]``, 8 bytes each).

    Raises:
        RuntimeError, OSError: libseccomp is missing or refused the rules.
    """
    import pyseccomp as seccomp  # loads libseccomp: only when a zygote is about to start

    denied = seccomp.ERRNO(errno.EPERM)
    rules = seccomp.SyscallFilter(seccomp.ALLOW)
    for name in DENIED:
        # Names this libseccomp does not know for the native architecture are skipped by it.
        rules.add_rule(denied, name)
    for flag in CLONE_NEW_FLAGS:
        rules.add_rule(denied, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    # clone3 passes its flags in memory, where a filter cannot look; with ENOSYS, the C
    # library falls back to clone(2), which the rules above can judge.
    rules.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    with tempfile.TemporaryFile() as out:
        rules.export_bpf(out)
        out.seek(0)
        program = out.read()
    if not program or len(program) % 8:
        raise RuntimeError(f"libseccomp produced a malformed filter of {len(program)} bytes")
    return program

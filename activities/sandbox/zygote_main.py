"""The zygote: a long-lived fork server that starts each sandbox child in about a millisecond.

Standalone and stdlib-only; the pool runs it as ``python3 -I -S -c`` (see
``child.program_source``), in mode ``namespaces`` under ``unshare`` (new net,
ipc, pid and mount namespaces; it is pid 1 there) and ``setpriv`` (capability
bounding set cut to what forking children needs), or in mode ``none`` as a
plain process. It imports everything a child needs once, then forks one child
per request. It never runs or even sees user code: requests carry only limits
and the child's pipes; the code and inputs go from the pool straight to the
child's stdin.

In ``namespaces`` mode each child, before user code, gets a pid namespace of its
own (it is its pid 1, so when it exits the kernel kills everything it started),
a mount namespace with a private /proc (it sees only its own processes) and one
fresh tmpfs for /tmp and /dev/shm, sized within the run's memory budget (nothing
survives the run, nothing of the host or of another run is visible there), a
network namespace (no interfaces, and abstract unix sockets and /proc/net of its
own) and an ipc namespace, an empty capability bounding set, a uid/gid of its
own among concurrently running children, no supplementary groups, no_new_privs,
a parent-death signal and the pool's seccomp filter.

Once isolation is done, ``serve_one`` first writes one byte, ``S``, on the
child's set-up pipe (fd 3) and closes it: an exit before it is a failed sandbox
set-up, an exit after it is user code's own. A pipe of its own, which the pool
reads only after the child ended, so that it costs no extra wake-up per run.

Control protocol on a SOCK_SEQPACKET socket, one JSON object per message:
  pool -> zygote: ``{"id", "cpu", "mem", "tmp"}`` (limits: CPU seconds, address space and
                  tmpfs MB) with fds [stdin, stdout, stderr, set-up pipe]
                  (mode none: plus a directory fd to use as cwd);
  zygote -> pool: ``{"op": "ready"}`` + [the zygote's pidfd], once, after a
                  self-test child succeeded (else ``{"op": "error", "message"}``);
                  ``{"op": "started", "id"}`` + [the child's pidfd];
                  ``{"op": "failed", "id", "message"}`` if it could not fork;
                  ``{"op": "exit", "id", "status"}`` (a wait status) once reaped.
The zygote exits when the pool's end of the socket closes.
"""

import ctypes
import gc
import heapq
import json
import os
import resource
import select
import signal
import socket
import sys
import traceback
from collections.abc import Callable
from typing import Any

CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_BIND, MS_REC, MS_PRIVATE = 0x1000, 0x4000, 0x40000
PR_SET_PDEATHSIG, PR_SET_SECCOMP, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 1, 22, 24, 38
SECCOMP_MODE_FILTER = 2

# World-writable host directories: children get them fresh (tmpfs) or not at all,
# so nothing written there outlives a run or reaches the next user of a uid.
PRIVATE_DIRS = ("/tmp", "/dev/shm")
HIDDEN_DIRS = ("/run", "/var/tmp")  # also where local services put their unix sockets

ServeOne = Callable[[int, int, int], Any]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class _Libc:
    def __init__(self) -> None:
        self.lib = ctypes.CDLL(None, use_errno=True)

    def call(self, name: str, *args: Any) -> None:
        if getattr(self.lib, name)(*args) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"{name}: {os.strerror(errno)}")

    def prctl(self, option: int, *args: int) -> None:
        # prctl is variadic and the kernel reads unsigned longs (and insists the
        # unused ones are zero), so pass full-width values.
        values = [ctypes.c_ulong(arg) for arg in (*args, 0, 0, 0, 0)[:4]]
        self.call("prctl", ctypes.c_int(option), *values)

    def mount(self, source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
        def encode(text: str | None) -> bytes | None:
            return None if text is None else text.encode()

        self.call(
            "mount", encode(source), encode(target), encode(fstype), ctypes.c_ulong(flags), encode(data)
        )


class Zygote:
    def __init__(
        self,
        control: socket.socket,
        namespaces: bool,
        uid_base: int,
        uid_count: int,
        exit_setup: int,
        seccomp_program: bytes | None,
    ) -> None:
        self.control = control
        self.exit_setup = exit_setup
        self.pid = os.getpid()
        self.namespaces = namespaces
        self.uid_base = uid_base
        self.free_slots = list(range(uid_count))  # sorted, so already a heap
        self.children: dict[int, tuple[int, int, int]] = {}  # pidfd -> (pid, request id, slot)
        self.poller = select.poll()
        self.poller.register(control, select.POLLIN)
        self.libc = _Libc()
        self.cap_last = 0
        self.own_pidns = -1
        # Built once; each child hands the same program to the kernel (which copies it).
        self.seccomp_buffer: Any = None
        self.seccomp_fprog: Any = None
        if seccomp_program:
            self.seccomp_buffer = ctypes.create_string_buffer(seccomp_program, len(seccomp_program))
            address = ctypes.cast(self.seccomp_buffer, ctypes.c_void_p)
            self.seccomp_fprog = _SockFprog(len(seccomp_program) // 8, address)

    # --- start-up -------------------------------------------------------------------

    def prepare(self) -> None:
        if not self.namespaces:
            return
        with open("/proc/sys/kernel/cap_last_cap") as fh:
            self.cap_last = int(fh.read())
        self.own_pidns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        # We are in a mount namespace of our own (unshare); make sure nothing we
        # or our children mount can propagate back to the host.
        self.libc.mount("none", "/", None, MS_REC | MS_PRIVATE, None)
        for path in HIDDEN_DIRS:
            if os.path.isdir(path):
                self.libc.mount(
                    "tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=755"
                )

    def self_test(self) -> str | None:
        """Fork one child through the full isolation path; None if it worked."""
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        try:
            limits = (1, 64, 16)
            pid = self.fork(fds=[null, null, 2, null], slot=self.free_slots[0], limits=limits, serve_one=None)
        finally:
            os.close(null)
        _, status = os.waitpid(pid, 0)
        if status != 0:
            return f"sandbox isolation self-test failed (wait status {status}); see stderr"
        return None

    # --- serving --------------------------------------------------------------------

    def loop(self, serve_one: ServeOne) -> None:
        while True:
            for fd, _events in self.poller.poll():
                if fd == self.control.fileno():
                    self.handle_request(serve_one)
                else:
                    self.reap(fd)

    def handle_request(self, serve_one: ServeOne) -> None:
        data, fds, _flags, _addr = socket.recv_fds(self.control, 65536, 8, socket.MSG_CMSG_CLOEXEC)
        if not data:
            os._exit(0)  # the pool is gone; our children die with us (pid 1 / parent-death signal)
        request = json.loads(data)
        try:
            problem = self.start_child(request, fds, serve_one)
        finally:
            for fd in fds:
                os.close(fd)
        if problem is not None:
            self.send({"op": "failed", "id": request["id"], "message": problem})

    def start_child(self, request: dict[str, Any], fds: list[int], serve_one: ServeOne) -> str | None:
        """Fork the child for ``request``; the reason if that was impossible."""
        if not self.free_slots:
            return "too many concurrent sandboxes"
        slot = heapq.heappop(self.free_slots)
        try:
            limits = (int(request["cpu"]), int(request["mem"]), int(request.get("tmp", 0)))
            pid = self.fork(fds, slot, limits, serve_one)
        except OSError as exc:
            heapq.heappush(self.free_slots, slot)
            return str(exc)
        try:
            pidfd = os.pidfd_open(pid)
        except OSError as exc:
            # Without a pidfd nobody could kill it: it must not run.
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            heapq.heappush(self.free_slots, slot)
            return str(exc)
        self.children[pidfd] = (pid, request["id"], slot)
        self.poller.register(pidfd, select.POLLIN)
        self.send({"op": "started", "id": request["id"]}, [pidfd])
        return None

    def reap(self, pidfd: int) -> None:
        pid, request_id, slot = self.children.pop(pidfd)
        self.poller.unregister(pidfd)
        os.close(pidfd)
        _, status = os.waitpid(pid, 0)
        # In namespaces mode the child was pid 1 of its pid namespace: the kernel has
        # killed and reaped everything it started before we see it exit, so the uid
        # has no process left and may be handed out again.
        heapq.heappush(self.free_slots, slot)
        self.send({"op": "exit", "id": request_id, "status": status})

    def send(self, message: dict[str, Any], fds: list[int] | None = None) -> None:
        data = json.dumps(message).encode()
        try:
            if fds:
                socket.send_fds(self.control, [data], fds)
            else:
                self.control.send(data)
        except OSError:
            os._exit(0)  # the pool is gone

    # --- one child --------------------------------------------------------------------

    def fork(
        self, fds: list[int], slot: int, limits: tuple[int, int, int], serve_one: ServeOne | None
    ) -> int:
        # Nothing buffered in the zygote may leak into a child's output.
        sys.stdout.flush()
        sys.stderr.flush()
        if self.namespaces:
            # Affects only the next fork: that child becomes pid 1 of a new namespace.
            self.libc.call("unshare", CLONE_NEWPID)
        pid = -1
        try:
            pid = os.fork()
            if pid == 0:
                self.become_child(fds, slot, limits, serve_one)
        finally:
            if self.namespaces and pid != 0:
                # Back to our own namespace for children, so the next unshare is allowed.
                self.libc.call("setns", self.own_pidns, CLONE_NEWPID)
        return pid

    def become_child(
        self, fds: list[int], slot: int, limits: tuple[int, int, int], serve_one: ServeOne | None
    ) -> None:
        try:
            os.setsid()
            for target, fd in enumerate(fds[:3]):
                os.dup2(fd, target)
            if len(fds) > 4:
                os.fchdir(fds[4])
            os.dup2(fds[3], 3)
            # Only stdin/stdout/stderr and the set-up pipe survive: not the control socket,
            # not the pidfds of other children.
            os.closerange(4, 2**31 - 1)  # one close_range(2) call
            if self.namespaces:
                self.isolate(slot, limits[2])
            else:
                self.libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
                if os.getppid() != self.pid:
                    os._exit(self.exit_setup)  # the zygote died before the signal was armed
                self.load_seccomp()
            if serve_one is None:
                os._exit(0)
            serve_one(*limits)
        except BaseException:
            try:
                traceback.print_exc()
                sys.stderr.flush()
            finally:
                os._exit(self.exit_setup)
        os._exit(0)

    def isolate(self, slot: int, tmpfs_mb: int) -> None:
        libc = self.libc
        # A network namespace per run: abstract unix sockets and /proc/net are per
        # network namespace, so concurrent runs cannot reach or list each other's.
        libc.call("unshare", CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWNET)
        libc.mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
        self.mount_private_dirs(tmpfs_mb)
        for cap in range(self.cap_last + 1):
            libc.prctl(PR_CAPBSET_DROP, cap)
        uid = self.uid_base + slot
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)  # from root to non-root: clears every capability
        libc.prctl(PR_SET_NO_NEW_PRIVS, 1)
        # Changing uid cleared any parent-death signal, so it is armed only now.
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        workdir = "/tmp/" + os.urandom(8).hex()
        os.mkdir(workdir, 0o700)
        os.chdir(workdir)
        # Last: the set-up above needs calls the filter denies (unshare, mount).
        self.load_seccomp()

    def load_seccomp(self) -> None:
        if self.seccomp_fprog is None:
            return
        # Required for an unprivileged filter, and keeps setuid binaries from undoing it.
        self.libc.prctl(PR_SET_NO_NEW_PRIVS, 1)
        self.libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(self.seccomp_fprog))

    def mount_private_dirs(self, tmpfs_mb: int) -> None:
        """One tmpfs for both /tmp and /dev/shm, so together they hold at most its size:
        the pool counts that size in the run's memory budget (tmpfs pages are not in
        RLIMIT_AS)."""
        if tmpfs_mb < 1:
            raise ValueError(f"tmpfs size {tmpfs_mb} MB: tmpfs reads 0 as unbounded")
        flags = MS_NOSUID | MS_NODEV | MS_NOEXEC
        shared = PRIVATE_DIRS[0]
        self.libc.mount("tmpfs", shared, "tmpfs", flags, f"size={tmpfs_mb}m,nr_inodes=16384,mode=1777")
        for path in PRIVATE_DIRS[1:]:
            if os.path.isdir(path):
                inner = os.path.join(shared, "." + os.path.basename(path))
                os.mkdir(inner)
                os.chmod(inner, 0o1777)
                self.libc.mount(inner, path, None, MS_BIND, None)


def main(argv: list[str], child_source: str) -> None:
    """Entry point: ``argv`` is mode, uid base, uid count, control fd, seccomp filter (hex BPF or -)."""
    mode, uid_base, uid_count, control_fd = argv[0], int(argv[1]), int(argv[2]), int(argv[3])
    seccomp_program = None if argv[4] == "-" else bytes.fromhex(argv[4])
    scope: dict[str, Any] = {"__name__": "sandbox_child"}
    exec(compile(child_source, "<sandbox-child>", "exec"), scope)
    serve_one: ServeOne = scope["serve_one"]
    control = socket.socket(fileno=control_fd)
    os.set_inheritable(control_fd, False)
    # One pidfd per running child: allow as many as the hard limit does. Children
    # lower their own limit before user code runs.
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    exit_setup = int(scope["EXIT_SETUP"])
    zygote = Zygote(control, mode == "namespaces", uid_base, uid_count, exit_setup, seccomp_program)
    try:
        zygote.prepare()
        problem = zygote.self_test()
    except Exception as exc:
        traceback.print_exc()
        problem = f"sandbox zygote could not start: {exc}"
    if problem is not None:
        zygote.send({"op": "error", "message": problem})
        os._exit(1)
    # Keep the children's garbage collector off the pages they share with us.
    gc.freeze()
    zygote.send({"op": "ready"}, [os.pidfd_open(os.getpid())])
    zygote.loop(serve_one)

"""Processes for the cluster test: started in their own process group, logged to a file,
stopped by process id; and the /proc look-ups that find who owns a connection."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Proc:
    """One child process in its own session (so its whole group can be signalled)."""

    def __init__(self, name: str, argv: Sequence[str], *, env: dict[str, str], logdir: Path):
        self.name = name
        self.log = logdir / f"{name}.log"
        self._fh = self.log.open("ab")
        self.popen = subprocess.Popen(
            list(argv),
            env=env,
            cwd=logdir,
            stdout=self._fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pid = self.popen.pid
        self.killed = False  # on purpose, by the test: not a failure

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        return f"--- {self.name} (pid {self.pid}) log tail ---\n" + "\n".join(text[-lines:])

    def kill_tree(self, sig: int = signal.SIGKILL) -> list[int]:
        """Signal the process, every descendant (flow runs may start their own sessions) and
        its process group; returns the pids signalled."""
        self.killed = True
        pids = [self.pid, *descendants(self.pid)]
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        return pids

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM, then SIGKILL of the whole tree after `timeout`."""
        if self.alive():
            rest = descendants(self.pid)
            self.popen.terminate()
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
            for pid in rest:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.kill_tree()
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self._fh.close()


def _ppid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def descendants(root: int) -> list[int]:
    """Every live process below `root` (by parent pid)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            parent = _ppid(int(entry))
            if parent is not None:
                children.setdefault(parent, []).append(int(entry))
    out: list[int] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def ancestors(pid: int) -> list[int]:
    out = []
    while pid > 1:
        parent = _ppid(pid)
        if parent is None:
            break
        out.append(parent)
        pid = parent
    return out


def pid_of_client(local_port: int, remote_port: int) -> int | None:
    """The process that owns the loopback TCP connection 127.0.0.1:`local_port` →
    127.0.0.1:`remote_port` (the same local port may serve connections to other places)."""
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1].split(":"), fields[2].split(":")
        if (
            int(local[1], 16) == local_port
            and int(remote[1], 16) == remote_port
            and fields[9] != "0"
        ):
            inode = fields[9]
            break
    if inode is None:
        return None
    target = f"socket:[{inode}]"
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            for fd in os.listdir(f"/proc/{entry}/fd"):
                if os.readlink(f"/proc/{entry}/fd/{fd}") == target:
                    return int(entry)
        except OSError:
            continue
    return None


def wait_for(
    what: str,
    check: Callable[[], bool],
    *,
    timeout: float,
    procs: Sequence[Proc] = (),
    every: float = 0.5,
    context: Callable[[], str] = lambda: "",
) -> None:
    """Poll `check` until true; on timeout (or a process dying) fail with every log's tail
    and whatever `context` says about the state of things."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        dead = [p for p in procs if not p.alive() and not p.killed]
        if dead:
            raise AssertionError(
                f"while waiting for {what}: {', '.join(p.name for p in dead)} exited\n"
                + context()
                + "\n".join(p.tail() for p in procs)
            )
        time.sleep(every)
    raise AssertionError(
        f"timed out after {timeout:.0f} s waiting for {what}\n"
        + context()
        + "\n".join(p.tail() for p in procs)
    )


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False

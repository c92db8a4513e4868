"""Run a function in a forked child process and read back what it returns (for fork tests)."""

import os
import time
from collections.abc import Callable


def in_fork(
    child: Callable[[], bytes],
    *,
    timeout: float = 30,
    after_fork: Callable[[], None] = lambda: None,
) -> bytes | None:
    """``child()``'s bytes, computed in a forked child; ``None`` if it did not end in time.

    The parent calls ``after_fork()`` right after forking, then waits up to ``timeout``
    seconds; a child that has not ended by then is killed. The child leaves at once with
    ``os._exit``, whatever happens, so no test machinery runs twice.
    """
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(write, child())
        finally:
            os._exit(0)
    os.close(write)
    after_fork()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.waitpid(pid, os.WNOHANG)[0]:
            return os.read(read, 1 << 16)
        time.sleep(0.05)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return None

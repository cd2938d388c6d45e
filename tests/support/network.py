"""The test run's own network: a namespace whose only interface is loopback, where the run may make one.

Every server, Ray node and browser the tests start listens and connects on
127.0.0.1. Inside a private network namespace that is all there is: a
process that reaches for the host's outward address (Ray does, for some of
its own connections) cannot, so a test that passes here kept its traffic
on loopback. Making one takes ``CAP_SYS_ADMIN`` (root, as in CI); elsewhere
the run keeps the host's network and says so in its summary.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import socket
import struct
import sys

CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def enter_private_network() -> str | None:
    """Move this process (single-threaded yet) into a new network namespace with loopback up.

    Returns why it could not, or None once inside. Processes started
    afterwards inherit the namespace.
    """
    if not sys.platform.startswith("linux"):
        return f"network namespaces are Linux's; this is {sys.platform}"
    if os.geteuid() != 0:
        return "making a network namespace takes root (CAP_SYS_ADMIN)"
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        return f"unshare(CLONE_NEWNET) failed: {os.strerror(ctypes.get_errno())}"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as control:
        request = struct.pack("16sH", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(control, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(control, SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | IFF_UP))
    return None


def interfaces() -> list[str]:
    """The network interfaces this process sees."""
    return sorted(name for _, name in socket.if_nameindex())

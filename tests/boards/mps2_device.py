#!/usr/bin/env python3
"""The mps2-an385 image as one device process: QEMU plus fieldlink-serial-bridge to a broker.

  mps2_device.py --elf <fieldlink-reader.elf> --bridge <fieldlink-serial-bridge> --broker HOST:PORT
                 [--device ID] [--window N] [--ack-timeout-ms MS] [--keepalive-s S] [--period-ms MS]

For device-level tools that start, and kill, one command per device (fieldlink-conformance's
`-- DEVICE-COMMAND`). In a fresh temporary folder it starts the image in qemu-system-arm in run
mode on a fresh flash file, UART0 a TCP server on a free 127.0.0.1 port, and the bridge with that
port as its line and HOST:PORT as its broker. The image's semihosting output goes to stdout, the
bridge's log to stderr.

It ends when either child ends (killing the other; exit status 1) or on SIGTERM/SIGINT (killing
both; exit status 0). The children stay in this process's process group, so killing the group
(fieldlink-conformance does) takes all three; each child also gets SIGKILL from the kernel when
this process dies (PR_SET_PDEATHSIG), so a SIGKILL of this process alone leaves nothing behind.
The temporary folder is removed by a small process outside the group once this one has ended.
"""

import argparse
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

PR_SET_PDEATHSIG = 1


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def die_with_parent(parent):
    """preexec_fn: SIGKILL when the parent dies; if it already has, exit now."""
    def arm():
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            os._exit(126)
        if os.getppid() != parent:
            os._exit(0)
    return arm


def remove_when_gone(path):
    """Forks a process outside this process group that removes `path` once this process has
    ended, however it ended: a SIGKILL runs no cleanup of ours."""
    read_end, write_end = os.pipe()
    if os.fork() == 0:
        try:
            os.setsid()  # a kill of the wrapper's group must not take the cleanup with it
            os.close(write_end)
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)  # hold none of the caller's pipes or files open
            while os.read(read_end, 1):  # EOF: the wrapper, the only writer, is gone
                pass
            shutil.rmtree(path, ignore_errors=True)
        finally:
            os._exit(0)
    os.close(read_end)
    return write_end  # kept open, not inherited (subprocess closes it in the children)


class Stop(Exception):
    pass


def on_signal(signum, _frame):
    raise Stop(signum)


def image_words(args):
    return ["mode=run", "flash=flash.bin", "link=uart0", f"device={args.device}", f"window={args.window}",
            f"ack_timeout={args.ack_timeout_ms}", f"keepalive={args.keepalive_s}", f"period={args.period_ms}"]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--elf", required=True)
    p.add_argument("--bridge", required=True)
    p.add_argument("--broker", required=True, metavar="HOST:PORT")
    p.add_argument("--device", default="qemu-m3-0001")
    p.add_argument("--window", type=int, default=4)
    p.add_argument("--ack-timeout-ms", type=int, default=2000)
    p.add_argument("--keepalive-s", type=int, default=2)
    p.add_argument("--period-ms", type=int, default=50, help="sampling period of each channel")
    p.add_argument("--qemu", default="qemu-system-arm")
    p.add_argument("--temp-root", default=None, help="where the temporary folder goes (default: the system's)")
    args = p.parse_args()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    children = []
    status = 1
    with tempfile.TemporaryDirectory(prefix="fieldlink-mps2-device-", dir=args.temp_root) as workdir:
        remove_when_gone(workdir)
        try:
            uart = free_port()
            arm = die_with_parent(os.getpid())
            qemu = [args.qemu, "-M", "mps2-an385", "-nographic", "-monitor", "none",
                    "-chardev", "stdio,id=semihost", "-semihosting-config", "enable=on,target=native,chardev=semihost",
                    "-serial", f"tcp:127.0.0.1:{uart},server=on,wait=off",
                    "-kernel", os.path.abspath(args.elf), "-append", " ".join(image_words(args))]
            children.append(subprocess.Popen(qemu, cwd=workdir, stdin=subprocess.DEVNULL, preexec_fn=arm))
            # The bridge retries a refused line with backoff, so QEMU need not be listening yet.
            exe = os.path.abspath(args.bridge) if os.sep in args.bridge else args.bridge  # cwd changes
            bridge = [exe, "--broker", f"tcp://{args.broker}", "--line", f"tcp:127.0.0.1:{uart}",
                      "--log-level", "info", "--backoff-max-ms", "500"]
            children.append(subprocess.Popen(bridge, cwd=workdir, stdin=subprocess.DEVNULL, stdout=sys.stderr,
                                             preexec_fn=arm))
            pid, code = os.wait()  # blocks until a child ends (or a signal raises Stop)
            ended = next(c for c in children if c.pid == pid)
            ended.returncode = os.waitstatus_to_exitcode(code)  # reaped here, so Popen must not wait for it
            name = "qemu" if ended is children[0] else "bridge"
            print(f"mps2_device: {name} ended with status {ended.returncode}", file=sys.stderr, flush=True)
        except Stop:
            status = 0
        finally:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            for child in children:
                if child.poll() is None:
                    child.kill()
            for child in children:
                try:
                    child.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
    return status


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The mps2-an385 image through the serial bridge against the device conformance checker.

  mps2_an385_conformance.py --source <repo> --build-dir <tree> --bridge <exe> [--generator Ninja]

Builds the image (as target.mps2_an385.boots does), then runs tests/conformance's
fieldlink-conformance with tests/boards/mps2_device.py (QEMU plus fieldlink-serial-bridge, one
process group) as the device command, passing both the same window, ack timeout and keep-alive.
The checker starts its own Mosquitto and kills the device's process group in its last phase.
Exit codes: the checker's (0 only when every check passes), 77 skipped (no arm-none-eabi-gcc,
qemu-system-arm or mosquitto).
"""

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import mps2_an385_boots as boots  # noqa: E402

DEVICE = "qemu-m3-conf"
WINDOW = 4
ACK_TIMEOUT_MS = 2000
KEEPALIVE_S = 2
PERIOD_MS = 50  # two channels, batches of 16: a batch every 0.4 s, well inside the spool while acks are withheld


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    boots.add_build_arguments(parser)
    parser.add_argument("--bridge", required=True)
    parser.add_argument("--keep", action="store_true", help="keep the checker's folder with its logs")
    args = parser.parse_args()
    elf = boots.build_image(args, needs=("mosquitto",))
    if elf is None:
        return boots.SKIP
    checker = HERE.parent / "conformance" / "fieldlink_conformance.py"
    command = [sys.executable, str(checker), "--device-id", DEVICE, "--window", str(WINDOW),
               "--ack-timeout-ms", str(ACK_TIMEOUT_MS), "--keepalive-s", str(KEEPALIVE_S)]
    if args.keep:
        command.append("--keep")
    command += ["--", sys.executable, str(HERE / "mps2_device.py"), "--elf", elf, "--bridge", args.bridge,
                "--broker", "{host}:{port}", "--device", "{device}", "--window", str(WINDOW),
                "--ack-timeout-ms", str(ACK_TIMEOUT_MS), "--keepalive-s", str(KEEPALIVE_S),
                "--period-ms", str(PERIOD_MS)]
    print(" ".join(command), flush=True)
    return subprocess.run(command, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())

# 32-bit Raspberry Pi OS / Debian armhf on a Pi 2, 3, 4 or Zero 2 W: ARMv7-A,
# NEON with VFPv4, hard-float ABI (what Debian's armhf is built for).
# A Pi Zero or Pi 1 is ARMv6 (ARM1176, VFPv2, no NEON): these binaries stop
# there with "Illegal instruction". Raspberry Pi OS's own armhf is built for
# ARMv6; for those boards build on the Pi itself or with a toolchain file that
# sets -march=armv6zk -mfpu=vfp -mfloat-abi=hard and a sysroot copied off it.
set(FIELDLINK_CROSS_TRIPLE arm-linux-gnueabihf)
set(FIELDLINK_CROSS_PROCESSOR armv7l)
set(FIELDLINK_CROSS_FLAGS "-march=armv7-a -mfpu=neon-vfpv4 -mfloat-abi=hard")
set(FIELDLINK_QEMU qemu-arm)
include(${CMAKE_CURRENT_LIST_DIR}/linux-cross-common.cmake)

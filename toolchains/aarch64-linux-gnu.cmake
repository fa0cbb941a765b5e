# Raspberry Pi OS 64-bit / Debian arm64 (Pi 3, 4, 5, Zero 2 W).
# -mcpu=cortex-a53: the Pi 3's core, the oldest a 64-bit Pi OS runs on; the code
# runs unchanged on the Pi 4 (A72) and Pi 5 (A76), tuned for none of them in particular.
set(FIELDLINK_CROSS_TRIPLE aarch64-linux-gnu)
set(FIELDLINK_CROSS_PROCESSOR aarch64)
set(FIELDLINK_CROSS_FLAGS "-mcpu=cortex-a53")
set(FIELDLINK_QEMU qemu-aarch64)
include(${CMAKE_CURRENT_LIST_DIR}/linux-cross-common.cmake)

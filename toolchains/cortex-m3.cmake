# Cortex-M3 (ARMv7-M, no FPU), e.g. the qemu mps2-an385 board or STM32F1/F2.
set(FIELDLINK_CPU_FLAGS "-mcpu=cortex-m3 -mthumb")
include(${CMAKE_CURRENT_LIST_DIR}/arm-none-eabi-common.cmake)

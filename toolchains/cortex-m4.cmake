# Cortex-M4F (ARMv7E-M with single-precision FPU, hard-float ABI), e.g. STM32F4, nRF52.
set(FIELDLINK_CPU_FLAGS "-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16")
include(${CMAKE_CURRENT_LIST_DIR}/arm-none-eabi-common.cmake)

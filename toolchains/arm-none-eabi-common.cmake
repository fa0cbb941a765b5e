# Shared part of the bare-metal Arm toolchain files (arm-none-eabi, newlib).
# A CPU file sets FIELDLINK_CPU_FLAGS and includes this file, e.g.
#   cmake -S . -B build/cortex-m3 -DCMAKE_TOOLCHAIN_FILE=toolchains/cortex-m3.cmake
# CMAKE_SYSTEM_NAME Generic tells the top-level build that this is bare metal:
# only protocol/ and firmware/ are built (no gateway, no tests, board "none").
if(NOT DEFINED FIELDLINK_CPU_FLAGS)
  message(FATAL_ERROR "fieldlink: include a CPU toolchain file (e.g. toolchains/cortex-m3.cmake), not this common part")
endif()

set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)

# The compilers are found on PATH; set FIELDLINK_ARM_TOOLCHAIN_PREFIX (e.g. /opt/gcc-arm/bin/)
# in the environment to use another installation.
set(_fieldlink_arm_prefix "$ENV{FIELDLINK_ARM_TOOLCHAIN_PREFIX}")
set(CMAKE_C_COMPILER ${_fieldlink_arm_prefix}arm-none-eabi-gcc)
set(CMAKE_CXX_COMPILER ${_fieldlink_arm_prefix}arm-none-eabi-g++)
set(CMAKE_ASM_COMPILER ${_fieldlink_arm_prefix}arm-none-eabi-gcc)

# There is no OS to link a test executable against: probe compilers with a static library.
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)

# Programs (code generators) come from the host; libraries and headers only from the target.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# Separate sections let the linker drop unused code; firmware C++ has no exceptions or RTTI.
set(_fieldlink_common_flags "${FIELDLINK_CPU_FLAGS} -ffunction-sections -fdata-sections")
set(CMAKE_C_FLAGS_INIT "${_fieldlink_common_flags}")
# -Wno-psabi: GCC notes an ABI change in how std::span is passed; harmless, and fatal with -Werror.
set(CMAKE_CXX_FLAGS_INIT "${_fieldlink_common_flags} -fno-exceptions -fno-rtti -Wno-psabi")
set(CMAKE_ASM_FLAGS_INIT "${FIELDLINK_CPU_FLAGS}")
set(CMAKE_EXE_LINKER_FLAGS_INIT "${FIELDLINK_CPU_FLAGS} -Wl,--gc-sections")

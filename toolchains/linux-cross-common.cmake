# Shared part of the Linux cross toolchain files (Raspberry Pi OS / Debian on Arm).
# A target file sets FIELDLINK_CROSS_TRIPLE (GNU triplet, also Debian's multiarch
# folder), FIELDLINK_CROSS_PROCESSOR, FIELDLINK_CROSS_FLAGS and FIELDLINK_QEMU,
# then includes this file, e.g.
#   cmake -S . -B build/pi-arm64 -DCMAKE_TOOLCHAIN_FILE=toolchains/aarch64-linux-gnu.cmake
#
# Where the target's libraries come from, in this order:
#  - FIELDLINK_SYSROOT (cache variable or environment): a copy of a Pi's root
#    file system (/usr and /lib, e.g. rsync'ed off the Pi, its -dev packages and
#    libpq-dev installed; docs/operations.md); used as --sysroot, and the only
#    source: neither multiarch nor the extra root below. target.cross.sysroot tests it.
#  - otherwise Debian multiarch on this machine: dpkg --add-architecture and the
#    target's -dev packages (scripts/setup-cross.sh installs them), found under
#    /usr/lib/<triplet> and /usr/include/<triplet>. libpq-dev cannot be installed
#    for two architectures at once, so setup-cross.sh unpacks the target's copy
#    into build/cross/<triplet>; FIELDLINK_CROSS_EXTRA_ROOT points there.
# Tests run under qemu-user (CMAKE_CROSSCOMPILING_EMULATOR), so ctest works on x86-64.
foreach(var FIELDLINK_CROSS_TRIPLE FIELDLINK_CROSS_PROCESSOR FIELDLINK_CROSS_FLAGS FIELDLINK_QEMU)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "fieldlink: include a target toolchain file (e.g. toolchains/aarch64-linux-gnu.cmake), not this common part")
  endif()
endforeach()

set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR ${FIELDLINK_CROSS_PROCESSOR})
set(CMAKE_LIBRARY_ARCHITECTURE ${FIELDLINK_CROSS_TRIPLE})

# Compilers from PATH (Debian's g++-<triplet>); FIELDLINK_CROSS_PREFIX (environment) for another one.
set(_fieldlink_cross_prefix "$ENV{FIELDLINK_CROSS_PREFIX}")
set(CMAKE_C_COMPILER ${_fieldlink_cross_prefix}${FIELDLINK_CROSS_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${_fieldlink_cross_prefix}${FIELDLINK_CROSS_TRIPLE}-g++)

if(NOT DEFINED FIELDLINK_SYSROOT AND DEFINED ENV{FIELDLINK_SYSROOT})
  set(FIELDLINK_SYSROOT "$ENV{FIELDLINK_SYSROOT}")
endif()
set(FIELDLINK_SYSROOT "${FIELDLINK_SYSROOT}" CACHE PATH "Root file system copied off the target; empty: Debian multiarch")
if(NOT DEFINED FIELDLINK_CROSS_EXTRA_ROOT)
  set(FIELDLINK_CROSS_EXTRA_ROOT "${CMAKE_CURRENT_LIST_DIR}/../build/cross/${FIELDLINK_CROSS_TRIPLE}")
endif()
get_filename_component(FIELDLINK_CROSS_EXTRA_ROOT "${FIELDLINK_CROSS_EXTRA_ROOT}" ABSOLUTE)
set(FIELDLINK_CROSS_EXTRA_ROOT "${FIELDLINK_CROSS_EXTRA_ROOT}" CACHE PATH "Extra target files (libpq-dev) unpacked by scripts/setup-cross.sh")
# try_compile reads this file again, in the same process, without the cache: it must take the
# same branch, or its set(ENV{PKG_CONFIG_LIBDIR}) below points the outer project's pkg-config
# back at multiarch and the default extra root (a sysroot build then took libsystemd.pc from the host).
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES FIELDLINK_SYSROOT FIELDLINK_CROSS_EXTRA_ROOT)

if(FIELDLINK_SYSROOT)
  set(CMAKE_SYSROOT "${FIELDLINK_SYSROOT}")
  set(CMAKE_FIND_ROOT_PATH "${FIELDLINK_SYSROOT}")
  set(ENV{PKG_CONFIG_SYSROOT_DIR} "${FIELDLINK_SYSROOT}")
  set(ENV{PKG_CONFIG_LIBDIR}
      "${FIELDLINK_SYSROOT}/usr/lib/${FIELDLINK_CROSS_TRIPLE}/pkgconfig:${FIELDLINK_SYSROOT}/usr/share/pkgconfig")
  set(_fieldlink_qemu_root "${FIELDLINK_SYSROOT}")
  set(FIELDLINK_CROSS_SOURCE "sysroot ${FIELDLINK_SYSROOT}")
else()
  # Multiarch: the target's files live in the host's own /usr, beside the host's.
  set(CMAKE_FIND_ROOT_PATH / "${FIELDLINK_CROSS_EXTRA_ROOT}")
  set(ENV{PKG_CONFIG_LIBDIR}
      "${FIELDLINK_CROSS_EXTRA_ROOT}/usr/lib/${FIELDLINK_CROSS_TRIPLE}/pkgconfig:/usr/lib/${FIELDLINK_CROSS_TRIPLE}/pkgconfig:/usr/share/pkgconfig")
  # The loader and libraries are in the host root too (/lib/ld-linux-*.so, /usr/lib/<triplet>).
  set(_fieldlink_qemu_root "/")
  set(FIELDLINK_CROSS_SOURCE "Debian multiarch (${FIELDLINK_CROSS_TRIPLE})")
endif()
set(ENV{PKG_CONFIG_PATH} "")

# Programs (code generators) come from the host; libraries and headers only from the target.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

set(CMAKE_C_FLAGS_INIT "${FIELDLINK_CROSS_FLAGS}")
# -Wno-psabi: GCC notes ABI changes in how some std types are passed on Arm; harmless, and fatal with -Werror.
set(CMAKE_CXX_FLAGS_INIT "${FIELDLINK_CROSS_FLAGS} -Wno-psabi")

# ctest runs the target's programs through qemu-user; -L: where the target's dynamic loader and libraries are.
find_program(FIELDLINK_QEMU_PROGRAM NAMES ${FIELDLINK_QEMU} ${FIELDLINK_QEMU}-static)
if(FIELDLINK_QEMU_PROGRAM)
  set(CMAKE_CROSSCOMPILING_EMULATOR "${FIELDLINK_QEMU_PROGRAM};-L;${_fieldlink_qemu_root}")
endif()

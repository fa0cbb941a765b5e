# Nucleo-F103RB (STM32F103RB, Cortex-M3): the reader image for real hardware.
# Included by the top-level CMakeLists.txt when FIELDLINK_BOARD=nucleo-f103rb, in
# a bare-metal tree (toolchains/cortex-m3.cmake). See README.md.
#   cmake --build <dir>                        the image, footprint and symbol checks
#   cmake --build <dir> --target flash         program it with openocd (ST-LINK)
#   cmake --build <dir> --target flash-stlink  program it with st-flash instead
if(FIELDLINK_HOSTED)
  message(FATAL_ERROR "fieldlink: board nucleo-f103rb needs a Cortex-M3 tree "
                      "(-DCMAKE_TOOLCHAIN_FILE=toolchains/cortex-m3.cmake)")
endif()
find_package(Python3 REQUIRED COMPONENTS Interpreter)

set(_nucleo_dir ${CMAKE_CURRENT_LIST_DIR})
set(_nucleo_ld ${_nucleo_dir}/nucleo-f103rb.ld)

# drivers/: the register-level drivers, the same files the host register
# tests build (tests/nucleo_f103rb); target/hw_access.hpp is the real MMIO.
add_executable(fieldlink-reader
  ${_nucleo_dir}/drivers/f103_flash.cpp
  ${_nucleo_dir}/drivers/f103_usart.cpp
  ${_nucleo_dir}/drivers/f103_adc.cpp
  ${_nucleo_dir}/drivers/f103_rcc.cpp
  ${_nucleo_dir}/drivers/internal_sensors.cpp
  ${_nucleo_dir}/drivers/seed_random.cpp
  ${_nucleo_dir}/src/startup.cpp
  ${_nucleo_dir}/src/main.cpp)
target_include_directories(fieldlink-reader PRIVATE ${_nucleo_dir}/target ${_nucleo_dir}/drivers ${_nucleo_dir}/src)
target_link_libraries(fieldlink-reader PRIVATE fieldlink::reader_core fieldlink::spool fieldlink::link_transport)
target_compile_definitions(fieldlink-reader PRIVATE FIELDLINK_VERSION="${PROJECT_VERSION}")
target_compile_features(fieldlink-reader PRIVATE cxx_std_20)
fieldlink_warnings(fieldlink-reader)
fieldlink_freestanding(fieldlink-reader)
target_link_options(fieldlink-reader PRIVATE
  -T${_nucleo_ld} -nostartfiles --specs=nano.specs
  -Wl,-Map=$<TARGET_FILE_DIR:fieldlink-reader>/fieldlink-reader.map -Wl,--print-memory-usage)
set_target_properties(fieldlink-reader PROPERTIES
  SUFFIX .elf RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bin LINK_DEPENDS ${_nucleo_ld})

# After each link: the project budget (32 KiB flash, 16 KiB RAM with the stack),
# the chip (the linker script's 64 KiB image region, 20 KiB RAM), no heap,
# exception or RTTI symbol; then the raw .bin that st-flash writes.
get_filename_component(_nucleo_bin_dir ${CMAKE_C_COMPILER} DIRECTORY)
find_program(FIELDLINK_ARM_SIZE arm-none-eabi-size HINTS ${_nucleo_bin_dir} REQUIRED)
find_program(FIELDLINK_ARM_NM arm-none-eabi-nm HINTS ${_nucleo_bin_dir} REQUIRED)
find_program(FIELDLINK_ARM_OBJCOPY arm-none-eabi-objcopy HINTS ${_nucleo_bin_dir} REQUIRED)
set(_nucleo_footprint ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/boards/mps2-an385/check_footprint.py
    --size ${FIELDLINK_ARM_SIZE} --nm ${FIELDLINK_ARM_NM} --elf $<TARGET_FILE:fieldlink-reader>)
set(_nucleo_image_bin ${CMAKE_BINARY_DIR}/bin/fieldlink-reader.bin)
add_custom_command(TARGET fieldlink-reader POST_BUILD
  COMMAND ${_nucleo_footprint} --name nucleo-f103rb
  COMMAND ${_nucleo_footprint} --name nucleo-f103rb-chip --flash-budget 65536 --ram-budget 20480
  COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/target/check_freestanding.py --linked
          --nm ${FIELDLINK_ARM_NM} $<TARGET_FILE:fieldlink-reader>
  COMMAND ${FIELDLINK_ARM_OBJCOPY} -O binary $<TARGET_FILE:fieldlink-reader> ${_nucleo_image_bin}
  BYPRODUCTS ${_nucleo_image_bin}
  VERBATIM)

# Programming (needs the board on USB; never run by the tests, which only
# check that these targets exist). Debian's openocd ships the board file.
find_program(FIELDLINK_OPENOCD openocd)
find_program(FIELDLINK_ST_FLASH st-flash)
set(FIELDLINK_OPENOCD_BOARD board/st_nucleo_f103rb.cfg CACHE STRING "openocd board script for `flash`")
if(NOT FIELDLINK_OPENOCD)
  set(FIELDLINK_OPENOCD openocd)
  message(STATUS "fieldlink: openocd not found; the flash target will fail (scripts/setup.sh installs it)")
endif()
if(NOT FIELDLINK_ST_FLASH)
  set(FIELDLINK_ST_FLASH st-flash)
  message(STATUS "fieldlink: st-flash not found; flash-stlink will fail (stlink-tools, scripts/setup.sh)")
endif()
add_custom_target(flash
  COMMAND ${FIELDLINK_OPENOCD} -f ${FIELDLINK_OPENOCD_BOARD}
          -c "program $<TARGET_FILE:fieldlink-reader> verify reset exit"
  DEPENDS fieldlink-reader
  COMMENT "Programming the Nucleo-F103RB with openocd (ST-LINK on USB)"
  USES_TERMINAL VERBATIM)
# st-flash writes a raw image at the flash's start; --reset starts it.
add_custom_target(flash-stlink
  COMMAND ${FIELDLINK_ST_FLASH} --reset write ${_nucleo_image_bin} 0x08000000
  DEPENDS fieldlink-reader
  COMMENT "Programming the Nucleo-F103RB with st-flash (ST-LINK on USB)"
  USES_TERMINAL VERBATIM)

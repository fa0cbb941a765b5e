# MPS2 AN385 (Cortex-M3) as QEMU's `-M mps2-an385` emulates it: the reader image.
# Included by the top-level CMakeLists.txt when FIELDLINK_BOARD=mps2-an385, in a
# bare-metal tree (toolchains/cortex-m3.cmake). See README.md.
if(FIELDLINK_HOSTED)
  message(FATAL_ERROR "fieldlink: board mps2-an385 needs a Cortex-M3 tree "
                      "(-DCMAKE_TOOLCHAIN_FILE=toolchains/cortex-m3.cmake)")
endif()
find_package(Python3 REQUIRED COMPONENTS Interpreter)

set(_an385_dir ${CMAKE_CURRENT_LIST_DIR})
set(_an385_ld ${_an385_dir}/mps2-an385.ld)

add_executable(fieldlink-reader
  ${_an385_dir}/src/startup.cpp
  ${_an385_dir}/src/semihosting.cpp
  ${_an385_dir}/src/systick_clock.cpp
  ${_an385_dir}/src/cmsdk_uart.cpp
  ${_an385_dir}/src/ram_flash.cpp
  ${_an385_dir}/src/host_file_flash.cpp
  ${_an385_dir}/src/simulated_sensors.cpp
  ${_an385_dir}/src/jitter_random.cpp
  ${_an385_dir}/src/main.cpp)
target_include_directories(fieldlink-reader PRIVATE ${_an385_dir}/src)
target_link_libraries(fieldlink-reader PRIVATE fieldlink::reader_core fieldlink::spool fieldlink::link_transport)
target_compile_definitions(fieldlink-reader PRIVATE FIELDLINK_VERSION="${PROJECT_VERSION}")
target_compile_features(fieldlink-reader PRIVATE cxx_std_20)
fieldlink_warnings(fieldlink-reader)
fieldlink_freestanding(fieldlink-reader)
# Our own reset handler and init_array walk (no crt0); newlib-nano only for
# memcpy/memset. The linker script's regions are the footprint budget.
target_link_options(fieldlink-reader PRIVATE
  -T${_an385_ld} -nostartfiles --specs=nano.specs
  -Wl,-Map=$<TARGET_FILE_DIR:fieldlink-reader>/fieldlink-reader.map -Wl,--print-memory-usage)
set_target_properties(fieldlink-reader PROPERTIES
  SUFFIX .elf RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bin LINK_DEPENDS ${_an385_ld})

# After each link: the footprint (fails the build over 32 KiB flash / 16 KiB RAM)
# and no heap, exception or RTTI symbol in the linked image.
get_filename_component(_an385_bin ${CMAKE_C_COMPILER} DIRECTORY)
find_program(FIELDLINK_ARM_SIZE arm-none-eabi-size HINTS ${_an385_bin} REQUIRED)
find_program(FIELDLINK_ARM_NM arm-none-eabi-nm HINTS ${_an385_bin} REQUIRED)
add_custom_command(TARGET fieldlink-reader POST_BUILD
  COMMAND ${Python3_EXECUTABLE} ${_an385_dir}/check_footprint.py --name mps2-an385
          --size ${FIELDLINK_ARM_SIZE} --nm ${FIELDLINK_ARM_NM} --elf $<TARGET_FILE:fieldlink-reader>
  COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/target/check_freestanding.py --linked
          --nm ${FIELDLINK_ARM_NM} $<TARGET_FILE:fieldlink-reader>
  VERBATIM)

# The host board: the reader on Linux with simulated sensors and a TCP socket.
# Included by the top-level CMakeLists.txt when FIELDLINK_BOARD=host.
find_package(CLI11 REQUIRED)
find_package(fmt REQUIRED)
find_package(OpenSSL REQUIRED)  # TlsTransport (libssl-dev)

# HAL implementations (hosted C++: the standard library is fine here).
add_library(fieldlink_board_host STATIC
  ${CMAKE_CURRENT_LIST_DIR}/src/file_flash.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/monotonic_clock.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/simulated_sensors.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/system_random.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/tcp_transport.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/tls_transport.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/options.cpp)
add_library(fieldlink::board_host ALIAS fieldlink_board_host)
target_include_directories(fieldlink_board_host
  PUBLIC ${CMAKE_CURRENT_LIST_DIR}/include
  PRIVATE ${CMAKE_CURRENT_LIST_DIR}/src)
target_link_libraries(fieldlink_board_host
  PUBLIC fieldlink::hal fieldlink::reader_core fieldlink::spool
  PRIVATE CLI11::CLI11 OpenSSL::SSL)
target_compile_features(fieldlink_board_host PUBLIC cxx_std_20)
fieldlink_warnings(fieldlink_board_host)

add_executable(fieldlink-reader
  ${CMAKE_CURRENT_LIST_DIR}/src/main.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/host_events.cpp)
target_include_directories(fieldlink-reader PRIVATE ${CMAKE_CURRENT_LIST_DIR}/src)
target_link_libraries(fieldlink-reader PRIVATE fieldlink::board_host fmt::fmt)
target_compile_definitions(fieldlink-reader PRIVATE FIELDLINK_VERSION="${PROJECT_VERSION}")
# Programs land in <build>/bin, next to fieldlink-gateway.
set_target_properties(fieldlink-reader PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bin)
fieldlink_warnings(fieldlink-reader)
install(TARGETS fieldlink-reader RUNTIME DESTINATION bin)

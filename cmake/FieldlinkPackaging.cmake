# Debian packages with CPack's DEB generator: fieldlink-gateway and
# fieldlink-reader, for whatever architecture this tree builds (amd64, or arm64
# and armhf from the Pi presets). CPack rather than debhelper: one set of
# install rules serves `cmake --install` and the packages, and a cross tree
# packages itself with its own toolchain, without a cross sbuild setup.
#
#   cmake --build build/release --target package     # build/release/fieldlink-*.deb
#
# Layout (Debian 12 paths): /usr/bin, /etc/fieldlink (conffiles), the Mosquitto
# snippet in /etc/mosquitto/conf.d, units in /lib/systemd/system, system users
# from /usr/lib/sysusers.d, state under /var/lib/fieldlink[-reader].
include_guard(GLOBAL)

set(_pkg_config ${PROJECT_SOURCE_DIR}/config)
set(_pkg_out ${PROJECT_BINARY_DIR}/packaging)
file(MAKE_DIRECTORY ${_pkg_out}/gateway ${_pkg_out}/reader)

# What the packages install that differs from the checkout's files: binaries in
# /usr/bin, the database under the service's state directory.
file(READ ${_pkg_config}/systemd/fieldlink-gateway.service _unit)
string(REPLACE "/usr/local/bin/" "/usr/bin/" _unit "${_unit}")
string(REPLACE "file:///usr/local/share/doc/fieldlink/operations.md"
               "file:///usr/share/doc/fieldlink-gateway/operations.md" _unit "${_unit}")
file(WRITE ${_pkg_out}/gateway/fieldlink-gateway.service "${_unit}")
file(READ ${_pkg_config}/systemd/fieldlink-serial-bridge.service _unit)
string(REPLACE "/usr/local/bin/" "/usr/bin/" _unit "${_unit}")
file(WRITE ${_pkg_out}/gateway/fieldlink-serial-bridge.service "${_unit}")
file(READ ${_pkg_config}/gateway.toml _toml)
string(REPLACE "path = \"fieldlink.db\"" "path = \"/var/lib/fieldlink/fieldlink.db\"" _toml "${_toml}")
file(WRITE ${_pkg_out}/gateway/gateway.toml "${_toml}")

# Version: the project's, plus the commit count and hash when built from git,
# so that every later commit packages as an upgrade.
set(FIELDLINK_PACKAGE_VERSION ${PROJECT_VERSION})
find_package(Git QUIET)
if(GIT_FOUND AND EXISTS ${PROJECT_SOURCE_DIR}/.git)
  execute_process(COMMAND ${GIT_EXECUTABLE} rev-list --count HEAD WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
                  OUTPUT_VARIABLE _count OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE _count_rc)
  execute_process(COMMAND ${GIT_EXECUTABLE} rev-parse --short=10 HEAD WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
                  OUTPUT_VARIABLE _hash OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE _hash_rc)
  if(_count_rc EQUAL 0 AND _hash_rc EQUAL 0)
    set(FIELDLINK_PACKAGE_VERSION "${PROJECT_VERSION}+git${_count}.${_hash}")
  endif()
endif()

# Gateway.
install(FILES ${_pkg_out}/gateway/gateway.toml DESTINATION /etc/fieldlink COMPONENT gateway)
install(FILES ${_pkg_config}/mosquitto/fieldlink.conf DESTINATION /etc/mosquitto/conf.d COMPONENT gateway)
# The production variant replaces fieldlink.conf (same ports), so it ships as an example (operations.md).
install(FILES ${_pkg_config}/mosquitto/fieldlink-production.conf ${_pkg_config}/mosquitto/fieldlink.acl
        DESTINATION share/fieldlink/mosquitto COMPONENT gateway)
install(FILES ${_pkg_out}/gateway/fieldlink-gateway.service DESTINATION /lib/systemd/system COMPONENT gateway)
# Not enabled on install: it needs the board's serial lines (docs/operations.md).
install(FILES ${_pkg_out}/gateway/fieldlink-serial-bridge.service DESTINATION /lib/systemd/system COMPONENT gateway)
install(FILES ${_pkg_config}/sysusers/fieldlink.conf DESTINATION lib/sysusers.d COMPONENT gateway)
install(FILES ${PROJECT_SOURCE_DIR}/docs/operations.md DESTINATION share/doc/fieldlink-gateway COMPONENT gateway)
file(WRITE ${_pkg_out}/gateway/conffiles "/etc/fieldlink/gateway.toml\n/etc/mosquitto/conf.d/fieldlink.conf\n")
foreach(script postinst prerm postrm)
  configure_file(${_pkg_config}/debian/gateway.${script} ${_pkg_out}/gateway/${script} COPYONLY)
endforeach()

# Reader for Linux boards (the host board program).
install(FILES ${_pkg_config}/systemd/fieldlink-reader@.service DESTINATION /lib/systemd/system COMPONENT reader)
install(FILES ${_pkg_config}/sysusers/fieldlink-reader.conf DESTINATION lib/sysusers.d COMPONENT reader)
foreach(script postinst postrm)
  configure_file(${_pkg_config}/debian/reader.${script} ${_pkg_out}/reader/${script} COPYONLY)
endforeach()

# Both: the copyright file and a changelog, as Debian asks, and the lintian
# overrides (each says why).
set(_changelog_date "Thu, 01 Jan 1970 00:00:00 +0000")
if(GIT_FOUND AND _hash_rc EQUAL 0)
  execute_process(COMMAND ${GIT_EXECUTABLE} log -1 --format=%aD WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
                  OUTPUT_VARIABLE _changelog_date OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
endif()
find_program(FIELDLINK_GZIP gzip REQUIRED)
if(NOT _hash)
  set(_hash "unknown")
endif()
foreach(component gateway reader)
  set(_doc share/doc/fieldlink-${component})
  install(FILES ${_pkg_config}/debian/copyright DESTINATION ${_doc} COMPONENT ${component})
  file(WRITE ${_pkg_out}/${component}/changelog
       "fieldlink-${component} (${FIELDLINK_PACKAGE_VERSION}) unstable; urgency=medium\n\n"
       "  * Built from the fieldlink source, git commit ${_hash}.\n\n"
       " -- fieldlink maintainers <maintainers@fieldlink.invalid>  ${_changelog_date}\n")
  execute_process(COMMAND ${FIELDLINK_GZIP} -9 -n -f ${_pkg_out}/${component}/changelog)
  install(FILES ${_pkg_out}/${component}/changelog.gz DESTINATION ${_doc} COMPONENT ${component})
  install(FILES ${_pkg_config}/debian/lintian/fieldlink-${component} DESTINATION share/lintian/overrides
          COMPONENT ${component})
endforeach()

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME fieldlink)
set(CPACK_PACKAGE_VENDOR "fieldlink")
set(CPACK_PACKAGE_CONTACT "fieldlink maintainers <maintainers@fieldlink.invalid>")
set(CPACK_PACKAGE_VERSION ${FIELDLINK_PACKAGE_VERSION})
# Each package's summary is the first line of its own description; CPackDeb
# prepends the project's summary unless it is CPack's default one.
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${CPACK_PACKAGE_NAME} built using CMake")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES TRUE)  # debug info stays in the build tree
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL gateway reader)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_VERSION ${FIELDLINK_PACKAGE_VERSION})
set(CPACK_DEBIAN_PACKAGE_SECTION misc)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://fieldlink.invalid/")
# Library dependencies from the binaries themselves (dpkg-shlibdeps, also for
# the target architecture of a cross tree: its multiarch libraries are installed).
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS OFF)
if(CMAKE_CROSSCOMPILING)
  execute_process(COMMAND dpkg-architecture -qDEB_HOST_ARCH -t ${FIELDLINK_CROSS_TRIPLE}
                  OUTPUT_VARIABLE CPACK_DEBIAN_PACKAGE_ARCHITECTURE OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS_PRIVATE_DIRS "")
endif()

set(CPACK_DEBIAN_GATEWAY_PACKAGE_NAME fieldlink-gateway)
set(CPACK_DEBIAN_GATEWAY_DESCRIPTION "fieldlink gateway: sensor readings from MQTT into SQLite, forwarded upstream
Subscribes to the devices' batches on a local Mosquitto, stores every reading
exactly once in an SQLite database under /var/lib/fieldlink, acknowledges the
commits to the devices and forwards readings to an MQTT broker or PostgreSQL
with a durable cursor per upstream. Runs as the systemd service
fieldlink-gateway (Type=notify, watchdog, sandboxed).")
set(CPACK_DEBIAN_GATEWAY_PACKAGE_DEPENDS "systemd")
set(CPACK_DEBIAN_GATEWAY_PACKAGE_RECOMMENDS "mosquitto")
set(CPACK_DEBIAN_GATEWAY_PACKAGE_CONTROL_EXTRA
    "${_pkg_out}/gateway/conffiles;${_pkg_out}/gateway/postinst;${_pkg_out}/gateway/prerm;${_pkg_out}/gateway/postrm")
set(CPACK_DEBIAN_GATEWAY_PACKAGE_CONTROL_STRICT_PERMISSION ON)

set(CPACK_DEBIAN_READER_PACKAGE_NAME fieldlink-reader)
set(CPACK_DEBIAN_READER_DESCRIPTION "fieldlink reader for Linux boards: samples sensors, publishes over MQTT
The fieldlink reader firmware built for a Linux board: samples its sensors,
keeps readings in a flash file under /var/lib/fieldlink-reader until the
gateway's commit ack covers them, and publishes them in batches over MQTT.
One systemd instance per device: fieldlink-reader@DEVICE.")
set(CPACK_DEBIAN_READER_PACKAGE_DEPENDS "systemd")
set(CPACK_DEBIAN_READER_PACKAGE_CONTROL_EXTRA "${_pkg_out}/reader/postinst;${_pkg_out}/reader/postrm")
set(CPACK_DEBIAN_READER_PACKAGE_CONTROL_STRICT_PERMISSION ON)

include(CPack)

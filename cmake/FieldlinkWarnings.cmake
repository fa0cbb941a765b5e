# Warning set shared by every fieldlink target; FIELDLINK_WERROR makes them fatal (CI).
function(fieldlink_warnings target)
  target_compile_options(${target} PRIVATE
    -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wcast-align
    -Wimplicit-fallthrough -Wmissing-declarations)
  if(FIELDLINK_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

# Firmware-side code: no exceptions, no RTTI, no heap (checked by tests/firmware).
function(fieldlink_freestanding target)
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:CXX>:-fno-exceptions -fno-rtti -fno-threadsafe-statics>)
endfunction()

# Used by bench/run.py only while the top-level CMakeLists.txt does not add
# bench/ itself: passed as CMAKE_PROJECT_INCLUDE, it reads bench/CMakeLists.txt
# once the top-level file has defined every other target (deferred calls may
# not add subdirectories, hence include()). When the top level already added
# bench/, the target exists and this does nothing.
function(_fieldlink_attach_bench)
  if(NOT TARGET fieldlink-bench)
    include(${CMAKE_SOURCE_DIR}/bench/CMakeLists.txt)
  endif()
endfunction()
cmake_language(DEFER DIRECTORY ${CMAKE_SOURCE_DIR} CALL _fieldlink_attach_bench)

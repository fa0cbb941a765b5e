// toml++'s implementation, compiled into the config fuzz target as its own
// translation unit: config.cpp sees toml++ as a library (TOML_HEADER_ONLY=0),
// as in the gateway build against Debian's libtomlplusplus.so (the same 3.3.0
// source), but here the parser is instrumented for coverage and sanitizers.
// Being its own object, it is compiled once and not again when config.cpp
// changes.
#define TOML_IMPLEMENTATION
#include <toml++/toml.h>

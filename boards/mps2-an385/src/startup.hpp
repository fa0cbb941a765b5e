// The application the reset handler runs after the C/C++ runtime is set up.
#pragma once

#include <cstddef>

namespace fieldlink::boards::mps2_an385 {

// Returns the program's exit code: 0 for success (reported via semihosting).
int board_main() noexcept;

// Deepest the main stack has been since reset, in bytes (the reset handler
// fills the stack with a pattern; this finds the lowest word overwritten).
std::size_t stack_used() noexcept;

}  // namespace fieldlink::boards::mps2_an385

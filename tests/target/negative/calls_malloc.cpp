// Deliberately not freestanding: the target check must reject this object.
#include <cstdlib>

void* fieldlink_negative_allocate(std::size_t size);
void* fieldlink_negative_allocate(std::size_t size) { return std::malloc(size); }

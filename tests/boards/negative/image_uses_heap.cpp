// Deliberately not freestanding: a linked image with the heap in it, which
// check_freestanding.py --linked must reject (malloc and free are defined in
// the image, not left undefined as in an object).
#include <cstdlib>

int main() {
    void* volatile block = std::malloc(16);
    std::free(block);
    return 0;
}

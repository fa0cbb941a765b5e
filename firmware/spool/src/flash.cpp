#include "fieldlink/hal/flash.hpp"

namespace fieldlink::hal {

const char* to_string(FlashStatus status) noexcept {
    switch (status) {
    case FlashStatus::Ok:
        return "ok";
    case FlashStatus::OutOfRange:
        return "out_of_range";
    case FlashStatus::Misaligned:
        return "misaligned";
    case FlashStatus::NotErased:
        return "not_erased";
    case FlashStatus::IoError:
        return "io_error";
    case FlashStatus::InvalidArgument:
        return "invalid_argument";
    }
    return "unknown";
}

}  // namespace fieldlink::hal

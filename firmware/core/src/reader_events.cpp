#include "fieldlink/reader/reader_events.hpp"

namespace fieldlink::reader {

const char* to_string(AckOutcome outcome) noexcept {
    switch (outcome) {
        case AckOutcome::Accepted: return "accepted";
        case AckOutcome::Stale: return "stale";
        case AckOutcome::OtherIncarnation: return "other_incarnation";
        case AckOutcome::AheadOfProduced: return "ahead_of_produced";
        case AckOutcome::Undecodable: return "undecodable";
    }
    return "unknown";
}

const char* to_string(ResendReason reason) noexcept {
    switch (reason) {
        case ResendReason::AckTimeout: return "ack_timeout";
        case ResendReason::Reconnect: return "reconnect";
    }
    return "unknown";
}

}  // namespace fieldlink::reader

// libFuzzer target for the reader's MQTT 3.1.1 client: what a broker, or a man
// in the middle, can send to a board. Input: two control bytes, then the byte
// stream "from the broker".
//
// 1. Every decoder of fieldlink/mqtt/packet.hpp runs on the stream: the fixed
//    header, decode_packet on each packet in turn (CONNACK, PUBLISH, PUBACK,
//    SUBACK, ...), and on every prefix that a session would see first.
//    Invariants: decoded lengths and pointers stay inside the input; a valid
//    packet cut short is Incomplete (never an error); packets that the client
//    also encodes (PUBLISH, PUBACK) encode back to the same bytes.
// 2. An mqtt::Session runs over a fake transport that hands out the stream in
//    chunks, on a fake clock: CONNECT, then the application subscribes and
//    publishes as the reader does, polls until the stream ends, and reconnects
//    after failures. Invariants: every packet the session sends is one whole,
//    valid packet; errors leave it Failed; handlers get pointers into the
//    receive buffer; PUBACKs release only what was published; the session
//    never asks the transport to receive into a full buffer (it would stall).
//
// Control byte 0: bits 0-1 receive buffer (64, 80, 128, 256 bytes); bits 2-3
// chunk size (1, 5, 32, everything); bit 4 keep-alive; bit 5 the transport
// reports Closed at the end of the stream (else it stays silent); bit 6
// subscribe after CONNACK; bit 7 publish QoS 1 after CONNACK.
// Control byte 1: bits 0-2 which send fails (0: none); bits 3-4 clock step
// per receive (0, 10, 500, 1500 ms); bits 5-7 QoS 1 publishes per poll.
//
// Like the code under test, this target allocates nothing.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>

#include "fieldlink/hal/clock.hpp"
#include "fieldlink/hal/transport.hpp"
#include "fieldlink/mqtt/packet.hpp"
#include "fieldlink/mqtt/session.hpp"

namespace mq = fieldlink::mqtt;
namespace hal = fieldlink::hal;
using mq::Status;

namespace {

[[noreturn]] void violated(const char* what, int line) {
    std::fprintf(stderr, "fuzz_mqtt: invariant violated (line %d): %s\n", line, what);
    std::abort();
}
#define FUZZ_CHECK(cond) ((cond) ? (void)0 : violated(#cond, __LINE__))

bool inside(const void* pointer, std::size_t length, const std::uint8_t* base, std::size_t size) {
    const auto* p = static_cast<const std::uint8_t*>(pointer);
    return p >= base && p <= base + size && length <= static_cast<std::size_t>(base + size - p);
}

// ---- 1. decoders -----------------------------------------------------------

void check_fixed_header(const std::uint8_t* data, std::size_t size) {
    std::uint8_t first = 0;
    std::uint32_t remaining = 0;
    std::size_t header_size = 0;
    const Status s = mq::decode_fixed_header(data, size, &first, &remaining, &header_size);
    if (s != Status::Ok) {
        FUZZ_CHECK(s == Status::Incomplete || s == Status::MalformedLength);
        if (s == Status::MalformedLength) FUZZ_CHECK(size >= mq::kMaxFixedHeaderSize);
        return;
    }
    FUZZ_CHECK(header_size >= 2 && header_size <= mq::kMaxFixedHeaderSize && header_size <= size);
    FUZZ_CHECK(first == data[0] && remaining <= mq::kMaxRemainingLength);
    // The shortest encoding of the value is never longer than what was read,
    // and when it is as long, it is the same bytes.
    std::uint8_t encoded[4];
    const std::size_t n = mq::encode_remaining_length(remaining, encoded);
    FUZZ_CHECK(n >= 1 && n <= header_size - 1);
    if (n == header_size - 1) FUZZ_CHECK(std::memcmp(encoded, data + 1, n) == 0);
}

// One packet decoded Ok at data[0..used): checks per type, then re-encoding.
void check_packet(const mq::Packet& p, const std::uint8_t* data, std::size_t size, std::size_t used) {
    FUZZ_CHECK(used >= 2 && used <= size);
    FUZZ_CHECK(p.body_length < used && p.body == data + (used - p.body_length));
    const auto type = static_cast<std::uint8_t>(p.type);
    FUZZ_CHECK(type >= 1 && type <= 14 && type == data[0] >> 4 && p.flags == (data[0] & 0x0F));
    const bool minimal_length = [&] {
        std::uint8_t encoded[4];
        return mq::encode_remaining_length(static_cast<std::uint32_t>(p.body_length), encoded) ==
               used - p.body_length - 1;
    }();
    static std::uint8_t out[mq::kMaxFixedHeaderSize + 70'000];
    std::size_t written = 0;
    switch (p.type) {
        case mq::PacketType::Connack:
            FUZZ_CHECK(p.body_length == 2 && p.connack_code == p.body[1]);
            FUZZ_CHECK(!p.session_present || p.connack_code == 0);
            break;
        case mq::PacketType::Publish: {
            const mq::PublishView& m = p.publish;
            FUZZ_CHECK(m.qos <= 2 && (m.qos > 0 || !m.dup) && (m.qos == 0 || p.packet_id != 0));
            FUZZ_CHECK(m.topic_length >= 1 && inside(m.topic, m.topic_length, p.body, p.body_length));
            FUZZ_CHECK(inside(m.payload, m.payload_length, p.body, p.body_length));
            FUZZ_CHECK(m.payload + m.payload_length == p.body + p.body_length);
            FUZZ_CHECK(2 + m.topic_length + (m.qos > 0 ? 2 : 0) + m.payload_length == p.body_length);
            for (std::size_t i = 0; i < m.topic_length; ++i) {
                FUZZ_CHECK(m.topic[i] != '+' && m.topic[i] != '#' && m.topic[i] != '\0');
            }
            if (m.qos <= 1 && minimal_length) {
                static char topic[mq::kMaxStringLength + 1];
                std::memcpy(topic, m.topic, m.topic_length);
                topic[m.topic_length] = '\0';
                const Status s = mq::encode_publish(topic, m.payload, m.payload_length,
                                                    m.qos == 0 ? mq::QoS::AtMostOnce : mq::QoS::AtLeastOnce, m.retain,
                                                    m.dup, p.packet_id, out, sizeof out, &written);
                FUZZ_CHECK(s == Status::Ok && written == used && std::memcmp(out, data, used) == 0);
            }
            break;
        }
        case mq::PacketType::Puback:
            FUZZ_CHECK(p.body_length == 2 && p.packet_id != 0);
            if (minimal_length) {
                FUZZ_CHECK(mq::encode_puback(p.packet_id, out, sizeof out, &written) == Status::Ok);
                FUZZ_CHECK(written == used && std::memcmp(out, data, used) == 0);
            }
            break;
        case mq::PacketType::Pubrec:
        case mq::PacketType::Pubrel:
        case mq::PacketType::Pubcomp:
        case mq::PacketType::Unsuback: FUZZ_CHECK(p.body_length == 2 && p.packet_id != 0); break;
        case mq::PacketType::Suback:
            FUZZ_CHECK(p.packet_id != 0 && p.suback_codes == p.body + 2 && p.suback_count == p.body_length - 2);
            FUZZ_CHECK(p.suback_count >= 1);
            for (std::size_t i = 0; i < p.suback_count; ++i) {
                const std::uint8_t code = p.suback_codes[i];
                FUZZ_CHECK(code <= 2 || code == mq::kSubackFailure);
            }
            break;
        case mq::PacketType::Pingreq:
        case mq::PacketType::Pingresp:
        case mq::PacketType::Disconnect:
            FUZZ_CHECK(p.body_length == 0);
            if (p.type == mq::PacketType::Pingreq) {
                FUZZ_CHECK(mq::encode_pingreq(out, sizeof out, &written) == Status::Ok);
                FUZZ_CHECK(!minimal_length || (written == used && std::memcmp(out, data, used) == 0));
            }
            break;
        case mq::PacketType::Subscribe:
        case mq::PacketType::Unsubscribe: FUZZ_CHECK(p.body_length >= 5 && p.packet_id != 0); break;
        case mq::PacketType::Connect: break;
    }
}

void decode_stream(const std::uint8_t* data, std::size_t size) {
    check_fixed_header(data, size);
    std::size_t offset = 0;
    while (offset < size) {
        const std::uint8_t* at = data + offset;
        const std::size_t left = size - offset;
        mq::Packet packet;
        std::size_t used = 0;
        const Status s = mq::decode_packet(at, left, &packet, &used);
        if (s != Status::Ok) {
            FUZZ_CHECK(s == Status::Incomplete || s == Status::MalformedLength || s == Status::Malformed ||
                       s == Status::UnknownType);
            return;
        }
        check_packet(packet, at, left, used);
        // What a session sees before the last byte arrives: Incomplete, never an error.
        if (used > 1) {
            FUZZ_CHECK(mq::decode_packet(at, used - 1, nullptr, nullptr) == Status::Incomplete);
            FUZZ_CHECK(mq::decode_packet(at, 1, nullptr, nullptr) == Status::Incomplete);
        }
        // Decoding exactly the packet gives the same result.
        mq::Packet again;
        std::size_t used_again = 0;
        FUZZ_CHECK(mq::decode_packet(at, used, &again, &used_again) == Status::Ok && used_again == used);
        FUZZ_CHECK(again.body == packet.body && again.packet_id == packet.packet_id);
        offset += used;
    }
}

// ---- 2. the session ----------------------------------------------------------

class FuzzClock final : public hal::Clock {
public:
    std::uint64_t now_ms() const override { return now; }
    void sleep_ms(std::uint32_t ms) override { now += ms; }
    std::uint64_t now = 1'000;
};

class FuzzTransport final : public hal::Transport {
public:
    FuzzTransport(FuzzClock& clock, const std::uint8_t* data, std::size_t size)
        : clock_(clock), data_(data), size_(size) {}

    hal::TransportStatus open(const char*, std::uint16_t, std::uint32_t) override { return hal::TransportStatus::Ok; }
    void close() override {}

    hal::TransportStatus send(const std::uint8_t* data, std::size_t length, std::uint32_t) override {
        ++sends;
        if (sends == fail_send_at) return hal::TransportStatus::Error;
        // Always exactly one whole, valid packet.
        mq::Packet packet;
        std::size_t used = 0;
        FUZZ_CHECK(mq::decode_packet(data, length, &packet, &used) == Status::Ok && used == length);
        last_sent = packet.type;
        if (packet.type == mq::PacketType::Publish && packet.publish.qos == 1) last_publish_id = packet.packet_id;
        return hal::TransportStatus::Ok;
    }

    hal::TransportStatus recv(std::uint8_t* buffer, std::size_t capacity, std::uint32_t timeout_ms,
                              std::size_t* received) override {
        *received = 0;
        // A session that asks for nothing can never receive the rest of its packet.
        FUZZ_CHECK(buffer != nullptr && capacity > 0);
        if (offset_ == size_) {
            if (closed_at_end) return hal::TransportStatus::Closed;
            clock_.now += timeout_ms;  // silence: the wait runs out
            ++silent_polls;
            return hal::TransportStatus::Ok;
        }
        std::size_t n = size_ - offset_;
        if (n > chunk) n = chunk;
        if (n > capacity) n = capacity;
        std::memcpy(buffer, data_ + offset_, n);
        offset_ += n;
        clock_.now += step_ms;
        *received = n;
        return hal::TransportStatus::Ok;
    }

    bool exhausted() const { return offset_ == size_; }

    std::size_t chunk = 1;
    std::uint32_t step_ms = 0;
    bool closed_at_end = false;
    int fail_send_at = 0;
    int sends = 0;
    int silent_polls = 0;
    mq::PacketType last_sent = mq::PacketType::Disconnect;
    std::uint16_t last_publish_id = 0;

private:
    FuzzClock& clock_;
    const std::uint8_t* data_;
    std::size_t size_;
    std::size_t offset_ = 0;
};

class Handler final : public mq::EventHandler {
public:
    Handler(const std::uint8_t* rx, std::size_t rx_size) : rx_(rx), rx_size_(rx_size) {}

    void on_connack(bool) override { ++connacks; }
    void on_puback(std::uint16_t packet_id) override {
        // Only ids that were published and not yet acknowledged.
        bool found = false;
        for (std::size_t i = 0; i < outstanding_count && !found; ++i) {
            if (outstanding[i] == packet_id) {
                outstanding[i] = outstanding[--outstanding_count];
                found = true;
            }
        }
        FUZZ_CHECK(found);
    }
    void on_suback(std::uint16_t packet_id, const std::uint8_t* codes, std::size_t count) override {
        FUZZ_CHECK(packet_id != 0 && count >= 1 && inside(codes, count, rx_, rx_size_));
    }
    void on_message(const mq::IncomingMessage& m) override {
        FUZZ_CHECK(m.topic_length >= 1 && inside(m.topic, m.topic_length, rx_, rx_size_));
        FUZZ_CHECK(inside(m.payload, m.payload_length, rx_, rx_size_) && m.qos <= 1);
        ++messages;
    }

    void forget() { outstanding_count = 0; }

    int connacks = 0;
    int messages = 0;
    std::uint16_t outstanding[mq::kMaxPendingPubacks] = {};
    std::size_t outstanding_count = 0;

private:
    const std::uint8_t* rx_;
    std::size_t rx_size_;
};

bool is_poll_error(Status s) {
    switch (s) {
        case Status::TransportError:
        case Status::ConnectionClosed:
        case Status::ResponseTimeout:
        case Status::PingTimeout:
        case Status::ConnectionRefused:
        case Status::ProtocolError:
        case Status::Malformed:
        case Status::MalformedLength:
        case Status::UnknownType: return true;
        default: return false;
    }
}

void run_session(std::uint8_t c0, std::uint8_t c1, const std::uint8_t* stream, std::size_t size) {
    static constexpr std::size_t kRxSizes[] = {64, 80, 128, 256};
    static constexpr std::size_t kChunks[] = {1, 5, 32, 1u << 30};
    static constexpr std::uint32_t kSteps[] = {0, 10, 500, 1'500};
    static std::uint8_t rx[256];
    static std::uint8_t tx[512];
    const std::size_t rx_size = kRxSizes[c0 & 3];

    FuzzClock clock;
    FuzzTransport transport(clock, stream, size);
    transport.chunk = kChunks[(c0 >> 2) & 3];
    transport.closed_at_end = (c0 & 0x20) != 0;
    transport.fail_send_at = c1 & 7;
    transport.step_ms = kSteps[(c1 >> 3) & 3];
    const bool keep_alive = (c0 & 0x10) != 0;
    const bool subscribe = (c0 & 0x40) != 0;
    const bool publish = (c0 & 0x80) != 0;
    const unsigned publishes_per_poll = (c1 >> 5) & 7;

    mq::SessionConfig config;
    config.response_timeout_ms = 3'000;
    config.send_timeout_ms = 1'000;
    config.ping_timeout_ms = (c1 & 0x08) != 0 ? 700 : 0;
    mq::Session session(transport, clock, std::span<std::uint8_t>(tx, sizeof tx), std::span<std::uint8_t>(rx, rx_size),
                        config);
    Handler handler(rx, rx_size);

    mq::ConnectOptions options;
    options.client_id = "fuzz-reader";
    options.keep_alive_s = keep_alive ? 2 : 0;
    options.clean_session = true;
    static const std::uint8_t offline[] = {'o', 'f', 'f'};
    mq::Will will;
    will.topic = "fieldlink/v1/fuzz/status";
    will.payload = offline;
    will.payload_length = sizeof offline;
    will.qos = mq::QoS::AtLeastOnce;
    will.retain = true;
    options.will = &will;

    static const std::uint8_t payload[] = {'F', 'L', 1, 1, 0, 0, 0, 0};
    int connects = 0;
    bool subscribed = false;
    unsigned published = 0;  // QoS 1 publishes on this connection
    bool telemetry_sent = false;
    // Each poll takes at least one byte while the stream lasts, so this ends.
    const std::size_t max_polls = size + 64;
    for (std::size_t poll = 0; poll < max_polls; ++poll) {
        if (session.state() == mq::SessionState::Idle) {
            if (connects == 4) break;
            ++connects;
            subscribed = false;
            published = 0;
            telemetry_sent = false;
            handler.forget();
            const Status s = session.connect(options);
            if (s != Status::Ok) {
                FUZZ_CHECK(s == Status::TransportError && session.state() == mq::SessionState::Failed);
                session.reset();
                continue;
            }
            FUZZ_CHECK(session.state() == mq::SessionState::Connecting &&
                       transport.last_sent == mq::PacketType::Connect);
        }
        const int connacks_before = handler.connacks;
        const mq::SessionState before = session.state();
        const Status s = session.poll(200, handler);
        FUZZ_CHECK(handler.connacks - connacks_before <= 1);
        if (handler.connacks != connacks_before) FUZZ_CHECK(before == mq::SessionState::Connecting);
        FUZZ_CHECK(session.pending_pubacks() == handler.outstanding_count);
        if (s != Status::Ok) {
            FUZZ_CHECK(is_poll_error(s) && session.state() == mq::SessionState::Failed);
            session.reset();
            FUZZ_CHECK(session.state() == mq::SessionState::Idle && session.pending_pubacks() == 0);
            continue;
        }
        FUZZ_CHECK(session.state() == mq::SessionState::Connecting || session.state() == mq::SessionState::Connected);
        if (session.state() == mq::SessionState::Connected) {
            if (subscribe && !subscribed) {
                std::uint16_t id = 0;
                const Status sub = session.subscribe("fieldlink/v1/fuzz/ack", mq::QoS::AtLeastOnce, &id);
                FUZZ_CHECK(sub == Status::Ok || sub == Status::TransportError);
                if (sub == Status::Ok) FUZZ_CHECK(id != 0);
                subscribed = true;
            }
            // Enough to fill the PUBACK slots twice over, not more: publishing is
            // the client's sending side, which this target does not fuzz.
            for (unsigned i = 0; publish && i < publishes_per_poll && published < 2 * mq::kMaxPendingPubacks &&
                                 session.can_publish_qos1();
                 ++i, ++published) {
                std::uint16_t id = 0;
                const Status pub =
                    session.publish("fieldlink/v1/fuzz/up", payload, sizeof payload, mq::QoS::AtLeastOnce, false, &id);
                if (pub != Status::Ok) {
                    FUZZ_CHECK(pub == Status::TransportError);
                    break;
                }
                FUZZ_CHECK(id != 0 && id == transport.last_publish_id);
                for (std::size_t k = 0; k < handler.outstanding_count; ++k) FUZZ_CHECK(handler.outstanding[k] != id);
                handler.outstanding[handler.outstanding_count++] = id;
            }
            if (session.state() == mq::SessionState::Connected && !telemetry_sent) {
                telemetry_sent = true;
                FUZZ_CHECK(session.publish("fieldlink/v1/fuzz/telemetry", payload, sizeof payload, mq::QoS::AtMostOnce,
                                           false, nullptr) != Status::PendingFull);
            }
            FUZZ_CHECK(session.pending_pubacks() <= mq::kMaxPendingPubacks);
        }
        if (session.state() == mq::SessionState::Failed) {
            session.reset();
            continue;
        }
        if (transport.exhausted() && transport.silent_polls > 4) break;
    }
    if (session.state() == mq::SessionState::Connected) {
        const Status s = session.disconnect();
        FUZZ_CHECK(s == Status::Ok || s == Status::TransportError);
        FUZZ_CHECK(session.state() == mq::SessionState::Idle);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    // libFuzzer's input buffer has exactly this size, so AddressSanitizer
    // catches a read past the end of the stream.
    const std::uint8_t* stream = data + 2;
    const std::size_t stream_size = size - 2;
    decode_stream(stream, stream_size);
    run_session(data[0], data[1], stream, stream_size);
    return 0;
}

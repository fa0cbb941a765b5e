#include "fieldlink/mqtt/packet.hpp"

#include <cstring>

namespace fieldlink::mqtt {
namespace {

constexpr std::uint8_t kProtocolLevel = 4;  // MQTT 3.1.1
constexpr std::uint8_t kProtocolName[] = {0x00, 0x04, 'M', 'Q', 'T', 'T'};

constexpr std::uint8_t kConnectFlagCleanSession = 0x02;
constexpr std::uint8_t kConnectFlagWill = 0x04;
constexpr std::uint8_t kConnectFlagWillRetain = 0x20;
constexpr std::uint8_t kConnectFlagPassword = 0x40;
constexpr std::uint8_t kConnectFlagUserName = 0x80;

std::uint16_t read_u16(const std::uint8_t* p) noexcept { return static_cast<std::uint16_t>((p[0] << 8) | p[1]); }

// Bounded writer: every put checks the capacity, so encoders stay simple.
class Writer {
public:
    Writer(std::uint8_t* out, std::size_t capacity) noexcept : out_(out), capacity_(out == nullptr ? 0 : capacity) {}

    void byte(std::uint8_t value) noexcept {
        if (reserve(1)) out_[size_++] = value;
    }
    void u16(std::uint16_t value) noexcept {
        byte(static_cast<std::uint8_t>(value >> 8));
        byte(static_cast<std::uint8_t>(value));
    }
    void bytes(const void* data, std::size_t length) noexcept {
        if (length != 0 && reserve(length)) {
            std::memcpy(out_ + size_, data, length);
            size_ += length;
        }
    }
    // Length-prefixed field (UTF-8 string or binary data), at most 65535 bytes.
    void field(const void* data, std::size_t length) noexcept {
        u16(static_cast<std::uint16_t>(length));
        bytes(data, length);
    }
    void fixed_header(std::uint8_t first, std::uint32_t remaining) noexcept {
        byte(first);
        std::uint8_t length_bytes[4];
        const std::size_t n = encode_remaining_length(remaining, length_bytes);
        bytes(length_bytes, n);
    }

    Status finish(std::size_t* written) const noexcept {
        if (overflow_) return Status::BufferTooSmall;
        if (written != nullptr) *written = size_;
        return Status::Ok;
    }

private:
    bool reserve(std::size_t n) noexcept {
        if (overflow_ || capacity_ - size_ < n) {
            overflow_ = true;
            return false;
        }
        return true;
    }

    std::uint8_t* out_;
    std::size_t capacity_;
    std::size_t size_ = 0;
    bool overflow_ = false;
};

// Length of an optional C string, or kMaxStringLength + 1 when it is longer
// than an MQTT string may be (so callers need one range check).
std::size_t string_length(const char* text) noexcept {
    if (text == nullptr) return 0;
    std::size_t n = 0;
    while (text[n] != '\0') {
        if (++n > kMaxStringLength) break;
    }
    return n;
}

// A topic name (not a filter): 1..65535 bytes, no wildcards, no NUL.
bool is_valid_topic_name(const char* topic, std::size_t length) noexcept {
    if (topic == nullptr || length == 0 || length > kMaxStringLength) return false;
    for (std::size_t i = 0; i < length; ++i) {
        if (topic[i] == '+' || topic[i] == '#' || topic[i] == '\0') return false;
    }
    return true;
}

// Fixed-header flag nibble that spec table 2.2 requires for each type;
// PUBLISH is checked separately because its flags carry DUP, QoS and RETAIN.
std::uint8_t required_flags(PacketType type) noexcept {
    switch (type) {
        case PacketType::Pubrel:
        case PacketType::Subscribe:
        case PacketType::Unsubscribe: return 0x02;
        default: return 0x00;
    }
}

Status decode_publish(std::uint8_t flags, const std::uint8_t* body, std::size_t n, Packet* p) noexcept {
    const std::uint8_t qos = static_cast<std::uint8_t>((flags >> 1) & 0x03);
    const bool dup = (flags & 0x08) != 0;
    if (qos == 3 || (qos == 0 && dup)) return Status::Malformed;
    if (n < 2) return Status::Malformed;
    const std::size_t topic_length = read_u16(body);
    if (topic_length > n - 2) return Status::Malformed;
    const char* topic = reinterpret_cast<const char*>(body + 2);
    if (!is_valid_topic_name(topic, topic_length)) return Status::Malformed;
    std::size_t pos = 2 + topic_length;
    std::uint16_t packet_id = 0;
    if (qos > 0) {
        if (n - pos < 2) return Status::Malformed;
        packet_id = read_u16(body + pos);
        if (packet_id == 0) return Status::Malformed;
        pos += 2;
    }
    p->packet_id = packet_id;
    p->publish.topic = topic;
    p->publish.topic_length = topic_length;
    p->publish.payload = body + pos;
    p->publish.payload_length = n - pos;
    p->publish.qos = qos;
    p->publish.retain = (flags & 0x01) != 0;
    p->publish.dup = dup;
    return Status::Ok;
}

Status decode_body(PacketType type, std::uint8_t flags, const std::uint8_t* body, std::size_t n, Packet* p) noexcept {
    switch (type) {
        case PacketType::Connack:
            // Reserved bits of the acknowledge flags must be 0; a refusal
            // never reports a present session (spec 3.2.2.2).
            if (n != 2 || (body[0] & 0xFE) != 0) return Status::Malformed;
            if (body[1] != 0 && body[0] != 0) return Status::Malformed;
            p->session_present = body[0] != 0;
            p->connack_code = body[1];
            return Status::Ok;
        case PacketType::Publish: return decode_publish(flags, body, n, p);
        case PacketType::Puback:
        case PacketType::Pubrec:
        case PacketType::Pubrel:
        case PacketType::Pubcomp:
        case PacketType::Unsuback:
            if (n != 2) return Status::Malformed;
            p->packet_id = read_u16(body);
            return p->packet_id == 0 ? Status::Malformed : Status::Ok;
        case PacketType::Suback:
            if (n < 3) return Status::Malformed;
            p->packet_id = read_u16(body);
            if (p->packet_id == 0) return Status::Malformed;
            for (std::size_t i = 2; i < n; ++i) {
                if (body[i] > 0x02 && body[i] != kSubackFailure) return Status::Malformed;
            }
            p->suback_codes = body + 2;
            p->suback_count = n - 2;
            return Status::Ok;
        case PacketType::Subscribe:
        case PacketType::Unsubscribe:
            // Packet id plus at least one length-prefixed topic filter.
            if (n < 5) return Status::Malformed;
            p->packet_id = read_u16(body);
            return p->packet_id == 0 ? Status::Malformed : Status::Ok;
        case PacketType::Pingreq:
        case PacketType::Pingresp:
        case PacketType::Disconnect: return n == 0 ? Status::Ok : Status::Malformed;
        case PacketType::Connect: return Status::Ok;
    }
    return Status::UnknownType;
}

}  // namespace

const char* to_string(Status status) noexcept {
    switch (status) {
        case Status::Ok: return "ok";
        case Status::Incomplete: return "incomplete";
        case Status::MalformedLength: return "malformed_length";
        case Status::Malformed: return "malformed";
        case Status::UnknownType: return "unknown_type";
        case Status::BufferTooSmall: return "buffer_too_small";
        case Status::InvalidArgument: return "invalid_argument";
        case Status::NotConnected: return "not_connected";
        case Status::PendingFull: return "pending_full";
        case Status::TransportError: return "transport_error";
        case Status::ConnectionClosed: return "connection_closed";
        case Status::ResponseTimeout: return "response_timeout";
        case Status::PingTimeout: return "ping_timeout";
        case Status::ConnectionRefused: return "connection_refused";
        case Status::ProtocolError: return "protocol_error";
        case Status::SubscribeRefused: return "subscribe_refused";
    }
    return "unknown";
}

std::size_t encode_remaining_length(std::uint32_t value, std::uint8_t* out) noexcept {
    if (value > kMaxRemainingLength || out == nullptr) return 0;
    std::size_t n = 0;
    do {
        std::uint8_t digit = static_cast<std::uint8_t>(value % 128);
        value /= 128;
        if (value > 0) digit |= 0x80;
        out[n++] = digit;
    } while (value > 0);
    return n;
}

Status decode_fixed_header(const std::uint8_t* data, std::size_t length, std::uint8_t* first_byte,
                           std::uint32_t* remaining, std::size_t* header_size) noexcept {
    if (data == nullptr || length == 0) return Status::Incomplete;
    std::uint32_t value = 0;
    std::uint32_t multiplier = 1;
    for (std::size_t i = 0; i < 4; ++i) {
        if (1 + i >= length) return Status::Incomplete;
        const std::uint8_t digit = data[1 + i];
        value += (digit & 0x7Fu) * multiplier;
        if ((digit & 0x80) == 0) {
            if (first_byte != nullptr) *first_byte = data[0];
            if (remaining != nullptr) *remaining = value;
            if (header_size != nullptr) *header_size = 2 + i;
            return Status::Ok;
        }
        multiplier *= 128;
    }
    return Status::MalformedLength;
}

Status decode_packet(const std::uint8_t* data, std::size_t length, Packet* out, std::size_t* consumed) noexcept {
    if (data == nullptr || length == 0) return Status::Incomplete;
    const std::uint8_t type_number = static_cast<std::uint8_t>(data[0] >> 4);
    if (type_number == 0 || type_number == 15) return Status::UnknownType;
    const auto type = static_cast<PacketType>(type_number);
    const std::uint8_t flags = data[0] & 0x0F;
    if (type != PacketType::Publish && flags != required_flags(type)) return Status::Malformed;

    std::uint32_t remaining = 0;
    std::size_t header_size = 0;
    if (Status s = decode_fixed_header(data, length, nullptr, &remaining, &header_size); s != Status::Ok) {
        return s;
    }
    if (length - header_size < remaining) return Status::Incomplete;

    Packet packet;
    packet.type = type;
    packet.flags = flags;
    packet.body = data + header_size;
    packet.body_length = remaining;
    if (Status s = decode_body(type, flags, packet.body, remaining, &packet); s != Status::Ok) return s;
    if (out != nullptr) *out = packet;
    if (consumed != nullptr) *consumed = header_size + remaining;
    return Status::Ok;
}

Status encode_connect(const ConnectOptions& options, std::uint8_t* out, std::size_t capacity,
                      std::size_t* written) noexcept {
    const std::size_t id_length = string_length(options.client_id);
    const std::size_t user_length = string_length(options.username);
    const std::size_t password_length = string_length(options.password);
    if (options.client_id == nullptr || id_length > kMaxStringLength) return Status::InvalidArgument;
    if (id_length == 0 && !options.clean_session) return Status::InvalidArgument;  // spec 3.1.3.1
    if (user_length > kMaxStringLength || password_length > kMaxStringLength) return Status::InvalidArgument;
    if (options.password != nullptr && options.username == nullptr) return Status::InvalidArgument;

    std::uint8_t flags = options.clean_session ? kConnectFlagCleanSession : 0;
    std::size_t remaining = sizeof kProtocolName + 4 + 2 + id_length;
    std::size_t will_topic_length = 0;
    if (const Will* will = options.will; will != nullptr) {
        will_topic_length = string_length(will->topic);
        if (!is_valid_topic_name(will->topic, will_topic_length)) return Status::InvalidArgument;
        if (will->payload_length > kMaxStringLength) return Status::InvalidArgument;
        if (will->payload == nullptr && will->payload_length != 0) return Status::InvalidArgument;
        if (will->qos != QoS::AtMostOnce && will->qos != QoS::AtLeastOnce) return Status::InvalidArgument;
        flags |= kConnectFlagWill | static_cast<std::uint8_t>(static_cast<std::uint8_t>(will->qos) << 3);
        if (will->retain) flags |= kConnectFlagWillRetain;
        remaining += 2 + will_topic_length + 2 + will->payload_length;
    }
    if (options.username != nullptr) {
        flags |= kConnectFlagUserName;
        remaining += 2 + user_length;
    }
    if (options.password != nullptr) {
        flags |= kConnectFlagPassword;
        remaining += 2 + password_length;
    }

    Writer w(out, capacity);
    w.fixed_header(static_cast<std::uint8_t>(PacketType::Connect) << 4, static_cast<std::uint32_t>(remaining));
    w.bytes(kProtocolName, sizeof kProtocolName);
    w.byte(kProtocolLevel);
    w.byte(flags);
    w.u16(options.keep_alive_s);
    w.field(options.client_id, id_length);
    if (const Will* will = options.will; will != nullptr) {
        w.field(will->topic, will_topic_length);
        w.field(will->payload, will->payload_length);
    }
    if (options.username != nullptr) w.field(options.username, user_length);
    if (options.password != nullptr) w.field(options.password, password_length);
    return w.finish(written);
}

Status encode_publish(const char* topic, const std::uint8_t* payload, std::size_t payload_length, QoS qos, bool retain,
                      bool dup, std::uint16_t packet_id, std::uint8_t* out, std::size_t capacity,
                      std::size_t* written) noexcept {
    const std::size_t topic_length = string_length(topic);
    if (!is_valid_topic_name(topic, topic_length)) return Status::InvalidArgument;
    if (payload == nullptr && payload_length != 0) return Status::InvalidArgument;
    if (qos != QoS::AtMostOnce && qos != QoS::AtLeastOnce) return Status::InvalidArgument;
    const bool has_id = qos != QoS::AtMostOnce;
    if ((has_id && packet_id == 0) || (!has_id && dup)) return Status::InvalidArgument;
    const std::size_t header_part = 2 + topic_length + (has_id ? 2 : 0);
    if (payload_length > kMaxRemainingLength - header_part) return Status::InvalidArgument;

    const auto first =
        static_cast<std::uint8_t>((static_cast<std::uint8_t>(PacketType::Publish) << 4) | (dup ? 0x08 : 0) |
                                  (static_cast<std::uint8_t>(qos) << 1) | (retain ? 0x01 : 0));
    Writer w(out, capacity);
    w.fixed_header(first, static_cast<std::uint32_t>(header_part + payload_length));
    w.field(topic, topic_length);
    if (has_id) w.u16(packet_id);
    w.bytes(payload, payload_length);
    return w.finish(written);
}

Status encode_puback(std::uint16_t packet_id, std::uint8_t* out, std::size_t capacity, std::size_t* written) noexcept {
    if (packet_id == 0) return Status::InvalidArgument;
    Writer w(out, capacity);
    w.fixed_header(static_cast<std::uint8_t>(PacketType::Puback) << 4, 2);
    w.u16(packet_id);
    return w.finish(written);
}

Status encode_subscribe(std::uint16_t packet_id, const char* topic_filter, QoS max_qos, std::uint8_t* out,
                        std::size_t capacity, std::size_t* written) noexcept {
    const std::size_t filter_length = string_length(topic_filter);
    if (packet_id == 0 || filter_length == 0 || filter_length > kMaxStringLength) return Status::InvalidArgument;
    if (max_qos != QoS::AtMostOnce && max_qos != QoS::AtLeastOnce) return Status::InvalidArgument;
    Writer w(out, capacity);
    w.fixed_header(static_cast<std::uint8_t>((static_cast<std::uint8_t>(PacketType::Subscribe) << 4) | 0x02),
                   static_cast<std::uint32_t>(2 + 2 + filter_length + 1));
    w.u16(packet_id);
    w.field(topic_filter, filter_length);
    w.byte(static_cast<std::uint8_t>(max_qos));
    return w.finish(written);
}

Status encode_pingreq(std::uint8_t* out, std::size_t capacity, std::size_t* written) noexcept {
    Writer w(out, capacity);
    w.fixed_header(static_cast<std::uint8_t>(PacketType::Pingreq) << 4, 0);
    return w.finish(written);
}

Status encode_disconnect(std::uint8_t* out, std::size_t capacity, std::size_t* written) noexcept {
    Writer w(out, capacity);
    w.fixed_header(static_cast<std::uint8_t>(PacketType::Disconnect) << 4, 0);
    return w.finish(written);
}

}  // namespace fieldlink::mqtt

// MQTT 3.1.1 packet encoding and decoding (OASIS standard, 29 October 2014).
// Freestanding: callers pass every buffer; decoded packets point into them.
#pragma once

#include <cstddef>
#include <cstdint>

namespace fieldlink::mqtt {

// Result of every packet and session call.
enum class Status : std::uint8_t {
    Ok = 0,
    Incomplete,         // decoder: the bytes end before the packet does (need more input)
    MalformedLength,    // decoder: remaining length continues past its fourth byte
    Malformed,          // decoder: flags, lengths or fields break the spec
    UnknownType,        // decoder: packet type 0 or 15 (reserved)
    BufferTooSmall,     // encoder: the output buffer cannot hold the packet
    InvalidArgument,    // a field is out of range (empty topic, QoS > 1, packet id 0, too long)
    NotConnected,       // session: no usable connection (never started, or already failed)
    PendingFull,        // session: every PUBACK slot is taken; wait for PUBACKs
    TransportError,     // session: the transport failed to send or receive
    ConnectionClosed,   // session: the broker closed the connection
    ResponseTimeout,    // session: no CONNACK or SUBACK within the configured time
    PingTimeout,        // session: no PINGRESP within the keep-alive period: connection dead
    ConnectionRefused,  // session: CONNACK carried a non-zero return code
    ProtocolError,      // session: the broker sent a packet that is invalid at this point
    SubscribeRefused,   // the broker answered a SUBSCRIBE with the failure code 0x80
};

// Stable name of a status ("ping_timeout", ...), for logs.
const char* to_string(Status status) noexcept;

enum class PacketType : std::uint8_t {
    Connect = 1,
    Connack = 2,
    Publish = 3,
    Puback = 4,
    Pubrec = 5,
    Pubrel = 6,
    Pubcomp = 7,
    Subscribe = 8,
    Suback = 9,
    Unsubscribe = 10,
    Unsuback = 11,
    Pingreq = 12,
    Pingresp = 13,
    Disconnect = 14,
};

enum class QoS : std::uint8_t {
    AtMostOnce = 0,
    AtLeastOnce = 1,
};

// Largest value the four-byte remaining-length field can carry.
inline constexpr std::uint32_t kMaxRemainingLength = 268'435'455;
// Fixed header: one type/flags byte plus up to four remaining-length bytes.
inline constexpr std::size_t kMaxFixedHeaderSize = 5;
inline constexpr std::size_t kMaxStringLength = 65'535;

inline constexpr std::uint8_t kSubackFailure = 0x80;

// CONNACK return codes (spec 3.2.2.3).
enum class ConnackCode : std::uint8_t {
    Accepted = 0,
    UnacceptableProtocolVersion = 1,
    IdentifierRejected = 2,
    ServerUnavailable = 3,
    BadUserNameOrPassword = 4,
    NotAuthorized = 5,
};

struct Will {
    const char* topic = nullptr;  // NUL-terminated, non-empty
    const std::uint8_t* payload = nullptr;
    std::size_t payload_length = 0;
    QoS qos = QoS::AtMostOnce;
    bool retain = false;
};

struct ConnectOptions {
    const char* client_id = nullptr;  // NUL-terminated; empty only with clean_session
    std::uint16_t keep_alive_s = 0;   // 0 disables keep-alive
    bool clean_session = true;
    const Will* will = nullptr;      // optional last will
    const char* username = nullptr;  // optional
    const char* password = nullptr;  // optional; needs a username (spec 3.1.2.9)
};

struct PublishView {
    const char* topic = nullptr;  // not NUL-terminated: use topic_length
    std::size_t topic_length = 0;
    const std::uint8_t* payload = nullptr;
    std::size_t payload_length = 0;
    std::uint8_t qos = 0;  // 0, 1 or 2
    bool retain = false;
    bool dup = false;
};

// One decoded packet. Pointers refer into the decoder's input.
struct Packet {
    PacketType type = PacketType::Connect;
    std::uint8_t flags = 0;              // low nibble of the first byte
    const std::uint8_t* body = nullptr;  // variable header + payload
    std::size_t body_length = 0;
    std::uint16_t packet_id = 0;                 // PUBLISH with QoS > 0, PUBACK/REC/REL/COMP, (UN)SUBSCRIBE, (UN)SUBACK
    bool session_present = false;                // CONNACK
    std::uint8_t connack_code = 0;               // CONNACK return code
    PublishView publish;                         // PUBLISH
    const std::uint8_t* suback_codes = nullptr;  // SUBACK: one return code per topic filter
    std::size_t suback_count = 0;
};

// Writes the remaining-length varint; returns its size (1..4), or 0 when the
// value is above kMaxRemainingLength. `out` must hold 4 bytes.
std::size_t encode_remaining_length(std::uint32_t value, std::uint8_t* out) noexcept;

// Reads the fixed header at data[0..length): type byte and remaining length.
// Ok sets *first_byte, *remaining and *header_size. Incomplete when the
// header is cut short, MalformedLength for a fifth length byte.
Status decode_fixed_header(const std::uint8_t* data, std::size_t length, std::uint8_t* first_byte,
                           std::uint32_t* remaining, std::size_t* header_size) noexcept;

// Decodes the one packet that starts at data[0]. Total: any input gives Ok
// (and *consumed = its size, which may be less than length) or an error, and
// never reads outside data[0..length). Bodies are decoded for the packets a
// broker sends (CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK,
// UNSUBACK, PINGRESP); for the others the fixed header is checked and the body
// is passed through (packet_id is set for SUBSCRIBE and UNSUBSCRIBE).
Status decode_packet(const std::uint8_t* data, std::size_t length, Packet* out, std::size_t* consumed) noexcept;

// Encoders write one whole packet into out[0..capacity) and set *written.
// They fail with InvalidArgument or BufferTooSmall and then write nothing useful.
Status encode_connect(const ConnectOptions& options, std::uint8_t* out, std::size_t capacity,
                      std::size_t* written) noexcept;
// packet_id must be non-zero for QoS 1 and is ignored for QoS 0.
Status encode_publish(const char* topic, const std::uint8_t* payload, std::size_t payload_length, QoS qos, bool retain,
                      bool dup, std::uint16_t packet_id, std::uint8_t* out, std::size_t capacity,
                      std::size_t* written) noexcept;
Status encode_puback(std::uint16_t packet_id, std::uint8_t* out, std::size_t capacity, std::size_t* written) noexcept;
// One topic filter per SUBSCRIBE, which is all the reader needs.
Status encode_subscribe(std::uint16_t packet_id, const char* topic_filter, QoS max_qos, std::uint8_t* out,
                        std::size_t capacity, std::size_t* written) noexcept;
Status encode_pingreq(std::uint8_t* out, std::size_t capacity, std::size_t* written) noexcept;
Status encode_disconnect(std::uint8_t* out, std::size_t capacity, std::size_t* written) noexcept;

}  // namespace fieldlink::mqtt

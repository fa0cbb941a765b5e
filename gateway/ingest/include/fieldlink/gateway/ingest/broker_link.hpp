// The saver's connection to the local broker, behind a seam: the real one is
// PahoBrokerLink; tests use a fake that records what was published.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>

namespace fieldlink::gateway {

// What the writer thread needs: fire-and-forget publishing of commit acks.
class AckPublisher {
public:
    // The commit ack of one device incarnation: QoS 0, not retained. Must not
    // block on the broker (the writer thread calls it). A newer ack of the same
    // (topic, incarnation) may replace one not yet sent; acks of different
    // incarnations never replace each other. False when the ack was not
    // accepted; acks are best effort: the device re-sends and a later commit
    // acks again.
    virtual bool publish_ack(const std::string& topic, std::uint64_t incarnation,
                             std::span<const std::uint8_t> payload) = 0;

protected:
    ~AckPublisher() = default;
};

class BrokerLink : public AckPublisher {
public:
    // Called on the link's own thread for every message on the subscribed
    // topics. It may block: that stops reading from the broker (backpressure).
    using MessageHandler = std::function<void(std::string_view topic, std::span<const std::uint8_t> payload)>;

    virtual ~BrokerLink() = default;

    // Set before start().
    virtual void set_message_handler(MessageHandler handler) = 0;
    // Connects in the background (retrying until it succeeds) and subscribes
    // on every (re)connect. Returns at once.
    virtual void start() = 0;
    // Disconnects cleanly. Idempotent.
    virtual void stop() = 0;
};

}  // namespace fieldlink::gateway

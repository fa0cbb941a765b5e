#include "fieldlink/gateway/ingest/ack_outbox.hpp"

namespace fieldlink::gateway {

bool AckOutbox::put(const std::string& topic, std::uint64_t incarnation, std::span<const std::uint8_t> payload) {
    {
        std::lock_guard lock(mutex_);
        if (closed_) return false;
        acks_.insert_or_assign(std::pair(topic, incarnation),
                               std::vector<std::uint8_t>(payload.begin(), payload.end()));
    }
    cv_.notify_one();
    return true;
}

std::vector<OutgoingAck> AckOutbox::take(const std::function<bool()>& may_send) {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return closed_ || (!acks_.empty() && may_send()); });
    std::vector<OutgoingAck> taken;
    if (!may_send()) return taken;  // closed while the link is down
    taken.reserve(acks_.size());
    for (auto& [key, payload] : acks_) taken.push_back(OutgoingAck{key.first, key.second, std::move(payload)});
    acks_.clear();
    return taken;
}

void AckOutbox::give_back(std::vector<OutgoingAck> acks) {
    {
        std::lock_guard lock(mutex_);
        for (OutgoingAck& ack : acks) {
            acks_.try_emplace(std::pair(std::move(ack.topic), ack.incarnation), std::move(ack.payload));
        }
    }
    cv_.notify_one();
}

void AckOutbox::notify() {
    { std::lock_guard lock(mutex_); }  // orders the caller's flag change before the waiter's re-check
    cv_.notify_all();
}

void AckOutbox::close() {
    {
        std::lock_guard lock(mutex_);
        closed_ = true;
    }
    cv_.notify_all();
}

std::size_t AckOutbox::size() const {
    std::lock_guard lock(mutex_);
    return acks_.size();
}

}  // namespace fieldlink::gateway

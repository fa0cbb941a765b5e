// The one interface the forwarder drives, whatever the upstream is (an MQTT
// broker or cluster, PostgreSQL, ...): one implementation per folder under
// gateway/forward/, and a fake in the tests. Adding a kind touches no forwarder code.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "fieldlink/gateway/store/forward_store.hpp"

namespace fieldlink::gateway {

// A failure talking to an upstream; what() carries the cause (the broker's
// return code, PostgreSQL's message and SQLSTATE, ...). `retryable` is false
// for what no retry can fix (a refused login, a missing permission) — the
// forwarder still retries, with its longest backoff, and logs it as an error.
class UpstreamError : public std::runtime_error {
public:
    UpstreamError(const std::string& what, bool retryable = true) : std::runtime_error(what), retryable_(retryable) {}
    bool retryable() const noexcept { return retryable_; }

private:
    bool retryable_;
};

// Rows read together from the database, ascending ids, possibly of several
// devices. The upstream confirms a chunk as a whole.
struct Chunk {
    std::uint64_t sequence = 0;  // the forwarder's own numbering, for its bookkeeping
    std::vector<ForwardRow> rows;
};

// How a chunk ended. Confirmed means durably stored upstream: every message
// PUBACKed by the broker, or the COMMIT returned.
struct ChunkResult {
    bool confirmed = false;
    std::uint64_t bytes_sent = 0;  // payload bytes put on the wire (after compression)
    std::uint64_t batches = 0;     // messages or statements it took
    std::string error;             // why not confirmed
};

class Upstream {
public:
    using Done = std::function<void(ChunkResult)>;

    virtual ~Upstream() = default;

    // The [[upstream]] name, for logs and the cursor table.
    virtual const std::string& name() const = 0;

    // Connects, or reconnects after a failure. Blocks for at most the
    // upstream's connect timeout. Throws UpstreamError with the cause.
    virtual void connect() = 0;
    // False after a failure was seen (a lost connection, a failed chunk) until connect() succeeds again.
    virtual bool connected() const = 0;

    // Takes a chunk for sending and calls `done` exactly once: when the
    // upstream confirmed it, or when it failed (then nothing about it may be
    // assumed stored; the forwarder sends it again, and every row carries its
    // key so the receiver can drop the duplicate). `done` may run on another
    // thread, or inside send() itself. Blocks only for flow control.
    // Precondition: connected(), and fewer than window() chunks outstanding.
    virtual void send(Chunk chunk, Done done) = 0;

    // Chunks that may be outstanding (sent, not yet done) at once.
    virtual std::size_t window() const = 0;

    // Ends the connection; outstanding chunks end with confirmed = false
    // unless already done. Idempotent, never throws.
    virtual void close() noexcept = 0;
};

}  // namespace fieldlink::gateway

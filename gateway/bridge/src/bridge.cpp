// One line's loop: poll on the line, the broker connection and the stop fd,
// with the link session's retry timer as the timeout.
#include "fieldlink/gateway/bridge/bridge.hpp"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <optional>
#include <random>

#include "fieldlink/link/session.hpp"

namespace fieldlink::gateway::bridge {
namespace {

std::uint32_t now_ms() {
    const auto since = std::chrono::steady_clock::now().time_since_epoch();
    return static_cast<std::uint32_t>(std::chrono::duration_cast<std::chrono::milliseconds>(since).count());
}

std::string errno_text(int error) { return fmt::format("{} (errno {})", std::strerror(error), error); }

// Writes everything to a non-blocking fd, waiting up to timeout_ms for room
// each time it is full. False with errno set on failure.
bool write_all(int fd, const std::uint8_t* data, std::size_t length, int timeout_ms) {
    while (length > 0) {
        const ssize_t n = ::write(fd, data, length);
        if (n > 0) {
            data += n;
            length -= static_cast<std::size_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            pollfd p{fd, POLLOUT, 0};
            const int ready = ::poll(&p, 1, timeout_ms);
            if (ready == 0) errno = ETIMEDOUT;
            if (ready <= 0) return false;
            continue;
        }
        if (n == 0) errno = EIO;
        return false;
    }
    return true;
}

// The session's frames go to the line; a failed write is remembered so the
// loop can tell a line that went away from a slow one.
class LineOutput final : public link::LinkOutput {
public:
    bool write(const std::uint8_t* data, std::size_t length) override {
        if (fd < 0) return false;
        if (write_all(fd, data, length, 1000)) return true;
        error = errno;
        return false;
    }
    int fd = -1;
    int error = 0;
};

class LineBridge {
public:
    LineBridge(const LineSpec& line, const BridgeConfig& config, int stop_fd, Logger& log)
        : line_(line), config_(config), stop_fd_(stop_fd), log_(log) {}

    void run() {
        std::uint32_t backoff = config_.backoff_min_ms;
        std::string last_error;
        for (;;) {
            try {
                line_fd_ = open_line(line_, config_.connect_timeout_ms);
            } catch (const std::exception& e) {
                // The first failure of a run is a warning; the same one again is noise.
                if (e.what() != last_error) {
                    log_.warn("{}; retrying every {} ms at most", e.what(), config_.backoff_max_ms);
                    last_error = e.what();
                } else {
                    log_.debug("{}; retrying in {} ms", e.what(), backoff);
                }
                if (wait_or_stop(backoff)) break;
                backoff = std::min(backoff * 2, config_.backoff_max_ms);
                continue;
            }
            log_.info("line {}: connected{}", line_.name,
                      line_.kind == LineSpec::Kind::Tty ? fmt::format(" at {} baud", line_.baud) : std::string());
            backoff = config_.backoff_min_ms;
            last_error.clear();
            const std::optional<std::string> lost = serve();
            close_broker();
            line_fd_.reset();
            if (!lost) break;
            log_.warn("line {}: lost: {}; reopening", line_.name, *lost);
            if (wait_or_stop(backoff)) break;
        }
        log_.info("line {}: stopped", line_.name);
    }

private:
    // True when the stop fd fired within `ms`.
    bool wait_or_stop(std::uint32_t ms) const {
        pollfd p{stop_fd_, POLLIN, 0};
        return ::poll(&p, 1, static_cast<int>(ms)) > 0;
    }

    // Runs the link session on an open line. nullopt: stop requested; else why the line was lost.
    std::optional<std::string> serve() {
        output_.fd = line_fd_.get();
        output_.error = 0;
        link::SessionConfig session_config;
        session_config.retry_ms = config_.link_retry_ms;
        session_config.nonce = static_cast<std::uint16_t>(std::random_device{}());
        session_.emplace(output_, session_config);
        session_->open(now_ms());
        broker_backoff_ = config_.backoff_min_ms;
        reopen_at_.reset();

        for (;;) {
            int timeout = -1;
            if (session_->state() == link::SessionState::Opening) timeout = static_cast<int>(config_.link_retry_ms);
            if (reopen_at_) {
                const auto left = static_cast<std::int32_t>(*reopen_at_ - now_ms());
                timeout = std::max(0, left);
            }
            pollfd fds[3] = {{line_fd_.get(), POLLIN, 0}, {stop_fd_, POLLIN, 0}, {broker_fd_.get(), POLLIN, 0}};
            const int ready = ::poll(fds, 3, timeout);
            if (ready < 0 && errno != EINTR) return fmt::format("poll failed: {}", errno_text(errno));
            if (ready > 0 && fds[1].revents != 0) return std::nullopt;
            std::uint32_t now = now_ms();
            if (reopen_at_ && static_cast<std::int32_t>(now - *reopen_at_) >= 0) {
                reopen_at_.reset();
                session_->open(now);
            }
            session_->poll(now);

            if (ready > 0 && (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
                const ssize_t n = ::read(line_fd_.get(), buffer_, sizeof(buffer_));
                if (n == 0) return std::string("closed by the other end");
                if (n < 0 && errno != EAGAIN && errno != EINTR)
                    return fmt::format("read failed: {}", errno_text(errno));
                std::size_t offset = 0;
                while (n > 0 && offset < static_cast<std::size_t>(n)) {
                    std::size_t consumed = 0;
                    const link::SessionEvent event =
                        session_->receive(buffer_ + offset, static_cast<std::size_t>(n) - offset, &consumed, now);
                    offset += consumed;
                    handle(event, now);
                    now = now_ms();
                }
            }
            if (broker_fd_ && ready > 0 && (fds[2].revents & (POLLIN | POLLHUP | POLLERR)) != 0) from_broker(now);
            if (output_.error != 0) {
                const int error = output_.error;
                output_.error = 0;
                // A line that is gone; a slow one (timeout) just costs a reset.
                if (error != ETIMEDOUT && error != EAGAIN) return fmt::format("write failed: {}", errno_text(error));
                log_.warn("line {}: write stalled ({}); resetting the link", line_.name, errno_text(error));
                close_broker();
            }
        }
    }

    void handle(const link::SessionEvent& event, std::uint32_t now) {
        switch (event.kind) {
            case link::SessionEvent::Kind::None: return;
            case link::SessionEvent::Kind::Broken:
                log_.info("line {}: link broken ({}); closing the broker connection", line_.name,
                          link::to_string(event.reason));
                close_broker();
                return;
            case link::SessionEvent::Kind::Opened:
                if (broker_fd_) {
                    log_.info("line {}: device reset the link ({}); closing the broker connection", line_.name,
                              link::to_string(event.reason));
                    close_broker();
                }
                open_broker(now, event.reason);
                return;
            case link::SessionEvent::Kind::Data:
                if (!broker_fd_) return;  // only while a failed broker connect is being retried
                if (!write_all(broker_fd_.get(), event.data, event.length, 1000)) {
                    log_.warn("line {}: broker write failed: {}; resetting the link", line_.name, errno_text(errno));
                    close_broker();
                    session_->open(now);
                }
                return;
        }
    }

    void open_broker(std::uint32_t now, link::LinkStatus reason) {
        try {
            broker_fd_ = connect_tcp(config_.broker_host, config_.broker_port, config_.connect_timeout_ms,
                                     fmt::format("line {}: broker", line_.name));
            log_.info("line {}: link open ({}), broker connection open", line_.name,
                      reason == link::LinkStatus::Ok ? "our reset" : link::to_string(reason));
            broker_backoff_ = config_.backoff_min_ms;
        } catch (const std::exception& e) {
            // Keep the link closed meanwhile, so the device sees no connection at all.
            log_.warn("{}; resetting the link in {} ms", e.what(), broker_backoff_);
            session_->close();
            reopen_at_ = now + broker_backoff_;
            broker_backoff_ = std::min(broker_backoff_ * 2, config_.backoff_max_ms);
        }
    }

    void from_broker(std::uint32_t now) {
        const ssize_t n = ::read(broker_fd_.get(), buffer_, sizeof(buffer_));
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
        if (n <= 0) {
            log_.info("line {}: broker closed the connection{}; resetting the link", line_.name,
                      n < 0 ? fmt::format(" ({})", errno_text(errno)) : std::string());
            close_broker();
            session_->open(now);
            return;
        }
        const link::LinkStatus status = session_->send(buffer_, static_cast<std::size_t>(n));
        if (status != link::LinkStatus::Ok) {
            // OutputFailed: the session is Opening again and resets at its next poll.
            log_.info("line {}: cannot send to the device ({}); closing the broker connection", line_.name,
                      link::to_string(status));
            close_broker();
        }
    }

    void close_broker() {
        if (!broker_fd_) return;
        broker_fd_.reset();
        log_.debug("line {}: broker connection closed", line_.name);
    }

    const LineSpec& line_;
    const BridgeConfig& config_;
    const int stop_fd_;
    Logger& log_;
    UniqueFd line_fd_;
    UniqueFd broker_fd_;
    LineOutput output_;
    std::optional<link::Session> session_;
    std::optional<std::uint32_t> reopen_at_;
    std::uint32_t broker_backoff_ = 0;
    std::uint8_t buffer_[4096] = {};
};

}  // namespace

void run_line(const LineSpec& line, const BridgeConfig& config, int stop_fd, Logger& log) noexcept {
    try {
        LineBridge bridge(line, config, stop_fd, log);
        bridge.run();
    } catch (const std::exception& e) {
        log.error("line {}: stopped by an unexpected error: {}", line.name, e.what());
    }
}

}  // namespace fieldlink::gateway::bridge

// The gateway's side of systemd's service protocol (Type=notify): READY once
// the database is open and the broker subscribed, STOPPING on shutdown, and
// watchdog pings (WatchdogSec=). Built on libsystemd's sd_notify() when the
// build found it (FIELDLINK_HAVE_LIBSYSTEMD); without it, or when not started
// by systemd (no NOTIFY_SOCKET), every call does nothing.
#pragma once

#include <chrono>
#include <string_view>

namespace fieldlink::gateway {

class ServiceManager {
public:
    ServiceManager();

    // How often to ping: half of WatchdogSec=, zero when no watchdog is set
    // for this process.
    std::chrono::milliseconds watchdog_interval() const noexcept { return watchdog_interval_; }

    void ready(std::string_view status) const;
    void status(std::string_view status) const;
    void stopping(std::string_view status) const;
    void watchdog() const;

private:
    void notify(std::string_view message) const;

    bool notifying_ = false;  // built with libsystemd and started with NOTIFY_SOCKET
    std::chrono::milliseconds watchdog_interval_{0};
};

}  // namespace fieldlink::gateway

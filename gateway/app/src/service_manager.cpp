// sd_notify(3) messages; see service_manager.hpp.
#include "fieldlink/gateway/app/service_manager.hpp"

#include <cstdint>
#include <cstdlib>
#include <string>

#if FIELDLINK_HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

namespace fieldlink::gateway {

ServiceManager::ServiceManager() {
#if FIELDLINK_HAVE_LIBSYSTEMD
    const char* socket = std::getenv("NOTIFY_SOCKET");
    notifying_ = socket != nullptr && *socket != '\0';
    std::uint64_t usec = 0;
    // > 0 only when WATCHDOG_USEC is set and WATCHDOG_PID (if set) is this process.
    if (notifying_ && sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
        watchdog_interval_ = std::chrono::milliseconds(usec / 2000 > 0 ? usec / 2000 : 1);
    }
#endif
}

void ServiceManager::notify([[maybe_unused]] std::string_view message) const {
#if FIELDLINK_HAVE_LIBSYSTEMD
    if (!notifying_) return;
    // A lost notification is not worth failing for: systemd then times the
    // start out or the watchdog fires, and restarts the service.
    (void)sd_notify(0, std::string(message).c_str());
#endif
}

void ServiceManager::ready(std::string_view status) const { notify("READY=1\nSTATUS=" + std::string(status)); }

void ServiceManager::status(std::string_view status) const { notify("STATUS=" + std::string(status)); }

void ServiceManager::stopping(std::string_view status) const { notify("STOPPING=1\nSTATUS=" + std::string(status)); }

void ServiceManager::watchdog() const { notify("WATCHDOG=1"); }

}  // namespace fieldlink::gateway

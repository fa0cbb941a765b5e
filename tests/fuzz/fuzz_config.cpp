// libFuzzer target for the gateway's TOML configuration reader:
// fieldlink::gateway::apply_toml(text, source, config), which reads the file
// named by --config (toml++ underneath).
//
// Invariants: apply_toml returns or throws ConfigError, never anything else
// and never crashes; a ConfigError leaves the Config as it was (all or
// nothing) and says where (it starts with the source name); when it returns,
// to_toml() of the result, read by apply_toml into a default Config, gives an
// equal Config (what --print-config prints reads back unchanged).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>
#include <typeinfo>

#include "fieldlink/gateway/app/config.hpp"

namespace gw = fieldlink::gateway;

namespace {

[[noreturn]] void violated(const char* what, int line, const std::string& detail = {}) {
    std::fprintf(stderr, "fuzz_config: invariant violated (line %d): %s\n%s\n", line, what, detail.c_str());
    std::abort();
}
#define FUZZ_CHECK(cond) ((cond) ? (void)0 : violated(#cond, __LINE__))

const std::string kSource = "fuzz.toml";

// A Config unlike the defaults in every field, so that "unchanged" means something.
gw::Config starting_config() {
    gw::Config c;
    c.broker = "tcp://broker.example:1883";
    c.client_id = "fuzz-gateway";
    c.keep_alive_s = 7;
    c.db_path = "/tmp/fuzz.db";
    c.synchronous = gw::Synchronous::Normal;
    c.busy_timeout_ms = 1;
    c.batch_rows = 2;
    c.batch_delay_ms = 3;
    c.queue = 4;
    c.log_level = gw::LogLevel::Debug;
    c.stats_interval_s = 5;
    return c;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    static const gw::Config start = starting_config();
    gw::Config config = start;
    try {
        gw::apply_toml(text, kSource, config);
    } catch (const gw::ConfigError& e) {
        FUZZ_CHECK(config == start);  // all or nothing
        FUZZ_CHECK(std::string_view(e.what()).substr(0, kSource.size()) == kSource);
        return 0;
    } catch (const std::exception& e) {
        violated("apply_toml threw something other than ConfigError", __LINE__,
                 std::string(typeid(e).name()) + ": " + e.what());
    } catch (...) {
        violated("apply_toml threw a non-std::exception", __LINE__);
    }

    // Accepted: what --print-config would print reads back to the same Config.
    const std::string printed = gw::to_toml(config);
    gw::Config again;
    try {
        gw::apply_toml(printed, "printed.toml", again);
    } catch (const std::exception& e) {
        violated("to_toml() output is not accepted by apply_toml", __LINE__, printed + "\n" + e.what());
    }
    if (!(again == config)) violated("to_toml() does not read back to the same Config", __LINE__, printed);
    return 0;
}

// fieldlink dead-letters: list, show (hex dump) and replay rejected payloads.
//
// Replay publishes the stored payload, unchanged, to its original topic on the
// gateway's broker (QoS 1), as the device would have, so a gateway that was
// fixed meanwhile ingests it. The schema has no column to mark a dead letter as
// replayed and the command never writes the database, so the dead letter stays
// (retention removes it after [retention] dead_letters_max_age_s). A replayed
// batch already stored is harmless (readings are unique by key: duplicates);
// one that fails again becomes a new dead letter.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <mqtt/async_client.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cli.hpp"
#include "database.hpp"
#include "fieldlink/gateway/ingest/broker_uri.hpp"
#include "fieldlink/gateway/ingest/device_message_decoder.hpp"
#include "output.hpp"
#include "table.hpp"
#include "time_text.hpp"

namespace fieldlink::cli {
namespace {

using gateway::sqlite::Statement;

struct Options {
    bool json = false;
    std::optional<std::int64_t> show;
    std::vector<std::int64_t> replay;
    bool replay_all = false;
    std::string error;  // only this error name
    std::string since;
    std::int64_t limit = 0;
    std::string broker;
    int timeout_s = 10;
};

struct Letter {
    std::int64_t id = 0;
    std::int64_t received_unix_ms = 0;
    std::string topic;
    std::string error;
    std::string payload;  // bytes
};

constexpr const char* kColumns = "id, received_unix_ms, topic, error, payload";

Letter read_letter(const Statement& s) {
    // A BLOB read through sqlite3_column_text comes back byte for byte (no conversion in a UTF-8 database).
    return {s.column_int64(0), s.column_int64(1), s.column_text(2), s.column_text(3), s.column_text(4)};
}

std::string hex_dump(const std::string& bytes) {
    std::string out;
    for (std::size_t offset = 0; offset < bytes.size(); offset += 16) {
        out += fmt::format("{:08x}  ", offset);
        std::string ascii;
        for (std::size_t i = 0; i < 16; ++i) {
            if (offset + i < bytes.size()) {
                const auto b = static_cast<unsigned char>(bytes[offset + i]);
                out += fmt::format("{:02x} ", b);
                ascii += b >= 0x20 && b < 0x7f ? static_cast<char>(b) : '.';
            } else {
                out += "   ";
            }
            if (i == 7) out += ' ';
        }
        out += fmt::format(" |{}|\n", ascii);
    }
    return out;
}

std::string hex(const std::string& bytes) {
    std::string out;
    out.reserve(bytes.size() * 2);
    for (const char c : bytes) out += fmt::format("{:02x}", static_cast<unsigned char>(c));
    return out;
}

std::optional<Letter> find_letter(ReadOnlyDatabase& database, std::int64_t id) {
    Statement s = database.db().prepare(fmt::format("SELECT {} FROM dead_letters WHERE id = ?1", kColumns));
    s.bind_int64(1, id);
    if (!s.step()) return std::nullopt;
    return read_letter(s);
}

// The selection of list and --replay --all, a page at a time (letters are at most 16 KiB each).
template <typename Each>
void each_letter(ReadOnlyDatabase& database, const Options& o, Each each) {
    std::string where = "id > ?1";
    if (!o.error.empty()) where += " AND error = ?2";
    std::int64_t since = INT64_MIN;
    if (!o.since.empty()) {
        const auto t = parse_time(o.since, now_unix_ms());
        if (!t) throw CliError(kExitUsage, fmt::format("--since: must be {}, got \"{}\"", kTimeExpected, o.since));
        since = *t;
    }
    where += " AND received_unix_ms >= ?3";
    Statement s = database.db().prepare(
        fmt::format("SELECT {} FROM dead_letters WHERE {} ORDER BY id LIMIT 500", kColumns, where));
    std::int64_t after = 0;
    std::int64_t n = 0;
    for (;;) {
        s.reset();
        s.bind_int64(1, after).bind_int64(3, since);
        if (!o.error.empty()) s.bind_text(2, o.error);
        int in_page = 0;
        while (s.step()) {
            if (o.limit > 0 && n >= o.limit) return;
            const Letter letter = read_letter(s);
            after = letter.id;
            ++in_page;
            ++n;
            each(letter);
        }
        s.reset();
        if (in_page < 500) return;
    }
}

class Publisher {
public:
    Publisher(const std::string& uri, int timeout_s)
        : uri_(uri),
          timeout_(std::chrono::seconds(timeout_s)),
          client_(uri, fmt::format("fieldlink-replay-{}", ::getpid()),
                  static_cast<mqtt::iclient_persistence*>(nullptr)) {
        if (!gateway::parse_broker_uri(uri)) {
            throw CliError(kExitUsage,
                           fmt::format("--broker: must be {}, got \"{}\"", gateway::kBrokerUriExpected, uri));
        }
        auto options = mqtt::connect_options_builder()
                           .mqtt_version(MQTTVERSION_3_1_1)
                           .clean_session(true)
                           .connect_timeout(timeout_)
                           .finalize();
        try {
            if (!client_.connect(options)->wait_for(timeout_)) throw CliError(kExitFailure, "timed out");
        } catch (const mqtt::exception& e) {
            throw CliError(kExitFailure, fmt::format("cannot connect to broker {}: {}", uri, e.what()));
        } catch (const CliError&) {
            throw CliError(kExitFailure,
                           fmt::format("cannot connect to broker {}: timed out after {} s", uri, timeout_.count()));
        }
    }
    ~Publisher() {
        try {
            if (client_.is_connected()) client_.disconnect()->wait_for(timeout_);
        } catch (const mqtt::exception&) {
            // Leaving anyway; every publish was already confirmed.
        }
    }
    Publisher(const Publisher&) = delete;
    Publisher& operator=(const Publisher&) = delete;

    // Returns once the broker confirmed it (PUBACK).
    void publish(const Letter& letter) {
        try {
            auto token = client_.publish(letter.topic, letter.payload.data(), letter.payload.size(), 1, false);
            if (!token->wait_for(timeout_)) {
                throw CliError(kExitFailure, fmt::format("dead letter {}: no PUBACK from {} within {} s", letter.id,
                                                         uri_, timeout_.count()));
            }
        } catch (const mqtt::exception& e) {
            throw CliError(kExitFailure,
                           fmt::format("dead letter {}: publish to {} failed: {}", letter.id, uri_, e.what()));
        }
    }

private:
    std::string uri_;
    std::chrono::seconds timeout_;
    mqtt::async_client client_;
};

void run(const Globals& globals, const Options& o) {
    const LoadedConfig loaded = load_config(globals);
    ReadOnlyDatabase database(globals.db.empty() ? loaded.config.db_path : globals.db, globals.busy_timeout_ms);
    if (o.show) {
        const auto letter = find_letter(database, *o.show);
        if (!letter) throw CliError(kExitFailure, fmt::format("no dead letter with id {}", *o.show));
        if (o.json) {
            std::fputs(fmt::format("{{\"id\": {}, \"received_unix_ms\": {}, \"time\": \"{}\", \"topic\": {}, "
                                   "\"error\": {}, \"size\": {}, \"payload_hex\": \"{}\"}}\n",
                                   letter->id, letter->received_unix_ms, format_time(letter->received_unix_ms),
                                   json_string(letter->topic), json_string(letter->error), letter->payload.size(),
                                   hex(letter->payload))
                           .c_str(),
                       stdout);
        } else {
            std::fputs(
                fmt::format("id       {}\ntime     {}\ntopic    {}\nerror    {}\nsize     {} bytes{}\n\n{}", letter->id,
                            format_time(letter->received_unix_ms), letter->topic, letter->error, letter->payload.size(),
                            letter->payload.size() >= gateway::kMaxDeadLetterPayload
                                ? " (the gateway keeps at most this much: the payload may have been longer)"
                                : "",
                            hex_dump(letter->payload))
                    .c_str(),
                stdout);
        }
        return;
    }
    if (!o.replay.empty() || o.replay_all) {
        std::vector<Letter> chosen;
        if (!o.replay.empty()) {
            for (const std::int64_t id : o.replay) {
                auto letter = find_letter(database, id);
                if (!letter) throw CliError(kExitFailure, fmt::format("no dead letter with id {}", id));
                chosen.push_back(std::move(*letter));
            }
        }
        const std::string broker = o.broker.empty() ? loaded.config.broker : o.broker;
        Publisher publisher(broker, o.timeout_s);
        std::int64_t n = 0;
        auto replay = [&](const Letter& letter) {
            publisher.publish(letter);
            std::printf("replayed %lld (%s, %zu bytes) to %s\n", static_cast<long long>(letter.id),
                        letter.error.c_str(), letter.payload.size(), letter.topic.c_str());
            ++n;
        };
        if (o.replay_all) {
            each_letter(database, o, replay);
        } else {
            for (const Letter& letter : chosen) replay(letter);
        }
        std::printf("%lld dead letter(s) republished on %s; they stay in the database\n", static_cast<long long>(n),
                    broker.c_str());
        return;
    }
    if (o.json) {
        std::string out = "[";
        bool first = true;
        each_letter(database, o, [&](const Letter& l) {
            out += fmt::format(
                "{}\n  {{\"id\": {}, \"received_unix_ms\": {}, \"time\": \"{}\", \"topic\": {}, "
                "\"error\": {}, \"size\": {}}}",
                first ? "" : ",", l.id, l.received_unix_ms, format_time(l.received_unix_ms), json_string(l.topic),
                json_string(l.error), l.payload.size());
            first = false;
            if (out.size() > 65536) {
                std::fputs(out.c_str(), stdout);
                out.clear();
            }
        });
        out += first ? "]\n" : "\n]\n";
        std::fputs(out.c_str(), stdout);
        return;
    }
    std::printf("%-8s  %-24s  %-40s  %-16s  %s\n", "ID", "TIME (UTC)", "TOPIC", "ERROR", "SIZE");
    std::int64_t n = 0;
    each_letter(database, o, [&](const Letter& l) {
        std::printf("%8lld  %-24s  %-40s  %-16s  %zu\n", static_cast<long long>(l.id),
                    format_time(l.received_unix_ms).c_str(), l.topic.c_str(), l.error.c_str(), l.payload.size());
        ++n;
    });
    std::printf("(%lld dead letter%s)\n", static_cast<long long>(n), n == 1 ? "" : "s");
}

}  // namespace

void add_dead_letters_command(CLI::App& app, const Globals& globals) {
    auto o = std::make_shared<Options>();
    CLI::App* command = app.add_subcommand("dead-letters", "list, show and replay payloads the gateway rejected");
    command->add_flag("--json", o->json, "list or --show as JSON");
    auto* show = command->add_option_function<std::int64_t>(
        "--show", [o](std::int64_t id) { o->show = id; }, "one dead letter in full, with a hex dump of its payload");
    show->type_name("ID");
    auto* replay = command
                       ->add_option("--replay", o->replay,
                                    "republish these payloads to their topics on the broker (repeat for several)")
                       ->type_name("ID");
    auto* all = command->add_flag("--all", o->replay_all,
                                  "replay every dead letter of the selection (--error, --since, --limit)");
    all->excludes(replay);
    show->excludes(replay);
    show->excludes(all);
    command->add_option("--error", o->error, "only this error name (e.g. bad_magic, store_rejected)")
        ->type_name("NAME");
    command->add_option("--since", o->since, "only received at or after this time")->type_name("TIME");
    command->add_option("-n,--limit", o->limit, "at most N")->type_name("N")->check(CLI::NonNegativeNumber);
    command->add_option("--broker", o->broker, "broker URI for replay (default: [mqtt] broker of --config)")
        ->type_name("URI");
    command->add_option("--timeout", o->timeout_s, "seconds to wait for the broker")
        ->type_name("S")
        ->check(CLI::Range(1, 3600))
        ->capture_default_str();
    command->footer(
        "Replay publishes each payload unchanged to its original topic (QoS 1, waits for the broker's PUBACK).\n"
        "The database is never written: the dead letter stays until retention removes it. A replayed batch\n"
        "already stored only counts as duplicates; one still rejected becomes a new dead letter.\n"
        "Payloads longer than 16 KiB were kept truncated and cannot be replayed whole.");
    command->callback([&globals, o] { run(globals, *o); });
}

}  // namespace fieldlink::cli

// fieldlink status: the gateway's health as its database shows it, and a
// verdict for scripts and monitoring (exit 0 healthy, 1 unhealthy).
//
// Read in one short read transaction. Ingest rates come from readings'
// received_unix_ms, walked back from the newest id (received time follows id
// order, see store/retention.hpp), so only the rows of the window are read.
// What only the running gateway knows (its queue, the broker connection) is
// not here: that is the gateway's stats line and its /metrics.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli.hpp"
#include "database.hpp"
#include "fieldlink/gateway/store/retention.hpp"
#include "output.hpp"
#include "table.hpp"
#include "time_text.hpp"

namespace fieldlink::cli {
namespace {

using gateway::sqlite::Statement;

struct Thresholds {
    std::int64_t min_free_disk_bytes = 100LL << 20;
    std::int64_t max_lag_seconds = 900;
    std::int64_t max_lag_rows = 0;
    std::int64_t max_silence_seconds = 300;
    std::int64_t max_dead_letters_per_hour = 0;
    bool ignore_retention_drops = false;
    int rate_minutes = 5;
    bool json = false;
};

struct Upstream {
    std::string name;
    bool configured = false;
    bool has_cursor = false;
    std::int64_t next_id = 1;
    std::optional<std::int64_t> live_from_id;
    std::int64_t live_next_id = 0;
    std::int64_t forwarded_rows = 0;
    std::optional<std::int64_t> updated_unix_ms;
    std::int64_t lag_rows = 0;
    std::optional<std::int64_t> oldest_unforwarded_unix_ms;
};

struct DeadLetterKind {
    std::int64_t count = 0;
    std::int64_t last_unix_ms = 0;
};

struct Drop {
    std::int64_t rows = 0;
    std::int64_t last_unix_ms = 0;
};

struct Check {
    std::string name;
    bool ok = true;
    std::string detail;
};

struct Status {
    std::int64_t now = 0;
    std::string path;
    int schema_version = 0;
    std::int64_t db_used_bytes = 0;
    std::int64_t db_file_bytes = 0;  // main file plus -wal
    std::optional<std::int64_t> free_disk_bytes;
    std::string free_disk_error;
    std::int64_t readings = 0;
    std::optional<std::int64_t> oldest_received_unix_ms;
    std::optional<std::int64_t> newest_received_unix_ms;
    std::vector<std::int64_t> per_minute;  // readings received in each of the last minutes, oldest first
    std::int64_t devices = 0;
    std::int64_t devices_online = 0;
    std::map<std::string, DeadLetterKind> dead_letters;
    std::int64_t dead_letters_last_hour = 0;
    std::vector<Upstream> upstreams;
    std::optional<std::string> config_file;
    gateway::Config config;
    std::map<std::string, Drop> drops;  // by reason
    std::int64_t drops_last_hour = 0;
    std::vector<Check> checks;

    bool healthy() const {
        for (const Check& c : checks) {
            if (!c.ok) return false;
        }
        return true;
    }
};

std::int64_t single_int(gateway::sqlite::Database& db, const std::string& sql) {
    Statement s = db.prepare(sql);
    s.step();
    return s.column_int64(0);
}

std::int64_t file_size(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 ? static_cast<std::int64_t>(st.st_size) : 0;
}

void read_upstreams(ReadOnlyDatabase& database, Status& st) {
    auto& db = database.db();
    for (const auto& u : st.config.upstreams) {
        Upstream up;
        up.name = u.name;
        up.configured = true;
        st.upstreams.push_back(up);
    }
    if (database.has_table("forward_cursors")) {
        Statement s = db.prepare(
            "SELECT upstream, next_id, live_from_id, live_next_id, forwarded_rows, updated_unix_ms FROM forward_cursors"
            " ORDER BY upstream");
        while (s.step()) {
            const std::string name = s.column_text(0);
            Upstream* u = nullptr;
            for (auto& existing : st.upstreams) {
                if (existing.name == name) u = &existing;
            }
            if (u == nullptr) {
                // Without a config file every cursor counts; with one, a cursor of an upstream no longer
                // configured is shown but not checked (the gateway ignores it too).
                Upstream up;
                up.name = name;
                up.configured = !st.config_file;
                st.upstreams.push_back(up);
                u = &st.upstreams.back();
            }
            u->has_cursor = true;
            u->next_id = s.column_int64(1);
            if (!s.column_is_null(2)) u->live_from_id = s.column_int64(2);
            u->live_next_id = s.column_int64(3);
            u->forwarded_rows = s.column_int64(4);
            u->updated_unix_ms = s.column_int64(5);
        }
    }
    Statement count = db.prepare("SELECT COUNT(*) FROM readings WHERE id >= ?1 AND id < ?2");
    Statement first =
        db.prepare("SELECT received_unix_ms FROM readings WHERE id >= ?1 AND id < ?2 ORDER BY id LIMIT 1");
    auto rows = [&count](std::int64_t from, std::int64_t end) {
        count.reset();
        count.bind_int64(1, from).bind_int64(2, end);
        count.step();
        const std::int64_t n = count.column_int64(0);
        count.reset();
        return n;
    };
    auto oldest = [&first](std::int64_t from, std::int64_t end) -> std::optional<std::int64_t> {
        first.reset();
        first.bind_int64(1, from).bind_int64(2, end);
        std::optional<std::int64_t> t;
        if (first.step()) t = first.column_int64(0);
        first.reset();
        return t;
    };
    constexpr std::int64_t kEnd = INT64_MAX;
    for (Upstream& u : st.upstreams) {
        // Unconfirmed: [next_id, live_from_id) and [live_next_id, end) while split, else [next_id, end).
        if (u.live_from_id) {
            u.lag_rows = rows(u.next_id, *u.live_from_id) + rows(u.live_next_id, kEnd);
            u.oldest_unforwarded_unix_ms = oldest(u.next_id, *u.live_from_id);
            if (!u.oldest_unforwarded_unix_ms) u.oldest_unforwarded_unix_ms = oldest(u.live_next_id, kEnd);
        } else {
            u.lag_rows = rows(u.next_id, kEnd);
            u.oldest_unforwarded_unix_ms = oldest(u.next_id, kEnd);
        }
    }
}

Status read_status(ReadOnlyDatabase& database, const LoadedConfig& loaded, int rate_minutes) {
    Status st;
    st.config = loaded.config;
    st.config_file = loaded.file;
    st.path = database.path();
    st.schema_version = database.schema_version();
    auto& db = database.db();
    {
        const ReadTransaction transaction(db);
        st.now = now_unix_ms();
        st.db_used_bytes = (single_int(db, "PRAGMA page_count") - single_int(db, "PRAGMA freelist_count")) *
                           single_int(db, "PRAGMA page_size");
        st.readings = single_int(db, "SELECT COUNT(*) FROM readings");
        {
            Statement s = db.prepare("SELECT received_unix_ms FROM readings ORDER BY id LIMIT 1");
            if (s.step()) st.oldest_received_unix_ms = s.column_int64(0);
        }
        {
            // Newest first until the window's start: only the window's rows are read.
            st.per_minute.assign(static_cast<std::size_t>(rate_minutes), 0);
            const std::int64_t window_end = st.now / 60000 * 60000 + 60000;  // end of the current minute
            const std::int64_t window_start = window_end - rate_minutes * 60000LL;
            Statement s = db.prepare("SELECT received_unix_ms FROM readings ORDER BY id DESC");
            bool newest = true;
            while (s.step()) {
                const std::int64_t t = s.column_int64(0);
                if (newest) st.newest_received_unix_ms = t;
                newest = false;
                if (t < window_start) break;
                if (t >= window_end) continue;  // a clock ahead of ours
                ++st.per_minute[static_cast<std::size_t>((t - window_start) / 60000)];
            }
        }
        {
            // Known as `fieldlink devices` knows them: also those that never sent a status (typed-in batches).
            st.devices =
                single_int(db,
                           "SELECT COUNT(*) FROM (SELECT device FROM devices UNION SELECT device FROM watermarks"
                           " UNION SELECT device FROM readings)");
            st.devices_online = single_int(db, "SELECT COALESCE(SUM(online = 1), 0) FROM devices");
        }
        {
            Statement s = db.prepare(
                "SELECT error, COUNT(*), MAX(received_unix_ms), SUM(received_unix_ms >= ?1) FROM dead_letters"
                " GROUP BY error ORDER BY error");
            s.bind_int64(1, st.now - 3600000);
            while (s.step()) {
                st.dead_letters[s.column_text(0)] = {s.column_int64(1), s.column_int64(2)};
                st.dead_letters_last_hour += s.column_int64(3);
            }
        }
        read_upstreams(database, st);
        if (database.has_table("retention_drops")) {
            Statement s = db.prepare(
                "SELECT reason, SUM(rows), MAX(last_unix_ms), SUM(CASE WHEN last_unix_ms >= ?1 THEN rows ELSE 0 END)"
                " FROM retention_drops GROUP BY reason ORDER BY reason");
            s.bind_int64(1, st.now - 3600000);
            while (s.step()) {
                st.drops[s.column_text(0)] = {s.column_int64(1), s.column_int64(2)};
                st.drops_last_hour += s.column_int64(3);
            }
        }
    }
    st.db_file_bytes = file_size(st.path) + file_size(st.path + "-wal");
    try {
        st.free_disk_bytes = static_cast<std::int64_t>(gateway::free_disk_bytes(gateway::directory_of(st.path)));
    } catch (const std::exception& e) {
        st.free_disk_error = e.what();
    }
    return st;
}

void evaluate(Status& st, const Thresholds& t) {
    if (t.min_free_disk_bytes > 0) {
        if (!st.free_disk_bytes) {
            st.checks.push_back({"free_disk", false, st.free_disk_error});
        } else {
            st.checks.push_back({"free_disk", *st.free_disk_bytes >= t.min_free_disk_bytes,
                                 fmt::format("{} bytes free, floor {}", *st.free_disk_bytes, t.min_free_disk_bytes)});
        }
    }
    if (t.max_silence_seconds > 0 && st.devices_online > 0) {
        const std::int64_t silent_ms = st.newest_received_unix_ms ? st.now - *st.newest_received_unix_ms : -1;
        const bool ok = silent_ms >= 0 && silent_ms <= t.max_silence_seconds * 1000;
        st.checks.push_back({"ingest", ok,
                             silent_ms < 0
                                 ? fmt::format("{} device(s) online, no reading stored", st.devices_online)
                                 : fmt::format("{} device(s) online, newest reading received {} ago (max {} s)",
                                               st.devices_online, format_duration(silent_ms), t.max_silence_seconds)});
    }
    for (const Upstream& u : st.upstreams) {
        if (!u.configured) continue;
        const std::int64_t lag_ms = u.oldest_unforwarded_unix_ms ? st.now - *u.oldest_unforwarded_unix_ms : 0;
        if (t.max_lag_seconds > 0) {
            st.checks.push_back({"upstream_lag_seconds:" + u.name, lag_ms <= t.max_lag_seconds * 1000,
                                 fmt::format("oldest unforwarded reading {} old (max {} s)", format_duration(lag_ms),
                                             t.max_lag_seconds)});
        }
        if (t.max_lag_rows > 0) {
            st.checks.push_back({"upstream_lag_rows:" + u.name, u.lag_rows <= t.max_lag_rows,
                                 fmt::format("{} readings not forwarded (max {})", u.lag_rows, t.max_lag_rows)});
        }
    }
    if (t.max_dead_letters_per_hour > 0) {
        st.checks.push_back(
            {"dead_letters", st.dead_letters_last_hour <= t.max_dead_letters_per_hour,
             fmt::format("{} in the last hour (max {})", st.dead_letters_last_hour, t.max_dead_letters_per_hour)});
    }
    if (!t.ignore_retention_drops) {
        st.checks.push_back(
            {"retention_drops", st.drops_last_hour == 0,
             fmt::format("{} unforwarded readings dropped by a size limit in the last hour", st.drops_last_hour)});
    }
}

std::string opt_json(const std::optional<std::int64_t>& v) { return v ? std::to_string(*v) : "null"; }

std::string to_json(const Status& st, int rate_minutes) {
    std::string out = "{\n";
    auto it = std::back_inserter(out);
    fmt::format_to(it, "  \"healthy\": {},\n  \"now_unix_ms\": {},\n", st.healthy() ? "true" : "false", st.now);
    out += "  \"checks\": [";
    for (std::size_t i = 0; i < st.checks.size(); ++i) {
        fmt::format_to(it, "{}\n    {{\"name\": {}, \"ok\": {}, \"detail\": {}}}", i ? "," : "",
                       json_string(st.checks[i].name), st.checks[i].ok ? "true" : "false",
                       json_string(st.checks[i].detail));
    }
    out += st.checks.empty() ? "],\n" : "\n  ],\n";
    fmt::format_to(it,
                   "  \"database\": {{\"path\": {}, \"schema_version\": {}, \"used_bytes\": {}, \"file_bytes\": {}, "
                   "\"free_disk_bytes\": {}}},\n",
                   json_string(st.path), st.schema_version, st.db_used_bytes, st.db_file_bytes,
                   opt_json(st.free_disk_bytes));
    std::int64_t window_total = 0;
    std::string minutes;
    for (std::size_t i = 0; i < st.per_minute.size(); ++i) {
        minutes += fmt::format("{}{}", i ? ", " : "", st.per_minute[i]);
        window_total += st.per_minute[i];
    }
    fmt::format_to(
        it,
        "  \"readings\": {{\"stored\": {}, \"oldest_received_unix_ms\": {}, \"newest_received_unix_ms\": {}, "
        "\"per_minute\": [{}], \"per_minute_average\": {}}},\n",
        st.readings, opt_json(st.oldest_received_unix_ms), opt_json(st.newest_received_unix_ms), minutes,
        number_text(static_cast<double>(window_total) / rate_minutes));
    fmt::format_to(it, "  \"devices\": {{\"known\": {}, \"online\": {}}},\n", st.devices, st.devices_online);
    out += "  \"dead_letters\": {";
    bool first = true;
    for (const auto& [error, d] : st.dead_letters) {
        fmt::format_to(it, "{}{}: {{\"count\": {}, \"last_unix_ms\": {}}}", first ? "" : ", ", json_string(error),
                       d.count, d.last_unix_ms);
        first = false;
    }
    fmt::format_to(it, "}},\n  \"dead_letters_last_hour\": {},\n  \"upstreams\": [", st.dead_letters_last_hour);
    for (std::size_t i = 0; i < st.upstreams.size(); ++i) {
        const Upstream& u = st.upstreams[i];
        fmt::format_to(it,
                       "{}\n    {{\"name\": {}, \"configured\": {}, \"next_id\": {}, \"forwarded_rows\": {}, "
                       "\"lag_rows\": {}, \"lag_seconds\": {}, \"cursor_updated_unix_ms\": {}}}",
                       i ? "," : "", json_string(u.name), u.configured ? "true" : "false", u.next_id, u.forwarded_rows,
                       u.lag_rows,
                       number_text(u.oldest_unforwarded_unix_ms
                                       ? static_cast<double>(st.now - *u.oldest_unforwarded_unix_ms) / 1000.0
                                       : 0.0),
                       opt_json(u.updated_unix_ms));
    }
    out += st.upstreams.empty() ? "],\n" : "\n  ],\n";
    fmt::format_to(it,
                   "  \"retention\": {{\"config_file\": {}, \"max_age_s\": {}, \"max_db_bytes\": {}, "
                   "\"min_free_disk_bytes\": {}, \"dropped\": {{",
                   st.config_file ? json_string(*st.config_file) : "null", st.config.retention_max_age_s,
                   st.config.retention_max_db_bytes, st.config.retention_min_free_disk_bytes);
    first = true;
    for (const auto& [reason, d] : st.drops) {
        fmt::format_to(it, "{}{}: {{\"rows\": {}, \"last_unix_ms\": {}}}", first ? "" : ", ", json_string(reason),
                       d.rows, d.last_unix_ms);
        first = false;
    }
    fmt::format_to(it, "}}, \"dropped_last_hour\": {}}}\n}}\n", st.drops_last_hour);
    return out;
}

std::string limit_text(std::int64_t v, const char* unit) { return v == 0 ? "off" : fmt::format("{} {}", v, unit); }

std::string to_text(const Status& st, int rate_minutes) {
    std::string out;
    auto it = std::back_inserter(out);
    fmt::format_to(it, "{}\n", st.healthy() ? "HEALTHY" : "UNHEALTHY");
    for (const Check& c : st.checks) fmt::format_to(it, "  {:<5} {}: {}\n", c.ok ? "ok" : "FAIL", c.name, c.detail);
    fmt::format_to(it, "\ndatabase   {} (schema v{})\n", st.path, st.schema_version);
    fmt::format_to(it, "  size     {:.1f} MB used, {:.1f} MB on disk with the WAL\n", st.db_used_bytes / 1e6,
                   st.db_file_bytes / 1e6);
    if (st.free_disk_bytes) {
        fmt::format_to(it, "  free     {:.1f} MB on its filesystem\n", *st.free_disk_bytes / 1e6);
    } else {
        fmt::format_to(it, "  free     unknown ({})\n", st.free_disk_error);
    }
    fmt::format_to(it, "readings   {} stored", st.readings);
    if (st.oldest_received_unix_ms) {
        fmt::format_to(it, ", received {} .. {}", format_time(*st.oldest_received_unix_ms),
                       format_time(st.newest_received_unix_ms.value_or(0)));
    }
    std::int64_t total = 0;
    std::string minutes;
    for (const std::int64_t n : st.per_minute) {
        minutes += fmt::format(" {}", n);
        total += n;
    }
    fmt::format_to(it, "\n  ingest   {:.1f} readings/min over the last {} min (per minute, oldest first:{})\n",
                   static_cast<double>(total) / rate_minutes, rate_minutes, minutes);
    fmt::format_to(it, "devices    {} known, {} online\n", st.devices, st.devices_online);
    std::int64_t dead = 0;
    for (const auto& [e, d] : st.dead_letters) dead += d.count;
    fmt::format_to(it, "dead letters {} ({} in the last hour)\n", dead, st.dead_letters_last_hour);
    for (const auto& [error, d] : st.dead_letters) {
        fmt::format_to(it, "  {:<20} {:>8}  last {}\n", error, d.count, format_time(d.last_unix_ms));
    }
    if (st.upstreams.empty()) {
        out += "upstreams  none\n";
    } else {
        TextTable table({"  UPSTREAM", "LAG ROWS", "LAG", "FORWARDED", "CURSOR SAVED", "NOTE"});
        for (const Upstream& u : st.upstreams) {
            const std::int64_t lag_ms = u.oldest_unforwarded_unix_ms ? st.now - *u.oldest_unforwarded_unix_ms : 0;
            table.add({"  " + u.name, std::to_string(u.lag_rows), format_duration(lag_ms),
                       std::to_string(u.forwarded_rows),
                       u.updated_unix_ms ? format_duration(st.now - *u.updated_unix_ms) + " ago" : "never",
                       !u.configured ? "not configured" : (u.has_cursor ? "" : "no cursor yet")});
        }
        out += "upstreams\n" + table.text();
    }
    fmt::format_to(it, "retention  max_age {}, max_db_bytes {}, min_free_disk_bytes {} ({})\n",
                   limit_text(st.config.retention_max_age_s, "s"), limit_text(st.config.retention_max_db_bytes, "B"),
                   limit_text(st.config.retention_min_free_disk_bytes, "B"),
                   st.config_file ? "from " + *st.config_file : "no config file: the gateway's defaults");
    if (st.drops.empty()) {
        out += "  dropped  none (no unforwarded reading was ever deleted by a size limit)\n";
    }
    for (const auto& [reason, d] : st.drops) {
        fmt::format_to(it, "  dropped  {} unforwarded readings by {}, last {}\n", d.rows, reason,
                       format_time(d.last_unix_ms));
    }
    return out;
}

}  // namespace

void add_status_command(CLI::App& app, const Globals& globals) {
    auto t = std::make_shared<Thresholds>();
    CLI::App* command = app.add_subcommand("status", "the gateway's health from its database; exit 1 when unhealthy");
    command->add_flag("--json", t->json, "one JSON object");
    command->add_option("--minutes", t->rate_minutes, "ingest rate window: the last N minutes (by received time)")
        ->type_name("N")
        ->check(CLI::Range(1, 1440))
        ->capture_default_str();
    command
        ->add_option("--min-free-disk", t->min_free_disk_bytes,
                     "unhealthy when the database's filesystem has fewer bytes free (0: off)")
        ->type_name("BYTES")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    command
        ->add_option("--max-lag-seconds", t->max_lag_seconds,
                     "unhealthy when a configured upstream's oldest unforwarded reading is older (0: off)")
        ->type_name("S")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    command
        ->add_option("--max-lag-rows", t->max_lag_rows,
                     "unhealthy when a configured upstream has more readings not forwarded (0: off)")
        ->type_name("N")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    command
        ->add_option("--max-silence", t->max_silence_seconds,
                     "unhealthy when a device is online but no reading was received for this long (0: off)")
        ->type_name("S")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    command
        ->add_option("--max-dead-letters", t->max_dead_letters_per_hour,
                     "unhealthy when more payloads were dead-lettered in the last hour (0: off)")
        ->type_name("N")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    command->add_flag("--ignore-retention-drops", t->ignore_retention_drops,
                      "do not count unforwarded readings dropped by a size limit in the last hour as unhealthy");
    command->footer(
        "Checks: free_disk, ingest (only while some device's last status is online), upstream_lag_seconds and\n"
        "upstream_lag_rows per configured upstream (from --config's [[upstream]] tables, else every cursor in\n"
        "forward_cursors), dead_letters, retention_drops. Exit 0 healthy, 1 unhealthy or no database, 2 usage.");
    command->callback([&globals, t] {
        const LoadedConfig loaded = load_config(globals);
        ReadOnlyDatabase database(globals.db.empty() ? loaded.config.db_path : globals.db, globals.busy_timeout_ms);
        Status st = read_status(database, loaded, t->rate_minutes);
        evaluate(st, *t);
        const std::string text = t->json ? to_json(st, t->rate_minutes) : to_text(st, t->rate_minutes);
        std::fputs(text.c_str(), stdout);
        if (!st.healthy()) throw CLI::RuntimeError(kExitFailure);
    });
}

}  // namespace fieldlink::cli

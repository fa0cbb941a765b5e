// fieldlink devices: one row per device the database knows, from devices (last
// status), watermarks, device_health (latest telemetry) and readings, read in
// one short read transaction.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "cli.hpp"
#include "database.hpp"
#include "output.hpp"
#include "table.hpp"
#include "time_text.hpp"

namespace fieldlink::cli {
namespace {

using gateway::sqlite::Statement;

struct Health {
    std::int64_t received_unix_ms = 0;
    std::int64_t held = 0;
    std::int64_t oldest_unacked_age_ms = 0;
    std::int64_t dropped = 0;
    std::int64_t reconnects = 0;
};

struct Device {
    std::optional<bool> online;
    std::optional<std::string> firmware;
    std::optional<std::uint64_t> incarnation;
    std::optional<std::int64_t> boot;
    std::optional<std::int64_t> status_unix_ms;
    std::optional<std::int64_t> watermark;
    std::int64_t readings = 0;
    std::int64_t unsynchronised = 0;
    std::optional<std::int64_t> last_reading_unix_ms;
    std::optional<Health> health;

    std::optional<std::int64_t> last_seen() const {
        std::optional<std::int64_t> t = status_unix_ms;
        for (const auto& other :
             {last_reading_unix_ms, health ? std::optional(health->received_unix_ms) : std::nullopt}) {
            if (other && (!t || *other > *t)) t = other;
        }
        return t;
    }
};

std::optional<std::int64_t> opt_int(const Statement& s, int column) {
    return s.column_is_null(column) ? std::nullopt : std::optional(s.column_int64(column));
}

std::map<std::string, Device> read_devices(ReadOnlyDatabase& database) {
    std::map<std::string, Device> devices;
    auto& db = database.db();
    const ReadTransaction transaction(db);
    {
        Statement s =
            db.prepare("SELECT device, online, incarnation, boot, firmware_version, updated_unix_ms FROM devices");
        while (s.step()) {
            Device& d = devices[s.column_text(0)];
            if (!s.column_is_null(1)) d.online = s.column_int64(1) != 0;
            if (!s.column_is_null(2)) d.incarnation = static_cast<std::uint64_t>(s.column_int64(2));
            d.boot = opt_int(s, 3);
            if (!s.column_is_null(4)) d.firmware = s.column_text(4);
            d.status_unix_ms = opt_int(s, 5);
        }
    }
    {
        // The watermark of the incarnation in the last status, else of the most recently updated one
        // (SQLite takes the bare columns from the row holding the MAX).
        Statement s = db.prepare(
            "SELECT w.device, w.incarnation, w.watermark, MAX(w.updated_unix_ms) FROM watermarks w GROUP BY w.device");
        Statement current = db.prepare("SELECT watermark FROM watermarks WHERE device = ?1 AND incarnation = ?2");
        while (s.step()) {
            const std::string name = s.column_text(0);
            Device& d = devices[name];
            if (d.incarnation) {
                current.reset();
                current.bind_text(1, name).bind_int64(2, static_cast<std::int64_t>(*d.incarnation));
                if (current.step()) d.watermark = current.column_int64(0);
                current.reset();
            }
            if (!d.watermark) {
                d.watermark = s.column_int64(2);
                if (!d.incarnation) d.incarnation = static_cast<std::uint64_t>(s.column_int64(1));
            }
        }
    }
    if (database.has_table("device_health")) {
        Statement s = db.prepare(
            "SELECT device, MAX(id), received_unix_ms, held, oldest_unacked_age_ms, dropped, reconnects"
            " FROM device_health GROUP BY device");
        while (s.step()) {
            devices[s.column_text(0)].health =
                Health{s.column_int64(2), s.column_int64(3), s.column_int64(4), s.column_int64(5), s.column_int64(6)};
        }
    }
    {
        Statement s = db.prepare(
            "SELECT device, COUNT(*), SUM(unix_ms IS NULL), MAX(received_unix_ms) FROM readings GROUP BY device");
        while (s.step()) {
            Device& d = devices[s.column_text(0)];
            d.readings = s.column_int64(1);
            d.unsynchronised = s.column_int64(2);
            d.last_reading_unix_ms = opt_int(s, 3);
        }
    }
    return devices;
}

template <typename T>
std::string json_or_null(const std::optional<T>& value) {
    return value ? fmt::format("{}", *value) : "null";
}

std::string to_json(const std::map<std::string, Device>& devices, std::int64_t now) {
    std::string out = "[";
    bool first = true;
    for (const auto& [name, d] : devices) {
        out += first ? "\n" : ",\n";
        first = false;
        const auto seen = d.last_seen();
        out += fmt::format(
            R"(  {{"device":{},"online":{},"firmware":{},"incarnation":{},"boot":{},"last_seen_unix_ms":{},)"
            R"("last_seen_age_ms":{},"readings":{},"watermark":{},"unsynchronised":{},"last_reading_unix_ms":{},)",
            json_string(name), d.online ? (*d.online ? "true" : "false") : "null",
            d.firmware ? json_string(*d.firmware) : "null",
            d.incarnation ? json_string(hex_incarnation(*d.incarnation)) : "null", json_or_null(d.boot),
            json_or_null(seen), seen ? fmt::format("{}", now - *seen) : "null", d.readings, json_or_null(d.watermark),
            d.unsynchronised, json_or_null(d.last_reading_unix_ms));
        if (d.health) {
            out += fmt::format(
                R"("telemetry":{{"received_unix_ms":{},"spool_depth":{},"oldest_unacked_age_ms":{},"dropped":{},)"
                R"("reconnects":{}}}}})",
                d.health->received_unix_ms, d.health->held, d.health->oldest_unacked_age_ms, d.health->dropped,
                d.health->reconnects);
        } else {
            out += R"("telemetry":null})";
        }
    }
    out += first ? "]\n" : "\n]\n";
    return out;
}

std::string to_table(const std::map<std::string, Device>& devices, std::int64_t now) {
    TextTable table({"DEVICE", "ONLINE", "FIRMWARE", "INCARNATION", "LAST SEEN", "READINGS", "WATERMARK", "SPOOL",
                     "OLDEST UNACKED", "DROPS", "RECONNECTS", "UNSYNCED"});
    auto or_dash = [](const auto& value) { return value ? fmt::format("{}", *value) : std::string("-"); };
    for (const auto& [name, d] : devices) {
        const auto seen = d.last_seen();
        table.add({name, d.online ? (*d.online ? "yes" : "no") : "-", d.firmware.value_or("-"),
                   d.incarnation ? hex_incarnation(*d.incarnation) : "-",
                   seen ? format_duration(now - *seen) + " ago" : "-", std::to_string(d.readings), or_dash(d.watermark),
                   d.health ? std::to_string(d.health->held) : "-",
                   d.health ? format_duration(d.health->oldest_unacked_age_ms) : "-",
                   d.health ? std::to_string(d.health->dropped) : "-",
                   d.health ? std::to_string(d.health->reconnects) : "-", std::to_string(d.unsynchronised)});
    }
    return table.text() + fmt::format("({} device{})\n", devices.size(), devices.size() == 1 ? "" : "s");
}

}  // namespace

void add_devices_command(CLI::App& app, const Globals& globals) {
    auto json = std::make_shared<bool>(false);
    CLI::App* command = app.add_subcommand("devices", "list every device the database knows, with its state");
    command->add_flag("--json", *json, "one JSON array, one object per device");
    command->footer(
        "ONLINE, FIRMWARE, INCARNATION: the device's last status message (INCARNATION from its watermark when it\n"
        "sent none). LAST SEEN: the newest of its status, telemetry and readings (gateway clock). READINGS: rows\n"
        "stored now. WATERMARK: every seq up to it is stored (the last ack). SPOOL, OLDEST UNACKED, DROPS,\n"
        "RECONNECTS: from its latest telemetry message. UNSYNCED: readings without wall time (unix_ms) yet.");
    command->callback([&globals, json] {
        ReadOnlyDatabase database(database_path(globals), globals.busy_timeout_ms);
        const auto devices = read_devices(database);
        const std::int64_t now = now_unix_ms();
        const std::string text = *json ? to_json(devices, now) : to_table(devices, now);
        std::fputs(text.c_str(), stdout);
    });
}

}  // namespace fieldlink::cli

// The gateway's database opened the way a tool beside a running gateway must:
// read-only (never the writer's lock), with a busy timeout, checked to be a
// fieldlink database of a schema version this program knows.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "cli.hpp"
#include "fieldlink/gateway/app/config.hpp"
#include "fieldlink/gateway/store/sqlite.hpp"

namespace fieldlink::cli {

// The gateway's configuration: from the --config file when it exists (an
// error when --config was given and it does not), else the gateway's defaults.
struct LoadedConfig {
    gateway::Config config;
    std::optional<std::string> file;  // the file read, if any
};
LoadedConfig load_config(const Globals& globals);

// --db, else the config's [database] path, else the gateway's default.
std::string database_path(const Globals& globals);

class ReadOnlyDatabase {
public:
    // Throws CliError (exit 1) naming the path: no such file, not a database,
    // not a fieldlink database, or a schema newer than this program knows.
    explicit ReadOnlyDatabase(const std::string& path, int busy_timeout_ms);

    gateway::sqlite::Database& db() noexcept { return db_; }
    const std::string& path() const noexcept { return db_.path(); }
    int schema_version() const noexcept { return schema_version_; }
    bool has_table(const std::string& name);

private:
    gateway::sqlite::Database db_;
    int schema_version_ = 0;
};

// One read transaction: every SELECT inside sees the same snapshot (WAL: the
// writer goes on meanwhile). Keep it short: a long one holds back checkpoints.
class ReadTransaction {
public:
    explicit ReadTransaction(gateway::sqlite::Database& db);
    ~ReadTransaction();
    ReadTransaction(const ReadTransaction&) = delete;
    ReadTransaction& operator=(const ReadTransaction&) = delete;

private:
    gateway::sqlite::Database& db_;
};

// Milliseconds since the Unix epoch, the gateway's time base.
std::int64_t now_unix_ms();

}  // namespace fieldlink::cli

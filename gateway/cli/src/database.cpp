#include "database.hpp"

#include <sqlite3.h>
#include <sys/stat.h>

#include <fmt/format.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "fieldlink/gateway/store/sqlite_store.hpp"

namespace fieldlink::cli {

LoadedConfig load_config(const Globals& globals) {
    LoadedConfig loaded;
    struct stat st {};
    if (::stat(globals.config.c_str(), &st) != 0) {
        if (globals.config_given) {
            throw CliError(kExitUsage,
                           fmt::format("{}: cannot open config file: {}", globals.config, std::strerror(errno)));
        }
        return loaded;
    }
    try {
        gateway::apply_toml_file(globals.config, loaded.config);
    } catch (const gateway::ConfigError& e) {
        throw CliError(kExitUsage, e.what());
    }
    loaded.file = globals.config;
    return loaded;
}

std::string database_path(const Globals& globals) {
    if (!globals.db.empty()) return globals.db;
    return load_config(globals).config.db_path;
}

ReadOnlyDatabase::ReadOnlyDatabase(const std::string& path, int busy_timeout_ms)
    : db_([&path] {
          struct stat st {};
          if (::stat(path.c_str(), &st) != 0) {
              throw CliError(kExitFailure, fmt::format("no database at '{}': {} (give its path with --db, or the "
                                                       "gateway's config with --config)",
                                                       path, std::strerror(errno)));
          }
          if (!S_ISREG(st.st_mode)) throw CliError(kExitFailure, fmt::format("'{}' is not a file", path));
          try {
              return gateway::sqlite::Database(path, gateway::sqlite::Database::Mode::ReadOnly);
          } catch (const gateway::sqlite::Error& e) {
              throw CliError(kExitFailure, e.what());
          }
      }()) {
    try {
        db_.exec(fmt::format("PRAGMA busy_timeout = {}", busy_timeout_ms));
        schema_version_ = gateway::schema_version(db_);
        if (schema_version_ == 0 || !has_table("readings")) {
            throw CliError(kExitFailure,
                           fmt::format("'{}' is not a fieldlink database (no fieldlink schema: user_version {}, "
                                       "readings table {})",
                                       path, schema_version_, has_table("readings") ? "present" : "missing"));
        }
    } catch (const gateway::sqlite::Error& e) {
        if (e.code() == SQLITE_NOTADB) {
            throw CliError(kExitFailure, fmt::format("'{}' is not a fieldlink database (not an SQLite file)", path));
        }
        throw CliError(kExitFailure, e.what());
    }
    if (schema_version_ > gateway::kSchemaVersion) {
        throw CliError(kExitFailure,
                       fmt::format("database '{}' has schema version {}, but this fieldlink knows versions up to {}; "
                                   "it was written by a newer gateway: use the fieldlink command of that version",
                                   path, schema_version_, gateway::kSchemaVersion));
    }
}

bool ReadOnlyDatabase::has_table(const std::string& name) {
    gateway::sqlite::Statement statement =
        db_.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1");
    statement.bind_text(1, name);
    return statement.step();
}

ReadTransaction::ReadTransaction(gateway::sqlite::Database& db) : db_(db) { db_.exec("BEGIN DEFERRED"); }

ReadTransaction::~ReadTransaction() {
    // A read transaction has nothing to keep; ending it releases the snapshot.
    if (db_.in_transaction()) sqlite3_exec(db_.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
}

std::int64_t now_unix_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

}  // namespace fieldlink::cli

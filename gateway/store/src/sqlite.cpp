#include "fieldlink/gateway/store/sqlite.hpp"

#include <sqlite3.h>

#include <fmt/format.h>

#include <climits>
#include <utility>

namespace fieldlink::gateway::sqlite {

Error::Error(std::string_view context, int extended_code, std::string_view sqlite_message)
    : std::runtime_error(
          fmt::format("{}: {} (code {}, extended {})", context, sqlite_message, extended_code & 0xff, extended_code)),
      extended_code_(extended_code),
      sqlite_message_(sqlite_message) {}

Database::Database(const std::string& path, Mode mode) : path_(path) {
    const int flags = (mode == Mode::ReadOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
                      SQLITE_OPEN_NOMUTEX;
    const int rc = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr);
    if (rc != SQLITE_OK) {
        // The handle exists even on failure (unless out of memory) and holds the message.
        const std::string message = db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
        const int extended = db_ != nullptr ? sqlite3_extended_errcode(db_) : rc;
        close();
        throw Error(fmt::format("cannot open database '{}'", path), extended, message);
    }
    sqlite3_extended_result_codes(db_, 1);
}

Database::~Database() { close(); }

Database::Database(Database&& other) noexcept : db_(std::exchange(other.db_, nullptr)), path_(std::move(other.path_)) {}

Database& Database::operator=(Database&& other) noexcept {
    if (this != &other) {
        close();
        db_ = std::exchange(other.db_, nullptr);
        path_ = std::move(other.path_);
    }
    return *this;
}

void Database::close() noexcept {
    if (db_ != nullptr) {
        // v2 defers the close if a statement is still alive instead of failing.
        sqlite3_close_v2(db_);
        db_ = nullptr;
    }
}

void Database::exec(const std::string& sql) {
    char* message = nullptr;
    const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &message);
    if (rc != SQLITE_OK) {
        const std::string text = message != nullptr ? message : sqlite3_errstr(rc);
        sqlite3_free(message);
        throw Error(fmt::format("'{}' on '{}'", sql.size() > 60 ? sql.substr(0, 60) + "..." : sql, path_),
                    sqlite3_extended_errcode(db_), text);
    }
}

Statement Database::prepare(std::string_view sql) { return Statement(*this, sql); }

std::int64_t Database::changes() const noexcept { return sqlite3_changes(db_); }

bool Database::in_transaction() const noexcept { return sqlite3_get_autocommit(db_) == 0; }

void Database::fail(std::string_view context) const {
    throw Error(fmt::format("{} on '{}'", context, path_), sqlite3_extended_errcode(db_), sqlite3_errmsg(db_));
}

Statement::Statement(const Database& db, std::string_view sql) : db_(&db) {
    if (sql.size() > static_cast<std::size_t>(INT_MAX)) throw std::length_error("SQL text too long");
    const int rc = sqlite3_prepare_v3(db.handle(), sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT,
                                      &stmt_, nullptr);
    if (rc != SQLITE_OK) db.fail(fmt::format("cannot prepare '{}'", sql));
}

Statement::~Statement() { close(); }

Statement::Statement(Statement&& other) noexcept
    : stmt_(std::exchange(other.stmt_, nullptr)), db_(std::exchange(other.db_, nullptr)) {}

Statement& Statement::operator=(Statement&& other) noexcept {
    if (this != &other) {
        close();
        stmt_ = std::exchange(other.stmt_, nullptr);
        db_ = std::exchange(other.db_, nullptr);
    }
    return *this;
}

void Statement::close() noexcept {
    if (stmt_ != nullptr) {
        sqlite3_finalize(stmt_);
        stmt_ = nullptr;
    }
}

void Statement::check_bind(int rc, int index) {
    if (rc != SQLITE_OK) db_->fail(fmt::format("cannot bind parameter {} of '{}'", index, sqlite3_sql(stmt_)));
}

Statement& Statement::bind_int64(int index, std::int64_t value) {
    check_bind(sqlite3_bind_int64(stmt_, index, value), index);
    return *this;
}

Statement& Statement::bind_double(int index, double value) {
    check_bind(sqlite3_bind_double(stmt_, index, value), index);
    return *this;
}

Statement& Statement::bind_text(int index, std::string_view value) {
    check_bind(sqlite3_bind_text64(stmt_, index, value.data(), value.size(), SQLITE_TRANSIENT, SQLITE_UTF8), index);
    return *this;
}

Statement& Statement::bind_blob(int index, std::span<const std::uint8_t> value) {
    // A zero-length blob must still be a blob, not NULL: SQLite needs a non-null pointer for that.
    static constexpr std::uint8_t kEmpty = 0;
    const void* data = value.empty() ? &kEmpty : value.data();
    check_bind(sqlite3_bind_blob64(stmt_, index, data, value.size(), SQLITE_TRANSIENT), index);
    return *this;
}

Statement& Statement::bind_null(int index) {
    check_bind(sqlite3_bind_null(stmt_, index), index);
    return *this;
}

bool Statement::step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    db_->fail(fmt::format("'{}' failed", sqlite3_sql(stmt_)));
}

void Statement::reset() noexcept {
    // The return value repeats the last step's error, which step() already reported.
    sqlite3_reset(stmt_);
}

bool Statement::column_is_null(int column) const noexcept { return sqlite3_column_type(stmt_, column) == SQLITE_NULL; }

std::int64_t Statement::column_int64(int column) const noexcept { return sqlite3_column_int64(stmt_, column); }

double Statement::column_double(int column) const noexcept { return sqlite3_column_double(stmt_, column); }

std::string Statement::column_text(int column) const {
    const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
    if (text == nullptr) return {};
    return std::string(text, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column)));
}

Transaction::Transaction(Database& db) : db_(db) { db_.exec("BEGIN IMMEDIATE"); }

Transaction::~Transaction() {
    // SQLite may already have rolled back by itself (e.g. after SQLITE_FULL);
    // a ROLLBACK then would only fail, so ask first. Errors are swallowed on purpose.
    if (!done_ && db_.in_transaction()) {
        sqlite3_exec(db_.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
    }
}

void Transaction::commit() {
    db_.exec("COMMIT");
    done_ = true;
}

}  // namespace fieldlink::gateway::sqlite

// Small RAII layer over the SQLite C API: one owner per handle, errors carry
// SQLite's result codes and message, destructors never throw.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>

struct sqlite3;
struct sqlite3_stmt;

namespace fieldlink::gateway::sqlite {

// A failed SQLite call. what() reads "<context>: <sqlite message> (code N, extended M)".
class Error : public std::runtime_error {
public:
    Error(std::string_view context, int extended_code, std::string_view sqlite_message);

    int code() const noexcept { return extended_code_ & 0xff; }  // primary result code, e.g. SQLITE_FULL
    int extended_code() const noexcept { return extended_code_; }
    const std::string& sqlite_message() const noexcept { return sqlite_message_; }

private:
    int extended_code_;
    std::string sqlite_message_;
};

class Statement;

// An open connection. Not thread-safe: one thread owns it at a time.
class Database {
public:
    enum class Mode {
        ReadWriteCreate,  // the gateway's connections
        ReadOnly,         // tools beside a running gateway (the fieldlink command): never writes, never creates
    };
    // Opens the file (read-write, created if missing, by default); throws Error naming the path.
    explicit Database(const std::string& path, Mode mode = Mode::ReadWriteCreate);
    ~Database();
    Database(Database&& other) noexcept;
    Database& operator=(Database&& other) noexcept;
    Database(const Database&) = delete;
    Database& operator=(const Database&) = delete;

    // Runs statements that return no rows we need (DDL, PRAGMA settings).
    void exec(const std::string& sql);
    Statement prepare(std::string_view sql);

    // Rows changed by the last INSERT/UPDATE/DELETE on this connection.
    std::int64_t changes() const noexcept;
    bool in_transaction() const noexcept;
    const std::string& path() const noexcept { return path_; }
    sqlite3* handle() const noexcept { return db_; }

    // Throws Error with the connection's current error code and message.
    [[noreturn]] void fail(std::string_view context) const;

private:
    void close() noexcept;

    sqlite3* db_ = nullptr;
    std::string path_;
};

// A prepared statement, reusable: reset(), bind, step.
class Statement {
public:
    Statement() = default;
    Statement(const Database& db, std::string_view sql);
    ~Statement();
    Statement(Statement&& other) noexcept;
    Statement& operator=(Statement&& other) noexcept;
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;

    // Parameter indexes start at 1, as in SQLite.
    Statement& bind_int64(int index, std::int64_t value);
    Statement& bind_double(int index, double value);
    Statement& bind_text(int index, std::string_view value);  // copied by SQLite
    Statement& bind_blob(int index, std::span<const std::uint8_t> value);
    Statement& bind_null(int index);

    // True when a row is ready to read; false when the statement is done.
    bool step();
    // Ready for the next execution; keeps nothing from the last one that matters (we rebind).
    void reset() noexcept;

    // Column indexes start at 0.
    bool column_is_null(int column) const noexcept;
    std::int64_t column_int64(int column) const noexcept;
    double column_double(int column) const noexcept;
    std::string column_text(int column) const;

private:
    void check_bind(int rc, int index);
    void close() noexcept;

    sqlite3_stmt* stmt_ = nullptr;
    const Database* db_ = nullptr;
};

// BEGIN in the constructor, ROLLBACK in the destructor unless commit() ran.
class Transaction {
public:
    // IMMEDIATE takes the write lock at once, so a busy database fails here
    // (after busy_timeout) rather than halfway through the work.
    explicit Transaction(Database& db);
    ~Transaction();
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;

    void commit();

private:
    Database& db_;
    bool done_ = false;
};

}  // namespace fieldlink::gateway::sqlite

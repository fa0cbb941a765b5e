#include "fieldlink/gateway/forward/postgres_upstream.hpp"

#include <libpq-fe.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string_view>
#include <system_error>
#include <tuple>
#include <utility>
#include <vector>

#include "fieldlink/gateway/forward/postgres_copy.hpp"
#include "fieldlink/gateway/forward/upstream_codec.hpp"

namespace fieldlink::gateway {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Beyond statement_timeout, how long the client waits for a silent server.
constexpr int kGraceMs = 5000;
// How long a failed send may spend rolling back before it drops the connection.
constexpr int kRollbackLimitMs = 5000;
constexpr std::size_t kCopyPiece = 1 << 20;
constexpr std::string_view kStaging = "pg_temp.fieldlink_staging";
constexpr std::string_view kStagingColumns =
    "device, incarnation, seq, boot, channel, mono_ms, unix_ms, value, received_unix_ms";
constexpr std::uint16_t kStagingFieldCount = 9;
constexpr std::uint16_t kDirectFieldCount = 10;  // gateway first, then the staging columns
constexpr std::string_view kUniqueViolation = "23505";

enum class FailureKind {
    Sql,          // the server refused a statement; the connection may still be good
    Connection,   // the connection failed or the exchange went off the protocol
    Timeout,      // the server stayed silent past the limit
    Interrupted,  // close() was called
};

class PgFailure : public std::runtime_error {
public:
    PgFailure(FailureKind kind, const std::string& what, std::string sqlstate = {})
        : std::runtime_error(what), kind_(kind), sqlstate_(std::move(sqlstate)) {}
    FailureKind kind() const noexcept { return kind_; }
    const std::string& sqlstate() const noexcept { return sqlstate_; }

private:
    FailureKind kind_;
    std::string sqlstate_;
};

struct ResultDeleter {
    void operator()(PGresult* result) const noexcept { PQclear(result); }
};
using Result = std::unique_ptr<PGresult, ResultDeleter>;

// libpq messages end with a newline and may span lines; one line for logs.
std::string one_line(std::string_view text) {
    std::string out;
    std::size_t start = 0;
    while (start <= text.size()) {
        std::size_t end = text.find('\n', start);
        if (end == std::string_view::npos) end = text.size();
        std::string_view line = text.substr(start, end - start);
        while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
            line.remove_suffix(1);
        while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
        // PQERRORS_VERBOSE (used while connecting, for the SQLSTATE) adds the server's source location.
        if (!line.empty() && !line.starts_with("LOCATION:")) {
            if (!out.empty()) out += "; ";
            out += line;
        }
        start = end + 1;
    }
    return out;
}

// The SQLSTATE in a verbose connection error ("FATAL:  28P01: password ..."), the last one if
// several hosts were tried; empty when the server sent none.
std::string sqlstate_in_message(std::string_view text) {
    std::string found;
    for (std::size_t at = text.find(":  "); at != std::string_view::npos; at = text.find(":  ", at + 1)) {
        const std::size_t code = at + 3;
        if (code + 6 > text.size() || text[code + 5] != ':') continue;
        const bool valid = std::all_of(text.begin() + static_cast<std::ptrdiff_t>(code),
                                       text.begin() + static_cast<std::ptrdiff_t>(code + 5),
                                       [](char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z'); });
        if (valid) found = std::string(text.substr(code, 5));
    }
    return found;
}

// What no retry fixes: invalid authorization (28), a missing database (3D) or schema (3F),
// syntax or access rule violations such as a missing permission or a table of another shape (42).
bool retryable_sqlstate(std::string_view sqlstate) {
    const std::string_view cls = sqlstate.substr(0, std::min<std::size_t>(2, sqlstate.size()));
    return !(cls == "28" || cls == "3D" || cls == "3F" || cls == "42");
}

std::string quote_identifier(std::string_view name) {
    // Appended rather than "\"" + name + "\"": GCC 12 at -O3 warns (-Wrestrict) about the latter.
    std::string quoted;
    quoted.reserve(name.size() + 2);
    quoted += '"';
    quoted += name;
    quoted += '"';
    return quoted;
}

bool is_plain_identifier(std::string_view name) {
    if (name.empty() || name.size() > 63) return false;
    if (!(name[0] == '_' || (name[0] >= 'a' && name[0] <= 'z'))) return false;
    return std::all_of(name.begin(), name.end(),
                       [](char c) { return c == '_' || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); });
}

// "central.readings" -> {"central", "readings"}; "readings" -> {"", "readings"}.
std::pair<std::string_view, std::string_view> split_table(std::string_view table) {
    const std::size_t dot = table.find('.');
    if (dot == std::string_view::npos) return {{}, table};
    return {table.substr(0, dot), table.substr(dot + 1)};
}

std::string migration_sql(int version, const std::string& table, const std::string& schema_table) {
    switch (version) {
        case 1:
            return "CREATE TABLE IF NOT EXISTS " + schema_table +
                   " (component text PRIMARY KEY, version integer NOT NULL);"
                   " CREATE TABLE IF NOT EXISTS " +
                   table +
                   " (gateway text NOT NULL, device text NOT NULL, incarnation bigint NOT NULL,"
                   " seq bigint NOT NULL, boot bigint NOT NULL, channel smallint NOT NULL,"
                   " mono_ms bigint NOT NULL, unix_ms bigint, value double precision NOT NULL,"
                   " received_unix_ms bigint NOT NULL, stored_at timestamptz NOT NULL DEFAULT now(),"
                   " PRIMARY KEY (gateway, device, incarnation, seq))";
        default: throw std::logic_error("no migration to schema version " + std::to_string(version));
    }
}

std::uint64_t parse_count(const char* text) {
    std::uint64_t value = 0;
    const char* end = text + std::strlen(text);
    if (std::from_chars(text, end, value).ptr != end || text == end) {
        throw PgFailure(FailureKind::Connection, std::string("unexpected command count '") + text + "'");
    }
    return value;
}

}  // namespace

// One libpq connection driven in non-blocking mode: every wait polls the socket
// and the upstream's eventfd with a limit, so nothing blocks past the timeouts
// and close() from another thread ends a wait at once.
class PostgresUpstream::Session {
public:
    Session(PGconn* conn, int wake_fd) : conn_(conn), wake_fd_(wake_fd) {}
    ~Session() { PQfinish(conn_); }
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    PGconn* conn() const noexcept { return conn_; }
    bool healthy() const noexcept { return PQstatus(conn_) == CONNECTION_OK; }

    // Waits end at `deadline`, and after `idle_ms` (-1: no limit) without the socket becoming ready.
    void limit(Clock::time_point deadline, int idle_ms) {
        deadline_ = deadline;
        idle_ms_ = idle_ms;
    }

    // Waits until the socket is ready for `events`; returns the ready events.
    short wait(short events) {
        const auto idle_end = idle_ms_ >= 0 ? Clock::now() + milliseconds(idle_ms_) : Clock::time_point::max();
        const auto until = std::min(deadline_, idle_end);
        for (;;) {
            const int socket = PQsocket(conn_);
            if (socket < 0) throw PgFailure(FailureKind::Connection, "connection has no socket");
            int timeout_ms = -1;
            if (until != Clock::time_point::max()) {
                const auto left = until - Clock::now();
                if (left <= Clock::duration::zero()) {
                    throw PgFailure(FailureKind::Timeout, "timed out waiting for the server");
                }
                const auto left_ms = std::chrono::ceil<milliseconds>(left).count();
                timeout_ms = static_cast<int>(std::min<decltype(left_ms)>(left_ms, INT_MAX));
            }
            pollfd fds[2] = {{socket, events, 0}, {wake_fd_, POLLIN, 0}};
            const int ready = ::poll(fds, 2, timeout_ms);
            if (ready < 0) {
                if (errno == EINTR) continue;
                throw PgFailure(FailureKind::Connection, std::string("poll: ") + std::strerror(errno));
            }
            if (fds[1].revents != 0) throw PgFailure(FailureKind::Interrupted, "interrupted by close()");
            if (fds[0].revents != 0) return fds[0].revents;
        }
    }

    void consume() {
        if (PQconsumeInput(conn_) == 0) throw connection_failure();
    }

    // Sends what libpq has buffered.
    void flush() {
        for (;;) {
            const int pending = PQflush(conn_);
            if (pending == 0) return;
            if (pending < 0) throw connection_failure();
            if ((wait(POLLIN | POLLOUT) & POLLIN) != 0) consume();
        }
    }

    void send_query(const std::string& sql) {
        if (PQsendQuery(conn_, sql.c_str()) == 0) throw connection_failure();
        flush();
    }

    // The next result of the running query; null when it is complete.
    Result next() {
        while (PQisBusy(conn_) != 0) {
            wait(POLLIN);
            consume();
        }
        return Result(PQgetResult(conn_));
    }

    // The next result, which must have `status`; `what` names the statement for errors.
    Result expect(ExecStatusType status, std::string_view what) {
        Result result = next();
        if (!result) {
            throw PgFailure(FailureKind::Connection, std::string(what) + ": no result from the server");
        }
        if (PQresultStatus(result.get()) != status) throw failure_of(result.get(), what);
        return result;
    }

    void expect_end(std::string_view what) {
        if (Result extra = next()) {
            throw PgFailure(FailureKind::Connection, std::string(what) + ": unexpected further result " +
                                                         PQresStatus(PQresultStatus(extra.get())));
        }
    }

    // Runs `sql`; every result must be `status` (statements may be several); returns the first.
    Result exec(const std::string& sql, ExecStatusType status = PGRES_COMMAND_OK) {
        send_query(sql);
        Result first = expect(status, sql.substr(0, sql.find(' ')));
        while (Result more = next()) {
            if (PQresultStatus(more.get()) != status) throw failure_of(more.get(), sql.substr(0, sql.find(' ')));
        }
        return first;
    }

    void put_copy(const std::string& data) {
        std::size_t offset = 0;
        while (offset < data.size()) {
            const std::size_t piece = std::min(kCopyPiece, data.size() - offset);
            const int queued = PQputCopyData(conn_, data.data() + offset, static_cast<int>(piece));
            if (queued < 0) throw copy_failure();
            if (queued == 0) {
                flush();  // buffers full: wait until the socket takes more
                continue;
            }
            offset += piece;
        }
        flush();
    }

    void end_copy(const char* error_message) {
        for (;;) {
            const int queued = PQputCopyEnd(conn_, error_message);
            if (queued < 0) throw copy_failure();
            if (queued == 1) break;
            flush();
        }
        flush();
    }

    // After a failure mid-query: reads the remaining results (ending a COPY that is still
    // open) until the connection is idle again, then rolls an open transaction back.
    void settle() {
        while (Result result = next()) {
            const ExecStatusType status = PQresultStatus(result.get());
            if (status == PGRES_COPY_IN) {
                end_copy("chunk abandoned by the gateway");
            } else if (status == PGRES_COPY_OUT || status == PGRES_COPY_BOTH) {
                throw PgFailure(FailureKind::Connection, "unexpected COPY OUT while settling");
            }
        }
        const PGTransactionStatusType state = PQtransactionStatus(conn_);
        if (state == PQTRANS_INTRANS || state == PQTRANS_INERROR) exec("ROLLBACK");
    }

    // libpq refuses more COPY data once it has read the server's error (a statement timeout,
    // a bad value): report that error rather than libpq's "no COPY in progress".
    PgFailure copy_failure() {
        if (healthy()) {
            if (Result result = next(); result && PQresultStatus(result.get()) == PGRES_FATAL_ERROR) {
                return failure_of(result.get(), "COPY");
            }
        }
        return connection_failure();
    }

    PgFailure connection_failure() const {
        return PgFailure(FailureKind::Connection, "connection failed: " + one_line(PQerrorMessage(conn_)));
    }

    PgFailure failure_of(const PGresult* result, std::string_view what) const {
        const ExecStatusType status = PQresultStatus(result);
        if (status != PGRES_FATAL_ERROR && status != PGRES_NONFATAL_ERROR) {
            return PgFailure(FailureKind::Connection, std::string(what) + ": unexpected result " + PQresStatus(status));
        }
        const char* sqlstate = PQresultErrorField(result, PG_DIAG_SQLSTATE);
        const char* primary = PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY);
        const char* detail = PQresultErrorField(result, PG_DIAG_MESSAGE_DETAIL);
        if (sqlstate == nullptr) {
            // Raised by libpq itself: the connection is gone or unusable.
            std::string text = one_line(PQresultErrorMessage(result));
            if (text.empty()) text = one_line(PQerrorMessage(conn_));
            return PgFailure(FailureKind::Connection, std::string(what) + ": connection failed: " + text);
        }
        std::string text = std::string(what) + ": SQLSTATE " + sqlstate + ": " + (primary ? primary : "");
        if (detail != nullptr) text += std::string(" (") + detail + ")";
        return PgFailure(FailureKind::Sql, text, sqlstate);
    }

private:
    PGconn* conn_;
    int wake_fd_;
    Clock::time_point deadline_ = Clock::time_point::max();
    int idle_ms_ = -1;
};

std::optional<std::string> PostgresUpstream::validate(const PostgresUpstreamSettings& settings) {
    if (settings.name.empty()) return "upstream name is empty";
    if (!is_valid_gateway_id(settings.gateway_id)) {
        return "gateway id '" + settings.gateway_id + "' is not 1 to 64 of A-Z a-z 0-9 _ -";
    }
    const auto [schema, table] = split_table(settings.table);
    if (!is_plain_identifier(table) ||
        (settings.table.find('.') != std::string::npos && !is_plain_identifier(schema))) {
        return "table '" + settings.table +
               "' is not a lowercase plain SQL identifier ([a-z_][a-z0-9_]*, at most 63), optionally "
               "schema-qualified (schema.table)";
    }
    if (table == "fieldlink_schema") return "table 'fieldlink_schema' is fieldlink's schema version table";
    if (schema.starts_with("pg_")) return "table '" + settings.table + "': schema names pg_* are reserved";
    if (settings.connect_timeout_s < 1 || settings.connect_timeout_s > 3600) {
        return "connect_timeout_s " + std::to_string(settings.connect_timeout_s) + " is not within 1..3600";
    }
    if (settings.statement_timeout_ms < 0 || settings.statement_timeout_ms > 86'400'000) {
        return "statement_timeout_ms " + std::to_string(settings.statement_timeout_ms) + " is not within 0..86400000";
    }
    if (settings.window < 1 || settings.window > 16) {
        return "window " + std::to_string(settings.window) + " is not within 1..16";
    }
    if (settings.conninfo.empty()) return "conninfo is empty";
    char* error = nullptr;
    PQconninfoOption* options = PQconninfoParse(settings.conninfo.c_str(), &error);
    if (options == nullptr) {
        std::string text = error != nullptr ? one_line(error) : "out of memory";
        PQfreemem(error);
        return "conninfo: " + text;
    }
    PQconninfoFree(options);
    return std::nullopt;
}

PostgresUpstream::PostgresUpstream(PostgresUpstreamSettings settings) : settings_(std::move(settings)) {
    if (auto problem = validate(settings_)) {
        throw std::invalid_argument("postgres upstream '" + settings_.name + "': " + *problem);
    }
    const auto [schema, table] = split_table(settings_.table);
    const std::string prefix = schema.empty() ? std::string() : quote_identifier(schema) + ".";
    table_sql_ = prefix + quote_identifier(table);
    schema_sql_ = prefix + quote_identifier("fieldlink_schema");
    // The gateway id is validated to [A-Za-z0-9_-]: safe inside a literal as it is.
    direct_sql_ = "BEGIN ISOLATION LEVEL READ COMMITTED; COPY " + table_sql_ + " (gateway, " +
                  std::string(kStagingColumns) + ") FROM STDIN (FORMAT binary); COMMIT";
    chunk_sql_ = "BEGIN ISOLATION LEVEL READ COMMITTED; COPY " + std::string(kStaging) + " (" +
                 std::string(kStagingColumns) + ") FROM STDIN (FORMAT binary); INSERT INTO " + table_sql_ +
                 " (gateway, " + std::string(kStagingColumns) + ") SELECT '" + settings_.gateway_id + "', " +
                 std::string(kStagingColumns) + " FROM " + std::string(kStaging) +
                 " ORDER BY device COLLATE \"C\", incarnation, seq"
                 " ON CONFLICT (gateway, device, incarnation, seq) DO NOTHING;"
                 " COMMIT";
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
    if (settings_.window > 1) sender_ = std::thread([this] { run_sender(); });
}

PostgresUpstream::~PostgresUpstream() {
    close();
    if (sender_.joinable()) {
        {
            std::lock_guard lock(queue_mutex_);
            stopping_ = true;
        }
        queue_cv_.notify_all();
        sender_.join();
    }
    ::close(wake_fd_);
}

void PostgresUpstream::close() noexcept {
    const std::uint64_t one = 1;
    [[maybe_unused]] const auto written = ::write(wake_fd_, &one, sizeof(one));
    drop_queued("the upstream was closed");
    {
        std::lock_guard lock(mutex_);
        session_.reset();
        connected_ = false;
        std::uint64_t drained = 0;
        [[maybe_unused]] const auto read = ::read(wake_fd_, &drained, sizeof(drained));
    }
    drop_queued("the upstream was closed");  // what was queued meanwhile
}

void PostgresUpstream::drop_queued(const std::string& why) noexcept {
    if (!sender_.joinable()) return;
    std::deque<Queued> dropped;
    std::unique_lock lock(queue_mutex_);
    dropped.swap(queue_);
    lock.unlock();
    for (Queued& queued : dropped) {
        ChunkResult result;
        result.error = why;
        try {
            queued.done(std::move(result));
        } catch (...) {
            // `done` must not throw; nothing else is ours to do about it.
        }
    }
    if (std::this_thread::get_id() == sender_.get_id()) return;
    lock.lock();
    queue_cv_.wait(lock, [this] { return !sending_; });
}

void PostgresUpstream::run_sender() {
    std::unique_lock lock(queue_mutex_);
    for (;;) {
        queue_cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stopping, and nothing left
        // Every chunk that queued up while the last transaction ran goes in the next one.
        std::vector<Queued> group;
        while (!queue_.empty()) {
            group.push_back(std::move(queue_.front()));
            queue_.pop_front();
        }
        sending_ = true;
        lock.unlock();
        Chunk merged;
        std::size_t rows = 0;
        for (const Queued& queued : group) rows += queued.chunk.rows.size();
        if (group.size() > 1) {
            merged.sequence = group.front().chunk.sequence;
            merged.rows.reserve(rows);
            for (const Queued& queued : group) {
                merged.rows.insert(merged.rows.end(), queued.chunk.rows.begin(), queued.chunk.rows.end());
            }
        }
        ChunkResult result;
        {
            std::lock_guard session_lock(mutex_);
            result = send_locked(group.size() > 1 ? merged : group.front().chunk);
        }
        // Each chunk gets the outcome; bytes in proportion to its rows, the transactions to the first.
        std::uint64_t bytes_left = result.bytes_sent;
        for (std::size_t i = 0; i < group.size(); ++i) {
            ChunkResult own = result;
            own.batches = i == 0 ? result.batches : 0;
            own.bytes_sent =
                i + 1 == group.size() || rows == 0 ? bytes_left : result.bytes_sent * group[i].chunk.rows.size() / rows;
            bytes_left -= own.bytes_sent;
            try {
                group[i].done(std::move(own));
            } catch (...) {
                // `done` must not throw; nothing else is ours to do about it.
            }
        }
        group.clear();  // whatever the `done`s captured goes before the chunks count as finished
        lock.lock();
        sending_ = false;
        queue_cv_.notify_all();
    }
}

void PostgresUpstream::connect() {
    drop_queued("the connection was replaced by a new connect()");
    std::lock_guard lock(mutex_);
    connected_ = false;
    session_.reset();
    const std::string prefix = "postgres upstream '" + settings_.name + "': ";
    const auto deadline = Clock::now() + std::chrono::seconds(settings_.connect_timeout_s);

    // Keywords before dbname are defaults the conninfo may override; those after it win.
    const std::string tcp_user_timeout = std::to_string(settings_.statement_timeout_ms + kGraceMs);
    const std::string connect_timeout = std::to_string(settings_.connect_timeout_s);
    std::vector<const char*> keywords;
    std::vector<const char*> values;
    if (settings_.statement_timeout_ms > 0) {
        keywords.push_back("tcp_user_timeout");
        values.push_back(tcp_user_timeout.c_str());
    }
    keywords.insert(keywords.end(), {"dbname", "connect_timeout", "fallback_application_name", nullptr});
    values.insert(values.end(), {settings_.conninfo.c_str(), connect_timeout.c_str(), "fieldlink-gateway", nullptr});

    PGconn* raw = PQconnectStartParams(keywords.data(), values.data(), 1);
    if (raw == nullptr) throw UpstreamError(prefix + "connect: out of memory");
    auto session = std::make_unique<Session>(raw, wake_fd_);
    // Notices ("relation already exists, skipping") would go to stderr.
    PQsetNoticeProcessor(
        raw, [](void*, const char*) {}, nullptr);
    // Verbose while connecting: the server's SQLSTATE appears in the message (libpq keeps
    // no result for a failed connection), which tells a refused login from a lost server.
    PQsetErrorVerbosity(raw, PQERRORS_VERBOSE);
    session->limit(deadline, -1);

    const auto connect_failed = [&] {
        const std::string message = one_line(PQerrorMessage(raw));
        const bool needs_password = PQconnectionNeedsPassword(raw) != 0;
        const std::string sqlstate = sqlstate_in_message(message);
        std::string text = prefix + "connect failed: " + message;
        if (needs_password) {
            text +=
                " (the server wants a password and none was given: set password= in conninfo, "
                "PGPASSWORD, or a password file via passfile=/PGPASSFILE/~/.pgpass)";
        }
        return UpstreamError(text, !needs_password && retryable_sqlstate(sqlstate));
    };

    try {
        PostgresPollingStatusType polling = PGRES_POLLING_WRITING;
        if (PQstatus(raw) == CONNECTION_BAD) throw connect_failed();
        while (polling != PGRES_POLLING_OK) {
            if (polling == PGRES_POLLING_FAILED) throw connect_failed();
            session->wait(polling == PGRES_POLLING_READING ? POLLIN : POLLOUT);
            polling = PQconnectPoll(raw);
        }
    } catch (const PgFailure& failure) {
        if (failure.kind() == FailureKind::Timeout) {
            throw UpstreamError(prefix + "connect timed out after " + connect_timeout + " s");
        }
        throw UpstreamError(prefix + "connect: " + failure.what());
    }
    PQsetErrorVerbosity(raw, PQERRORS_DEFAULT);
    if (PQsetnonblocking(raw, 1) != 0) throw connect_failed();

    try {
        set_up(*session);
    } catch (const PgFailure& failure) {
        if (failure.kind() == FailureKind::Timeout) {
            throw UpstreamError(prefix + "connect timed out after " + connect_timeout +
                                " s while setting up the session");
        }
        throw UpstreamError(prefix + failure.what(), retryable_sqlstate(failure.sqlstate()));
    }
    session->limit(Clock::time_point::max(),
                   settings_.statement_timeout_ms > 0 ? settings_.statement_timeout_ms + kGraceMs : -1);
    session_ = std::move(session);
    careful_ = true;  // the first chunk may be a resend of one that committed unseen
    direct_refused_ = false;
    connected_ = true;
}

void PostgresUpstream::set_up(Session& session) {
    session.exec("SET statement_timeout = " + std::to_string(settings_.statement_timeout_ms));
    Result sync = session.exec("SELECT current_setting('synchronous_commit')", PGRES_TUPLES_OK);
    if (PQntuples(sync.get()) == 1 && std::string_view(PQgetvalue(sync.get(), 0, 0)) == "off") {
        session.exec("SET synchronous_commit = on");
    }
    migrate(session);
    session.exec(
        "CREATE TEMP TABLE IF NOT EXISTS fieldlink_staging (device text NOT NULL,"
        " incarnation bigint NOT NULL, seq bigint NOT NULL, boot bigint NOT NULL,"
        " channel smallint NOT NULL, mono_ms bigint NOT NULL, unix_ms bigint,"
        " value double precision NOT NULL, received_unix_ms bigint NOT NULL) ON COMMIT DELETE ROWS");
    // A chunk's INSERT with no rows: checks now, not at the first chunk, that the table has the
    // columns, the key for ON CONFLICT and the INSERT permission (SQLSTATE class 42 otherwise).
    session.exec("INSERT INTO " + table_sql_ + " (gateway, " + std::string(kStagingColumns) + ") SELECT '" +
                 settings_.gateway_id + "', " + std::string(kStagingColumns) + " FROM " + std::string(kStaging) +
                 " ON CONFLICT (gateway, device, incarnation, seq) DO NOTHING");
}

void PostgresUpstream::migrate(Session& session) {
    const std::string component = "'" + settings_.table + "'";  // validated: no quotes inside
    session.exec("BEGIN ISOLATION LEVEL READ COMMITTED");
    try {
        session.exec("SELECT pg_advisory_xact_lock(" + std::to_string(kSchemaLockKey) + ")", PGRES_TUPLES_OK);
        // to_regclass takes the quoted name as text: '"central"."fieldlink_schema"'.
        Result present = session.exec(
            "SELECT to_regclass('" + schema_sql_ + "') IS NOT NULL, to_regclass('" + table_sql_ + "') IS NOT NULL",
            PGRES_TUPLES_OK);
        const bool have_schema_table = std::string_view(PQgetvalue(present.get(), 0, 0)) == "t";
        const bool have_table = std::string_view(PQgetvalue(present.get(), 0, 1)) == "t";
        int version = 0;
        if (have_schema_table) {
            Result row =
                session.exec("SELECT version FROM " + schema_sql_ + " WHERE component = " + component, PGRES_TUPLES_OK);
            if (PQntuples(row.get()) == 1) version = std::atoi(PQgetvalue(row.get(), 0, 0));
        }
        if (version > kSchemaVersion) {
            throw PgFailure(FailureKind::Sql,
                            "table " + settings_.table + " has schema version " + std::to_string(version) + " (in " +
                                schema_sql_ + "), newer than the " + std::to_string(kSchemaVersion) +
                                " this gateway knows: upgrade the gateway",
                            "42000");  // class 42: not retryable
        }
        if (version == kSchemaVersion && have_table) {
            session.exec("COMMIT");
            return;
        }
        for (int next = std::max(version, 0) + 1; next <= kSchemaVersion; ++next) {
            session.exec(migration_sql(next, table_sql_, schema_sql_));
        }
        if (version == kSchemaVersion) {
            // The version row is there but the table was dropped: version 1 creates it again.
            session.exec(migration_sql(kSchemaVersion, table_sql_, schema_sql_));
        }
        session.exec("INSERT INTO " + schema_sql_ + " (component, version) VALUES (" + component + ", " +
                     std::to_string(kSchemaVersion) +
                     ") ON CONFLICT (component) DO UPDATE SET version = excluded.version");
        Result commit = session.exec("COMMIT");
        if (std::string_view(PQcmdStatus(commit.get())) != "COMMIT") {
            throw PgFailure(FailureKind::Sql, std::string("schema COMMIT ended as ") + PQcmdStatus(commit.get()));
        }
    } catch (const PgFailure& failure) {
        if (failure.kind() == FailureKind::Sql && session.healthy()) {
            try {
                session.settle();
            } catch (const PgFailure&) {
                // The connection is dropped by the caller anyway.
            }
        }
        throw;
    }
}

void PostgresUpstream::send(Chunk chunk, Done done) {
    if (!done) done = [](ChunkResult) {};
    if (settings_.window > 1 && connected_) {
        {
            std::lock_guard lock(queue_mutex_);
            queue_.push_back({std::move(chunk), std::move(done)});
        }
        queue_cv_.notify_all();
        return;
    }
    ChunkResult result;
    {
        std::lock_guard lock(mutex_);
        result = send_locked(chunk);
    }
    done(std::move(result));
}

namespace {

// One row's fields after the leading gateway column (the staging table's columns).
void add_row_fields(CopyBinaryWriter& copy, const ForwardRow& row) {
    copy.add_text(row.device);
    copy.add_int64(std::bit_cast<std::int64_t>(row.incarnation));
    copy.add_int64(std::bit_cast<std::int64_t>(row.seq));
    copy.add_int64(static_cast<std::int64_t>(row.boot));
    copy.add_int16(static_cast<std::int16_t>(row.channel));
    copy.add_int64(std::bit_cast<std::int64_t>(row.mono_ms));
    if (row.unix_ms) {
        copy.add_int64(*row.unix_ms);
    } else {
        copy.add_null();
    }
    copy.add_float8(row.value);
    copy.add_int64(row.received_unix_ms);
}

}  // namespace

ChunkResult PostgresUpstream::send_locked(const Chunk& chunk) {
    ChunkResult result;
    if (chunk.rows.empty()) {
        last_duplicates_ = 0;
        result.confirmed = true;
        return result;
    }
    if (!session_ || !connected_) {
        result.error = "not connected";
        return result;
    }
    Session& session = *session_;
    // The chunk failed: rolled back when the connection still allows it, else dropped.
    const auto fail = [&](const PgFailure& failure) {
        result.confirmed = false;
        result.error = failure.what();
        if (failure.kind() == FailureKind::Timeout) {
            result.error += " (nothing for " + std::to_string(settings_.statement_timeout_ms + kGraceMs) + " ms)";
        }
        connected_ = false;
        bool keep = false;
        if ((failure.kind() == FailureKind::Sql || failure.kind() == FailureKind::Connection) && session.healthy()) {
            try {
                session.limit(Clock::now() + milliseconds(kRollbackLimitMs), -1);
                session.settle();
                keep = session.healthy() && PQtransactionStatus(session.conn()) == PQTRANS_IDLE;
            } catch (const PgFailure&) {
                keep = false;
            }
        }
        if (!keep) session_.reset();  // connect() opens a fresh connection either way
        return result;
    };

    if (!careful_ && !direct_refused_) {
        // Fast path: the rows straight into the table, in key order (the lock order of the
        // INSERT below, so that two writers of one gateway id wait rather than deadlock).
        std::vector<const ForwardRow*> order;
        order.reserve(chunk.rows.size());
        for (const ForwardRow& row : chunk.rows) order.push_back(&row);
        std::sort(order.begin(), order.end(), [](const ForwardRow* a, const ForwardRow* b) {
            const auto key = [](const ForwardRow* r) {
                return std::tuple(std::string_view(r->device), std::bit_cast<std::int64_t>(r->incarnation),
                                  std::bit_cast<std::int64_t>(r->seq));
            };
            return key(a) < key(b);
        });
        CopyBinaryWriter copy;
        for (const ForwardRow* row : order) {
            copy.begin_row(kDirectFieldCount);
            copy.add_text(settings_.gateway_id);
            add_row_fields(copy, *row);
        }
        const std::string data = copy.finish();
        result.bytes_sent += data.size();
        result.batches += 1;
        try {
            session.send_query(direct_sql_);
            session.expect(PGRES_COMMAND_OK, "BEGIN");
            session.expect(PGRES_COPY_IN, "COPY");
            session.put_copy(data);
            session.end_copy(nullptr);
            Result copied = session.expect(PGRES_COMMAND_OK, "COPY");
            if (parse_count(PQcmdTuples(copied.get())) != chunk.rows.size()) {
                throw PgFailure(FailureKind::Connection, std::string("COPY took ") + PQcmdTuples(copied.get()) +
                                                             " rows of " + std::to_string(chunk.rows.size()));
            }
            Result committed = session.expect(PGRES_COMMAND_OK, "COMMIT");
            if (std::string_view(PQcmdStatus(committed.get())) != "COMMIT") {
                throw PgFailure(FailureKind::Sql, std::string("COMMIT ended as ") + PQcmdStatus(committed.get()));
            }
            session.expect_end("COMMIT");
            last_duplicates_ = 0;
            result.confirmed = true;
            return result;
        } catch (const PgFailure& failure) {
            // A key already in the table (or twice in the chunk): nothing of this transaction
            // stays; the chunk goes again through the staging table and ON CONFLICT DO NOTHING.
            // So it does when the table takes INSERT but not COPY (class 0A: row-level security;
            // 42: a view with an INSERT rule), and then every chunk does on this connection.
            const std::string& state = failure.sqlstate();
            const bool refused =
                failure.kind() == FailureKind::Sql && (state.starts_with("0A") || state.starts_with("42"));
            bool retry = refused || (failure.kind() == FailureKind::Sql && state == kUniqueViolation);
            if (retry) {
                try {
                    session.settle();
                    retry = session.healthy() && PQtransactionStatus(session.conn()) == PQTRANS_IDLE;
                } catch (const PgFailure&) {
                    retry = false;
                }
            }
            if (!retry) return fail(failure);
            if (refused) direct_refused_ = true;
        }
    }

    CopyBinaryWriter copy;
    for (const ForwardRow& row : chunk.rows) {
        copy.begin_row(kStagingFieldCount);
        add_row_fields(copy, row);
    }
    const std::string data = copy.finish();
    result.bytes_sent += data.size();
    result.batches += 1;

    try {
        session.send_query(chunk_sql_);
        session.expect(PGRES_COMMAND_OK, "BEGIN");
        session.expect(PGRES_COPY_IN, "COPY");
        session.put_copy(data);
        session.end_copy(nullptr);
        Result copied = session.expect(PGRES_COMMAND_OK, "COPY");
        if (parse_count(PQcmdTuples(copied.get())) != chunk.rows.size()) {
            throw PgFailure(FailureKind::Connection, std::string("COPY took ") + PQcmdTuples(copied.get()) +
                                                         " rows of " + std::to_string(chunk.rows.size()));
        }
        Result inserted = session.expect(PGRES_COMMAND_OK, "INSERT");
        Result committed = session.expect(PGRES_COMMAND_OK, "COMMIT");
        // A COMMIT of a failed transaction "succeeds" with the tag ROLLBACK.
        if (std::string_view(PQcmdStatus(committed.get())) != "COMMIT") {
            throw PgFailure(FailureKind::Sql, std::string("COMMIT ended as ") + PQcmdStatus(committed.get()));
        }
        session.expect_end("COMMIT");
        const std::uint64_t fresh = parse_count(PQcmdTuples(inserted.get()));
        const std::uint64_t duplicates = chunk.rows.size() - std::min<std::uint64_t>(fresh, chunk.rows.size());
        last_duplicates_ = duplicates;
        total_duplicates_ += duplicates;
        // Resent rows come in runs (a chunk committed unseen, a second writer): stay on this
        // path until a chunk had none.
        careful_ = duplicates > 0;
        result.confirmed = true;
        return result;
    } catch (const PgFailure& failure) {
        return fail(failure);
    }
}

}  // namespace fieldlink::gateway

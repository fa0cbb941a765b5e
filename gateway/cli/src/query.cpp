// fieldlink query and fieldlink export: readings selected by device, channel
// and time, streamed in id order a page at a time.
//
// Each page is one short read transaction (WAL: the gateway writes meanwhile
// and never waits for us); pages continue after the last id seen, and the
// selection ends at the newest id that existed when the command started, so a
// reading stored during the run is not shown (run again to see it). A reading
// deleted by retention between two pages is simply not shown.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "cli.hpp"
#include "database.hpp"
#include "output.hpp"
#include "time_text.hpp"

namespace fieldlink::cli {
namespace {

using gateway::sqlite::Statement;

constexpr int kPageRows = 5000;

struct Selection {
    std::string device;  // glob
    std::vector<std::int64_t> channels;
    std::string since;
    std::string until;
    bool by_received = false;
    std::int64_t limit = 0;  // 0: all
};

void add_selection_options(CLI::App& command, Selection& s) {
    command.add_option("-d,--device", s.device, "only devices matching this glob (* ? [abc]; case-sensitive)")
        ->type_name("GLOB");
    command.add_option("-c,--channel", s.channels, "only this channel (repeat for several)")
        ->type_name("N")
        ->check(CLI::Range(0, 255));
    command
        .add_option("--since", s.since,
                    "readings at or after this time (inclusive); TIME is " + std::string(kTimeExpected))
        ->type_name("TIME");
    command.add_option("--until", s.until, "readings before this time (exclusive)")->type_name("TIME");
    command.add_flag("--received", s.by_received,
                     "filter --since/--until on the gateway's received time instead of the reading's own time "
                     "(unix_ms); without it, unsynchronised readings (no unix_ms yet) never match a time filter");
    command.add_option("-n,--limit", s.limit, "at most N rows (0: all)")->type_name("N")->check(CLI::NonNegativeNumber);
}

std::int64_t time_arg(const std::string& text, const char* option, std::int64_t now) {
    const auto ms = parse_time(text, now);
    if (!ms) throw CliError(kExitUsage, fmt::format("{}: must be {}, got \"{}\"", option, kTimeExpected, text));
    return *ms;
}

// The WHERE clause after "id > ?1 AND id <= ?2", and its parameters from ?3 on.
class Filter {
public:
    explicit Filter(const Selection& s) {
        const std::int64_t now = now_unix_ms();
        const char* time_column = s.by_received ? "received_unix_ms" : "unix_ms";
        if (!s.device.empty()) add_text("device GLOB ?", s.device);
        if (!s.channels.empty()) {
            std::string in;
            for (const std::int64_t c : s.channels) in += fmt::format("{}{}", in.empty() ? "" : ",", c);
            sql_ += fmt::format(" AND channel IN ({})", in);
        }
        if (!s.since.empty()) add_int(fmt::format("{} >= ?", time_column), time_arg(s.since, "--since", now));
        if (!s.until.empty()) add_int(fmt::format("{} < ?", time_column), time_arg(s.until, "--until", now));
    }
    const std::string& sql() const { return sql_; }
    void bind(Statement& statement) const {
        for (std::size_t i = 0; i < texts_.size(); ++i) {
            if (texts_[i]) {
                statement.bind_text(static_cast<int>(i) + 3, *texts_[i]);
            } else {
                statement.bind_int64(static_cast<int>(i) + 3, ints_[i]);
            }
        }
    }

private:
    void add_text(const std::string& clause, const std::string& value) {
        sql_ += fmt::format(" AND {}{}", clause, texts_.size() + 3);
        texts_.emplace_back(value);
        ints_.push_back(0);
    }
    void add_int(const std::string& clause, std::int64_t value) {
        sql_ += fmt::format(" AND {}{}", clause, texts_.size() + 3);
        texts_.emplace_back(std::nullopt);
        ints_.push_back(value);
    }

    std::string sql_;
    std::vector<std::optional<std::string>> texts_;
    std::vector<std::int64_t> ints_;
};

std::int64_t last_id(gateway::sqlite::Database& db) {
    Statement statement = db.prepare("SELECT COALESCE(MAX(id), 0) FROM readings");
    statement.step();
    return statement.column_int64(0);
}

// Streams the selection; calls progress(rows so far) after each page.
template <typename Progress>
std::uint64_t stream(ReadOnlyDatabase& database, const Selection& s, ReadingWriter& writer, Progress progress) {
    const Filter filter(s);
    const std::int64_t end_id = last_id(database.db());
    Statement page = database.db().prepare(
        "SELECT id, device, incarnation, seq, boot, channel, mono_ms, unix_ms, value, received_unix_ms FROM readings"
        " WHERE id > ?1 AND id <= ?2" +
        filter.sql() + fmt::format(" ORDER BY id LIMIT {}", kPageRows));
    std::int64_t after = 0;
    std::uint64_t rows = 0;
    const auto limit = s.limit > 0 ? static_cast<std::uint64_t>(s.limit) : std::numeric_limits<std::uint64_t>::max();
    writer.begin();
    Reading r;
    while (rows < limit) {
        page.reset();
        page.bind_int64(1, after).bind_int64(2, end_id);
        filter.bind(page);
        int in_page = 0;
        while (rows < limit && page.step()) {
            r.id = page.column_int64(0);
            r.device = page.column_text(1);
            r.incarnation = static_cast<std::uint64_t>(page.column_int64(2));
            r.seq = page.column_int64(3);
            r.boot = page.column_int64(4);
            r.channel = page.column_int64(5);
            r.mono_ms = page.column_int64(6);
            r.unix_ms = page.column_is_null(7) ? std::nullopt : std::optional(page.column_int64(7));
            r.value = page.column_double(8);
            r.received_unix_ms = page.column_int64(9);
            writer.row(r);
            after = r.id;
            ++rows;
            ++in_page;
        }
        page.reset();  // ends this page's read transaction
        progress(rows);
        if (in_page < kPageRows) break;
    }
    writer.end();
    return rows;
}

std::uint64_t count(ReadOnlyDatabase& database, const Selection& s) {
    const Filter filter(s);
    Statement statement =
        database.db().prepare("SELECT COUNT(*) FROM readings WHERE id > ?1 AND id <= ?2" + filter.sql());
    statement.bind_int64(1, 0).bind_int64(2, last_id(database.db()));
    filter.bind(statement);
    statement.step();
    auto n = static_cast<std::uint64_t>(statement.column_int64(0));
    if (s.limit > 0 && n > static_cast<std::uint64_t>(s.limit)) n = static_cast<std::uint64_t>(s.limit);
    return n;
}

Format format_named(const std::string& name) {
    if (name == "table") return Format::Table;
    if (name == "csv") return Format::Csv;
    if (name == "json") return Format::Json;
    return Format::Ndjson;
}

bool ends_with(const std::string& text, std::string_view suffix) {
    return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// A progress line on a terminal: "[=====>    ]  52%  520000/1000000 rows  12.3 MB  ETA 4 s".
class ProgressBar {
public:
    ProgressBar(std::uint64_t total, const Sink& sink) : total_(total), sink_(sink), start_(Clock::now()) {}
    void update(std::uint64_t rows, bool last = false) {
        const auto now = Clock::now();
        if (!last && now - shown_ < std::chrono::milliseconds(200)) return;
        shown_ = now;
        constexpr int kWidth = 30;
        const double done = total_ == 0 ? 1.0 : static_cast<double>(rows) / static_cast<double>(total_);
        const int filled = static_cast<int>(done * kWidth);
        const double elapsed = std::chrono::duration<double>(now - start_).count();
        std::string eta = "--";
        if (rows > 0 && elapsed > 0) {
            eta = format_duration(static_cast<std::int64_t>(
                elapsed * 1000 * static_cast<double>(total_ - std::min(rows, total_)) / static_cast<double>(rows)));
        }
        std::fprintf(stderr, "\r[%s%s] %3d%%  %llu/%llu rows  %.1f MB  %s %s\033[K", std::string(filled, '=').c_str(),
                     std::string(kWidth - filled, ' ').c_str(), static_cast<int>(done * 100),
                     static_cast<unsigned long long>(rows), static_cast<unsigned long long>(total_),
                     static_cast<double>(sink_.bytes_out()) / 1e6, last ? "took" : "ETA",
                     last ? format_duration(static_cast<std::int64_t>(elapsed * 1000)).c_str() : eta.c_str());
        if (last) std::fputc('\n', stderr);
        std::fflush(stderr);
    }

private:
    using Clock = std::chrono::steady_clock;
    std::uint64_t total_;
    const Sink& sink_;
    Clock::time_point start_;
    Clock::time_point shown_{};
};

}  // namespace

void add_query_commands(CLI::App& app, const Globals& globals) {
    {
        auto selection = std::make_shared<Selection>();
        auto format = std::make_shared<std::string>();
        CLI::App* query = app.add_subcommand("query", "print stored readings, oldest first (insertion order)");
        add_selection_options(*query, *selection);
        auto* group = query->add_option_group("format", "output format (default: table on a terminal, else CSV)");
        group->add_flag_callback(
            "--table", [format] { *format = "table"; }, "aligned table (fixed column widths)");
        group->add_flag_callback(
            "--csv", [format] { *format = "csv"; }, "CSV with a header line (RFC 4180, CRLF)");
        group->add_flag_callback(
            "--json", [format] { *format = "json"; }, "one JSON array of objects");
        group->add_flag_callback(
            "--ndjson", [format] { *format = "ndjson"; }, "one JSON object per line");
        group->require_option(0, 1);
        query->footer(
            "Columns: id (insertion order), device, incarnation (16 hex digits), seq, boot, channel, mono_ms,\n"
            "unix_ms (empty/null while unsynchronised), time (unix_ms as ISO 8601 UTC), value, received_unix_ms.\n"
            "value is the shortest text that reads back as the same double; JSON writes infinities as "
            "\"inf\"/\"-inf\".\n"
            "Time filters: --since is inclusive, --until exclusive: [since, until).");
        query->callback([&globals, selection, format] {
            const std::string chosen = !format->empty() ? *format : (::isatty(STDOUT_FILENO) ? "table" : "csv");
            ReadOnlyDatabase database(database_path(globals), globals.busy_timeout_ms);
            const auto sink = stdout_sink();
            const auto writer = make_reading_writer(format_named(chosen), *sink);
            stream(database, *selection, *writer, [](std::uint64_t) {});
            sink->finish();
        });
    }
    {
        auto selection = std::make_shared<Selection>();
        auto output = std::make_shared<std::string>();
        auto format = std::make_shared<std::string>();
        auto level = std::make_shared<int>(3);
        auto progress = std::make_shared<std::string>("auto");
        CLI::App* exp = app.add_subcommand("export", "write the same selection as query to a file (CSV or NDJSON)");
        add_selection_options(*exp, *selection);
        exp->add_option("-o,--output", *output, "the file to write; a name ending in .zst is compressed with zstd")
            ->type_name("FILE")
            ->required();
        exp->add_option("-f,--format", *format, "csv or ndjson (default: from the file name: .ndjson/.jsonl, else csv)")
            ->type_name("FORMAT")
            ->check(CLI::IsMember({"csv", "ndjson"}));
        exp->add_option("--zstd-level", *level, "zstd compression level")
            ->type_name("N")
            ->check(CLI::Range(1, 19))
            ->capture_default_str();
        exp->add_option("--progress", *progress,
                        "progress bar on stderr: auto (when stderr is a terminal), always, never")
            ->type_name("WHEN")
            ->check(CLI::IsMember({"auto", "always", "never"}))
            ->capture_default_str();
        exp->footer(
            "The file is written as FILE.part and renamed when complete. Columns as for query.\n"
            "Time filters: --since is inclusive, --until exclusive: [since, until).");
        exp->callback([&globals, selection, output, format, level, progress] {
            const bool compressed = ends_with(*output, ".zst");
            const std::string plain = compressed ? output->substr(0, output->size() - 4) : *output;
            std::string chosen = *format;
            if (chosen.empty()) chosen = ends_with(plain, ".ndjson") || ends_with(plain, ".jsonl") ? "ndjson" : "csv";
            ReadOnlyDatabase database(database_path(globals), globals.busy_timeout_ms);
            const bool show = *progress == "always" || (*progress == "auto" && ::isatty(STDERR_FILENO));
            std::unique_ptr<Sink> sink = file_sink(*output);
            if (compressed) sink = zstd_sink(std::move(sink), *level);
            const auto writer = make_reading_writer(format_named(chosen), *sink);
            std::uint64_t rows = 0;
            if (show) {
                ProgressBar bar(count(database, *selection), *sink);
                rows = stream(database, *selection, *writer, [&bar](std::uint64_t n) { bar.update(n); });
                sink->finish();
                bar.update(rows, true);
            } else {
                rows = stream(database, *selection, *writer, [](std::uint64_t) {});
                sink->finish();
            }
            std::fprintf(stderr, "fieldlink export: %llu rows to %s (%s%s)\n", static_cast<unsigned long long>(rows),
                         output->c_str(), chosen.c_str(), compressed ? ", zstd" : "");
        });
    }
}

}  // namespace fieldlink::cli

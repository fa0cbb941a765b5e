// Prometheus text exposition format 0.0.4, written by hand: metric families
// (HELP and TYPE lines, then their samples), label values escaped, numbers in
// the format's spelling (+Inf, -Inf, NaN), histograms with cumulative buckets.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>

namespace fieldlink::gateway::http {

inline constexpr std::string_view kExpositionContentType = "text/plain; version=0.0.4; charset=utf-8";

struct Label {
    std::string_view name;
    std::string_view value;
};

// What one histogram holds: per-bucket counts (not cumulative) for `bounds`,
// then one more for +Inf; `count` is their sum.
struct HistogramData {
    std::span<const double> bounds;
    std::span<const std::uint64_t> buckets;  // bounds.size() + 1
    std::uint64_t count = 0;
    double sum = 0;
};

class Exposition {
public:
    // Starts a family. `type`: "counter", "gauge", "histogram" or "untyped".
    // Throws std::invalid_argument for a name that is not a metric name, a
    // counter not ending in _total, an unknown type, or a family named twice.
    void family(std::string_view name, std::string_view type, std::string_view help);

    // One sample of the current family (its name, or name_bucket/_sum/_count
    // for a histogram). Throws std::invalid_argument for a bad label name.
    void sample(std::string_view name, std::initializer_list<Label> labels, double value);
    void sample(std::string_view name, std::initializer_list<Label> labels, std::uint64_t value);
    void sample(std::string_view name, std::initializer_list<Label> labels, std::int64_t value);

    // A family and its only sample.
    void gauge(std::string_view name, std::string_view help, double value);
    void counter(std::string_view name, std::string_view help, std::uint64_t value);

    // The _bucket (cumulative, le="..." after `labels`), _sum and _count
    // samples of one histogram of the current family `name`.
    void histogram_samples(std::string_view name, std::initializer_list<Label> labels, const HistogramData& data);

    const std::string& text() const noexcept { return text_; }

private:
    void sample_text(std::string_view name, std::initializer_list<Label> labels, const Label* extra,
                     std::string_view value);

    std::string text_;
    std::string families_;  // names started so far, '\n'-separated
};

// The format's spelling of a sample value: "+Inf", "-Inf", "NaN", else the
// shortest decimal that reads back to the same double.
std::string format_value(double value);
// A label value with \, " and line feed escaped.
std::string escape_label_value(std::string_view value);
bool is_metric_name(std::string_view name) noexcept;
bool is_label_name(std::string_view name) noexcept;

}  // namespace fieldlink::gateway::http

#include "fieldlink/gateway/http/exposition.hpp"

#include <fmt/format.h>

#include <cmath>
#include <stdexcept>

namespace fieldlink::gateway::http {
namespace {

bool name_char(char c, bool first, bool colon) {
    const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':');
    return letter || (!first && c >= '0' && c <= '9');
}

bool valid_name(std::string_view name, bool colon) {
    if (name.empty()) return false;
    for (std::size_t i = 0; i < name.size(); ++i) {
        if (!name_char(name[i], i == 0, colon)) return false;
    }
    return true;
}

// HELP text: only \ and line feed are escaped.
std::string escape_help(std::string_view help) {
    std::string out;
    for (const char c : help) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out += c;
        }
    }
    return out;
}

bool ends_with(std::string_view text, std::string_view tail) {
    return text.size() >= tail.size() && text.substr(text.size() - tail.size()) == tail;
}

}  // namespace

bool is_metric_name(std::string_view name) noexcept { return valid_name(name, true); }

bool is_label_name(std::string_view name) noexcept {
    return valid_name(name, false) && !(name.size() >= 2 && name[0] == '_' && name[1] == '_');
}

std::string format_value(double value) {
    if (std::isnan(value)) return "NaN";
    if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
    return fmt::format("{}", value);
}

std::string escape_label_value(std::string_view value) {
    std::string out;
    out.reserve(value.size());
    for (const char c : value) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '"') {
            out += "\\\"";
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out += c;
        }
    }
    return out;
}

void Exposition::family(std::string_view name, std::string_view type, std::string_view help) {
    if (!is_metric_name(name)) throw std::invalid_argument(fmt::format("'{}' is not a metric name", name));
    if (type != "counter" && type != "gauge" && type != "histogram" && type != "untyped") {
        throw std::invalid_argument(fmt::format("metric '{}': unknown type '{}'", name, type));
    }
    if (type == "counter" && !ends_with(name, "_total")) {
        throw std::invalid_argument(fmt::format("counter '{}' must end in _total", name));
    }
    if (("\n" + families_).find(fmt::format("\n{}\n", name)) != std::string::npos) {
        throw std::invalid_argument(fmt::format("metric family '{}' written twice", name));
    }
    families_ += fmt::format("{}\n", name);
    text_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, escape_help(help), name, type);
}

void Exposition::sample_text(std::string_view name, std::initializer_list<Label> labels, const Label* extra,
                             std::string_view value) {
    if (!is_metric_name(name)) throw std::invalid_argument(fmt::format("'{}' is not a metric name", name));
    text_ += name;
    if (labels.size() != 0 || extra != nullptr) {
        text_ += '{';
        bool first = true;
        auto add = [&](const Label& label) {
            if (!is_label_name(label.name)) {
                throw std::invalid_argument(fmt::format("metric '{}': '{}' is not a label name", name, label.name));
            }
            text_ += fmt::format("{}{}=\"{}\"", first ? "" : ",", label.name, escape_label_value(label.value));
            first = false;
        };
        for (const Label& label : labels) add(label);
        if (extra != nullptr) add(*extra);
        text_ += '}';
    }
    text_ += ' ';
    text_ += value;
    text_ += '\n';
}

void Exposition::sample(std::string_view name, std::initializer_list<Label> labels, double value) {
    sample_text(name, labels, nullptr, format_value(value));
}

void Exposition::sample(std::string_view name, std::initializer_list<Label> labels, std::uint64_t value) {
    sample_text(name, labels, nullptr, fmt::to_string(value));
}

void Exposition::sample(std::string_view name, std::initializer_list<Label> labels, std::int64_t value) {
    sample_text(name, labels, nullptr, fmt::to_string(value));
}

void Exposition::gauge(std::string_view name, std::string_view help, double value) {
    family(name, "gauge", help);
    sample(name, {}, value);
}

void Exposition::counter(std::string_view name, std::string_view help, std::uint64_t value) {
    family(name, "counter", help);
    sample(name, {}, value);
}

void Exposition::histogram_samples(std::string_view name, std::initializer_list<Label> labels,
                                   const HistogramData& data) {
    if (data.buckets.size() != data.bounds.size() + 1) {
        throw std::invalid_argument(
            fmt::format("histogram '{}': {} buckets for {} bounds", name, data.buckets.size(), data.bounds.size()));
    }
    const std::string bucket = fmt::format("{}_bucket", name);
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < data.buckets.size(); ++i) {
        cumulative += data.buckets[i];
        const std::string le = i < data.bounds.size() ? format_value(data.bounds[i]) : std::string("+Inf");
        const Label le_label{"le", le};
        sample_text(bucket, labels, &le_label, fmt::to_string(cumulative));
    }
    sample_text(fmt::format("{}_sum", name), labels, nullptr, format_value(data.sum));
    // _count equals the +Inf bucket, as the format requires.
    sample_text(fmt::format("{}_count", name), labels, nullptr, fmt::to_string(cumulative));
}

}  // namespace fieldlink::gateway::http

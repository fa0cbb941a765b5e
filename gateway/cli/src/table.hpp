// A small aligned table for summaries (devices, status, dead letters): the
// rows are few, so widths come from the contents.
#pragma once

#include <string>
#include <vector>

namespace fieldlink::cli {

class TextTable {
public:
    explicit TextTable(std::vector<std::string> header) : rows_{std::move(header)} {}
    void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
    std::size_t size() const { return rows_.size() - 1; }
    // Numbers (a cell starting with a digit or '-' followed by a digit) align right.
    std::string text() const {
        std::vector<std::size_t> widths;
        for (const auto& row : rows_) {
            if (widths.size() < row.size()) widths.resize(row.size());
            for (std::size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
        }
        std::string out;
        for (std::size_t r = 0; r < rows_.size(); ++r) {
            std::string line;
            for (std::size_t i = 0; i < rows_[r].size(); ++i) {
                const std::string& cell = rows_[r][i];
                const bool numeric =
                    r > 0 && !cell.empty() &&
                    (std::isdigit(static_cast<unsigned char>(cell[0])) ||
                     (cell.size() > 1 && cell[0] == '-' && std::isdigit(static_cast<unsigned char>(cell[1]))));
                const std::string pad(widths[i] - cell.size(), ' ');
                if (i > 0) line += "  ";
                line += numeric ? pad + cell : cell + (i + 1 < rows_[r].size() ? pad : "");
            }
            out += line + "\n";
        }
        return out;
    }

private:
    std::vector<std::vector<std::string>> rows_;
};

}  // namespace fieldlink::cli

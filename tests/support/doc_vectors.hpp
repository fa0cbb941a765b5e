// Hex test vectors read straight from a document: a line `<!-- vector: NAME -->`,
// then a fenced block of hex bytes. The documents are the contract; the tests
// check the code against them, never against a copy.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace fieldlink::test {

using Bytes = std::vector<std::uint8_t>;

inline std::map<std::string, Bytes> load_doc_vectors(const std::string& path) {
    std::ifstream doc(path);
    EXPECT_TRUE(doc.good()) << "cannot open " << path;
    std::map<std::string, Bytes> vectors;
    const std::string marker = "<!-- vector: ";
    std::string line;
    while (std::getline(doc, line)) {
        if (line.rfind(marker, 0) != 0) continue;
        const std::string name = line.substr(marker.size(), line.find(" -->") - marker.size());
        std::getline(doc, line);  // opening fence
        Bytes bytes;
        while (std::getline(doc, line) && line.rfind("```", 0) != 0) {
            std::istringstream hex(line);
            std::string byte;
            while (hex >> byte) bytes.push_back(static_cast<std::uint8_t>(std::stoul(byte, nullptr, 16)));
        }
        vectors[name] = bytes;
    }
    return vectors;
}

// The vector `name` of the document at `path` (loaded once per path); empty, and a failure, when absent.
inline Bytes doc_vector(const std::string& path, const std::string& name) {
    static std::map<std::string, std::map<std::string, Bytes>> cache;
    auto loaded = cache.find(path);
    if (loaded == cache.end()) loaded = cache.emplace(path, load_doc_vectors(path)).first;
    const auto found = loaded->second.find(name);
    EXPECT_NE(found, loaded->second.end()) << path << " has no vector " << name;
    return found == loaded->second.end() ? Bytes{} : found->second;
}

}  // namespace fieldlink::test

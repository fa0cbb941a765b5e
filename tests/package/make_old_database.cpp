// Writes a gateway database as an earlier release left it: the schema up to
// VERSION and one reading of device "before-upgrade" (incarnation 0xb0, seq 1,
// watermark 1). The install test upgrades a package over it.
//
//   fieldlink-make-old-database PATH VERSION
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "fieldlink/gateway/store/sqlite.hpp"
#include "fieldlink/gateway/store/sqlite_store.hpp"

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: %s PATH VERSION\n", argv[0]);
        return 2;
    }
    try {
        const int version = std::stoi(argv[2]);
        fieldlink::gateway::sqlite::Database db(argv[1]);
        fieldlink::gateway::migrate(db, version);
        db.exec(
            "INSERT INTO readings (device, incarnation, seq, boot, channel, mono_ms, unix_ms, value,"
            " received_unix_ms) VALUES ('before-upgrade', 176, 1, 0, 2, 1000, NULL, 21.5, 5)");
        db.exec(
            "INSERT INTO watermarks (device, incarnation, watermark, updated_unix_ms)"
            " VALUES ('before-upgrade', 176, 1, 5)");
        std::printf("schema v%d\n", fieldlink::gateway::schema_version(db));
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "make_old_database: %s\n", e.what());
        return 1;
    }
}

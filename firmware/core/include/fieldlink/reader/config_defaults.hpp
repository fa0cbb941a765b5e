// Compile-time limits of the reader firmware, in one place. A product
// overrides them with -D flags or with a header named by FIELDLINK_CONFIG_FILE;
// never edit this file for one product.
#pragma once

// The MQTT client's limits; this also reads FIELDLINK_CONFIG_FILE (once).
#include "fieldlink/mqtt/config_defaults.hpp"

// Sensor channels the reader can sample (1 .. 256). Bounds the schedule table
// (12 bytes per channel).
#ifndef FIELDLINK_READER_MAX_CHANNELS
#define FIELDLINK_READER_MAX_CHANNELS 16
#endif

// Batches that may be in flight (published, not yet covered by a commit ack)
// at once (1 .. FIELDLINK_MQTT_MAX_PENDING_PUBACKS). Bounds the window table
// (24 bytes per entry).
#ifndef FIELDLINK_READER_MAX_WINDOW
#define FIELDLINK_READER_MAX_WINDOW 16
#endif

// Size of the MQTT receive buffer that ReaderMemory provides (>= 64). Only
// commit acks (32-byte payloads) arrive; larger packets are skipped.
#ifndef FIELDLINK_READER_RX_BUFFER
#define FIELDLINK_READER_RX_BUFFER 256
#endif

#if FIELDLINK_READER_MAX_WINDOW > FIELDLINK_MQTT_MAX_PENDING_PUBACKS
#error "FIELDLINK_READER_MAX_WINDOW must not exceed FIELDLINK_MQTT_MAX_PENDING_PUBACKS"
#endif

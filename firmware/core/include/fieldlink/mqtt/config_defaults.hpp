// Compile-time limits of the MQTT client, in one place. A product overrides
// them with -D flags or with a header named by FIELDLINK_CONFIG_FILE; never
// edit this file for one product.
#pragma once

#ifdef FIELDLINK_CONFIG_FILE
#include FIELDLINK_CONFIG_FILE
#endif

// Outgoing QoS 1 publishes that may await their PUBACK at once (1 .. 65535).
// Bounds the MQTT session's packet-id table (2 bytes each).
#ifndef FIELDLINK_MQTT_MAX_PENDING_PUBACKS
#define FIELDLINK_MQTT_MAX_PENDING_PUBACKS 16
#endif

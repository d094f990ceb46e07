#pragma once
// One header field, shared by the HTTP/1 parser and the flow records: a dissector hands the
// parsed list on to its record as it is, without copying names and values into another type.
#include <string>

namespace tlsgate::inspect {

struct HeaderField {
    std::string name;   // HTTP/1: as received; HTTP/2: lower case as on the wire
    std::string value;  // HTTP/1: surrounding whitespace trimmed; "<redacted>" once recorded
                        // for the configured sensitive names
};

}  // namespace tlsgate::inspect

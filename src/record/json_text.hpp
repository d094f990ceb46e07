#pragma once
// JSON text for the flow store's header lists, written straight into a string instead of through
// a nlohmann::json value: the writer thread stores every flow's two header lists, and building a
// DOM for them (an allocation per name and value, then a dump) cost a third of its time. The
// output is byte for byte what nlohmann's dump(-1, ' ', false, error_handler_t::replace) writes,
// so stored rows do not depend on which of the two wrote them.
#include <string>
#include <string_view>
#include <vector>

#include "inspect/exchange.hpp"

namespace tlsgate::record {

// Appends `text` as a quoted JSON string. Invalid UTF-8 becomes U+FFFD, as nlohmann's replace
// handler does it.
void append_json_string(std::string& out, std::string_view text);

// Appends [["name","value"],...].
void append_headers_json(std::string& out, const std::vector<inspect::HeaderField>& headers);

// Appends [100,103] (no spaces).
void append_int_array_json(std::string& out, const std::vector<int>& values);

}  // namespace tlsgate::record

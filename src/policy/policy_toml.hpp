#pragma once
// The policy TOML format read from an already-parsed table, for the main config file, which
// embeds the policy under a [policy] table. This header pulls in toml++; only config code should
// include it (everything else uses parse_policy_toml / load_policy_file from policy.hpp).
#include <string>
#include <string_view>

#include <toml++/toml.h>

#include "common/result.hpp"
#include "policy/policy.hpp"

namespace tlsgate::policy {

// `table` holds the keys of the policy format (default, rules); `base_dir` resolves relative
// hosts_file paths. Never throws.
Result<PolicyConfig> policy_from_toml(const toml::table& table, const std::string& base_dir);

// toml::parse with the guards every TOML file from outside needs: a size cap, and a cheap lexical
// check that rejects deep nesting (brackets, or dotted keys with very many parts) before toml++
// builds and later recursively destroys such a tree. `source_name` (a path, or a word such as
// "policy") prefixes error messages. Never throws.
Result<toml::table> parse_toml_bounded(std::string_view text, std::string_view source_name);

}  // namespace tlsgate::policy

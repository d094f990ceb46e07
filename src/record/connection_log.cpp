#include "record/connection_log.hpp"

#include <nlohmann/json.hpp>

#include "common/thread_name.hpp"

namespace tlsgate::record {
namespace {

std::string iso8601(std::chrono::system_clock::time_point when) {
    const auto since_epoch = when.time_since_epoch();
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
    const auto micros =
        std::chrono::duration_cast<std::chrono::microseconds>(since_epoch - seconds).count();
    const std::time_t time = seconds.count();
    std::tm utc{};
    gmtime_r(&time, &utc);
    char buffer[40];
    const std::size_t length = std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%S", &utc);
    char fraction[32];
    std::snprintf(fraction, sizeof fraction, ".%06lldZ", static_cast<long long>(micros));
    return std::string(buffer, length) + fraction;
}

void put_if(nlohmann::json& object, const char* key, const std::string& value) {
    if (!value.empty()) {
        object[key] = value;
    }
}

nlohmann::json tls_leg(const TlsLeg& leg) {
    nlohmann::json object = nlohmann::json::object();
    put_if(object, "version", leg.version);
    put_if(object, "alpn", leg.alpn);
    put_if(object, "cipher", leg.cipher);
    if (leg.resumed) {
        object["resumed"] = true;
    }
    return object;
}

nlohmann::json mail_session(const MailRecord& mail) {
    nlohmann::json object = {{"protocol", mail.protocol}};
    if (mail.protocol == "ftp-data") {
        object["control_connection"] = mail.ftp_control_id;
        return object;
    }
    object["upgrade"] = mail.upgrade;
    object["upgrade_offered"] = mail.upgrade_offered;
    object["observed_inside_tls"] = mail.observed_inside_tls;
    object["state"] = mail.state;
    put_if(object, "dialogue_error", mail.dialogue_error);
    put_if(object, "greeting_host", mail.greeting_host);
    nlohmann::json commands = nlohmann::json::object();
    for (const auto& [verb, count] : mail.commands) {
        commands[verb] = count;
    }
    object["commands"] = std::move(commands);
    if (mail.other_commands != 0) {
        object["other_commands"] = mail.other_commands;
    }
    if (mail.protocol == "smtp") {
        object["envelope"] = {{"mail_from", mail.mail_from},
                              {"rcpt_to", mail.rcpt_to},
                              {"sender_domains", mail.sender_domains}};
        object["messages"] = mail.messages;
        object["message_bytes"] = mail.message_bytes;
        object["message_sizes"] = mail.message_sizes;
    }
    if (mail.protocol == "ftp") {
        object["ftp_data_endpoints"] = mail.ftp_data_endpoints;
    }
    return object;
}

}  // namespace

std::string to_json_line(const ConnectionRecord& record) {
    nlohmann::json line;
    line["ts"] = iso8601(record.start);
    line["id"] = record.id;
    line["duration_ms"] = record.duration_ms;
    line["listener"] = record.listener;
    line["client"] = record.client_address;
    put_if(line, "proxied_by", record.proxied_by);
    put_if(line, "destination", record.destination);
    put_if(line, "destination_address", record.destination_address);
    put_if(line, "sni", record.sni);
    line["kind"] = record.kind;
    line["action"] = record.action;
    put_if(line, "rule", record.rule);
    put_if(line, "reason", record.reason);
    if (!record.client_tls.version.empty()) {
        line["client_tls"] = tls_leg(record.client_tls);
    }
    if (!record.upstream_tls.version.empty()) {
        line["upstream_tls"] = tls_leg(record.upstream_tls);
    }
    if (!record.upstream_sha256.empty()) {
        line["upstream_cert"] = {{"subject", record.upstream_subject},
                                 {"issuer", record.upstream_issuer},
                                 {"sha256", record.upstream_sha256}};
    }
    put_if(line, "upstream_verify_error", record.upstream_verify_error);
    put_if(line, "upstream_aia_fetched", record.upstream_aia_fetched);
    put_if(line, "upstream_aia_error", record.upstream_aia_error);
    put_if(line, "upstream_error_action", record.upstream_error_action);
    put_if(line, "client_rejection", record.client_rejection);
    if (record.http_status) {
        line["http_status"] = *record.http_status;
    }
    if (record.http_requests != 0) {
        line["http_requests"] = record.http_requests;
    }
    line["bytes_up"] = record.bytes_client_to_server;
    line["bytes_down"] = record.bytes_server_to_client;
    if (record.mail) {
        line["mail"] = mail_session(*record.mail);
    }
    put_if(line, "error", record.error);
    // Names and paths come from the network: replace invalid UTF-8 instead of throwing.
    return line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

Result<std::unique_ptr<ConnectionLog>> ConnectionLog::open(const std::filesystem::path& path,
                                                           std::size_t queue_capacity,
                                                           Reporter report) {
    auto file = AppendFile::open(path, "connection log");
    if (!file) {
        return make_error(file.error());
    }
    return std::unique_ptr<ConnectionLog>(
        new ConnectionLog(std::move(*file), queue_capacity, std::move(report)));
}

ConnectionLog::ConnectionLog(std::unique_ptr<AppendFile> file, std::size_t capacity,
                             Reporter report)
    : file_(std::move(file)), capacity_(capacity), report_(std::move(report)) {
    writer_ = std::thread([this] {
        name_this_thread("tg-conn-log");
        run();
    });
}

ConnectionLog::~ConnectionLog() {
    close();
}
std::size_t ConnectionLog::submit(std::vector<ConnectionRecord>& records) {
    std::size_t queued = 0;
    {
        std::lock_guard lock(mutex_);
        for (ConnectionRecord& record : records) {
            if (stopping_ || queue_.size() >= capacity_) {
                break;
            }
            queue_.push_back(std::move(record));
            ++queued;
        }
    }
    dropped_.fetch_add(records.size() - queued, std::memory_order_relaxed);
    records.clear();
    if (queued > 0) {
        wake_.notify_one();
    }
    return queued;
}

bool ConnectionLog::submit(ConnectionRecord record) {
    {
        std::lock_guard lock(mutex_);
        if (stopping_ || queue_.size() >= capacity_) {
            dropped_.fetch_add(1, std::memory_order_relaxed);
            return false;
        }
        queue_.push_back(std::move(record));
    }
    wake_.notify_one();
    return true;
}

void ConnectionLog::close() {
    {
        std::lock_guard lock(mutex_);
        if (stopping_ && !writer_.joinable()) {
            return;
        }
        stopping_ = true;
    }
    wake_.notify_one();
    if (writer_.joinable()) {
        writer_.join();
    }
}

void ConnectionLog::run() {
    std::deque<ConnectionRecord> batch;
    for (;;) {
        {
            std::unique_lock lock(mutex_);
            wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
            if (queue_.empty() && stopping_) {
                return;
            }
            batch.swap(queue_);
        }
        std::string text;
        for (const auto& record : batch) {
            text += to_json_line(record);
        }
        file_->write_all(text, report_);
        written_.fetch_add(batch.size(), std::memory_order_relaxed);
        batch.clear();
    }
}

}  // namespace tlsgate::record

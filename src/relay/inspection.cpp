#include "relay/inspection.hpp"

#include "record/chunk_writer.hpp"
#include "record/flow_writer.hpp"
#include "relay/connection.hpp"

namespace tlsgate::relay {
namespace {

// Packets are handed to the pcap writer in chunks of about this size (and at the end), so a busy
// connection costs one queue operation per 64 KiB, not per read.
constexpr std::size_t kPcapChunkBytes = 64 * 1024;

std::optional<record::Endpoint> endpoint_of(const asio::ip::tcp::socket& socket, bool remote) {
    std::error_code error;
    const auto endpoint = remote ? socket.remote_endpoint(error) : socket.local_endpoint(error);
    if (error) {
        return std::nullopt;
    }
    auto address = IpAddress::parse(endpoint.address().to_string());
    if (!address) {
        return std::nullopt;
    }
    return record::Endpoint{*address, endpoint.port()};
}

}  // namespace

ConnectionInspector::ConnectionInspector(Connection& connection, std::string_view alpn,
                                         std::string_view scheme)
    : connection_(connection) {
    const auto& recording = connection.worker.shared.recording;
    if (recording.flows != nullptr) {
        dissector_ = std::make_unique<inspect::SniffingDissector>(recording.dissector_for(scheme),
                                                                  *this, alpn);
    }
    if (recording.pcap != nullptr) {
        auto client = endpoint_of(connection.client, true);
        auto server = endpoint_of(connection.upstream, true);
        if (client && server) {
            pcap_flow_.emplace(*client, *server);
            pcap_flow_->open(inspect::Clock::now(), pcap_pending_);
        }
    }
}

ConnectionInspector::~ConnectionInspector() {
    finish();
}

void ConnectionInspector::observe(inspect::Side side, std::span<const char> bytes) {
    const auto now = inspect::Clock::now();
    if (dissector_ && !dissector_->failed()) {
        dissector_->feed(side, bytes, now);
        if (dissector_->failed() && !failure_counted_) {
            failure_counted_ = true;
            ++connection_.worker.counters.dissection_failed;
        }
    }
    if (pcap_flow_) {
        pcap_flow_->data(side, bytes, now, pcap_pending_);
        flush_pcap(false);
    }
}

void ConnectionInspector::end(inspect::Side side) {
    const auto now = inspect::Clock::now();
    if (dissector_ && !dissector_->failed()) {
        dissector_->end(side, now);
    }
    if (pcap_flow_) {
        pcap_flow_->close(side, now, pcap_pending_);
    }
}

void ConnectionInspector::finish() {
    if (finished_) {
        return;
    }
    finished_ = true;
    const auto now = inspect::Clock::now();
    if (dissector_) {
        dissector_->finish(now);
    }
    if (pcap_flow_) {
        // Sides that never closed cleanly end with a reset, as the relay ended them.
        pcap_flow_->reset(inspect::Side::server, now, pcap_pending_);
        flush_pcap(true);
    }
}

void ConnectionInspector::on_exchange(inspect::HttpExchange&& exchange) {
    auto& worker = connection_.worker;
    if (worker.shared.recording.flows == nullptr) {
        return;
    }
    const auto& record = connection_.record;
    // Built in place from its parts: no empty record first and a move-assignment after.
    worker.outbox.add(record::FlowRecord{.connection_id = record.id,
                                         .client_address = record.client_address,
                                         .server_address = record.destination_address,
                                         .sni = record.sni,
                                         .client_tls_version = record.client_tls.version,
                                         .upstream_tls_version = record.upstream_tls.version,
                                         .alpn = record.client_tls.alpn,
                                         .exchange = std::move(exchange)});
}

void ConnectionInspector::flush_pcap(bool force) {
    auto* pcap = connection_.worker.shared.recording.pcap;
    if (pcap_pending_.empty() || (!force && pcap_pending_.size() < kPcapChunkBytes)) {
        return;
    }
    pcap->submit(std::move(pcap_pending_));
    pcap_pending_ = std::string();
}

}  // namespace tlsgate::relay

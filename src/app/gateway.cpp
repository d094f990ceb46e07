#include "app/gateway.hpp"

#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>

#include <asio/post.hpp>
#include <atomic>
#include <chrono>
#include <thread>

#include "app/control_socket.hpp"
#include "app/metrics.hpp"
#include "app/passthrough_command.hpp"
#include "app/privileges.hpp"
#include "app/recording.hpp"
#include "common/thread_name.hpp"
#include "listen/listeners.hpp"
#include "pki/ca.hpp"
#include "pki/mint.hpp"
#include "record/connection_log.hpp"
#include "relay/portal_answer.hpp"
#include "relay/worker_context.hpp"
#include "tls/contexts.hpp"
#include "tls/key_log.hpp"

namespace tlsgate::app {
namespace {

std::string default_ca_subject() {
    char host[256] = "localhost";
    gethostname(host, sizeof host - 1);
    // Each installation's CA is its own: the host name and creation time tell them apart.
    return "CN=tlsgate CA " + std::string(host) + " " +
           pki::format_time_utc(std::time(nullptr)).substr(0, 10) + ",O=tlsgate interception";
}

// One CA's pair of files in `dir`, created with `subject` when neither exists.
Result<pki::CertificateAuthority> load_or_create_ca(const std::filesystem::path& dir,
                                                    pki::CaFileNames files,
                                                    const std::string& subject,
                                                    std::string_view what) {
    const bool has_cert = std::filesystem::exists(dir / files.cert);
    const bool has_key = std::filesystem::exists(dir / files.key);
    if (!has_cert && !has_key) {
        auto ca = pki::create_ca(subject, pki::KeyType::ec_p256);
        if (!ca) {
            return make_error("cannot create the " + std::string(what) + ": " + ca.error());
        }
        if (auto saved = pki::save_ca(*ca, dir, false, files); !saved) {
            return make_error(saved.error());
        }
        spdlog::info("created a new {} for this installation in {}", what, dir.string());
        return ca;
    }
    // A key others can read is a key others may have copied: refuse rather than intercept with it.
    if (auto problem = pki::key_file_permission_warning(dir / files.key)) {
        return make_error("refusing to start: " + *problem);
    }
    return pki::load_ca(dir, files);
}

// A CA whose key stays in a token is never created implicitly: the operator chose the key.
Result<pki::CertificateAuthority> load_ca_in_token(const std::filesystem::path& dir,
                                                   const pki::TokenKeySpec& token_key) {
    const std::string shown_uri = pki::redacted_pkcs11_uri(token_key.uri);
    if (!std::filesystem::exists(dir / pki::kCaCertFile)) {
        return make_error("no CA certificate " + (dir / pki::kCaCertFile).string() +
                          " for the key in the token; create it with `tlsgate ca init --dir " +
                          dir.string() + " --key '" + shown_uri + "'`");
    }
    auto ca = pki::load_ca_with_token_key(dir, token_key);
    if (!ca) {
        return make_error("cannot load the CA: " + ca.error());
    }
    if (std::filesystem::exists(dir / pki::kCaKeyFile)) {
        spdlog::warn("{} is ignored: the CA key is in the PKCS#11 token",
                     (dir / pki::kCaKeyFile).string());
    }
    spdlog::info("CA key in a PKCS#11 token: {}", shown_uri);
    return ca;
}

// The real CA and, beside it, the untrusted one that signs stand-ins for refused upstream
// certificates. The untrusted CA is only useful while nothing trusts it: it must never be the
// real CA under another name.
Result<void> load_certificate_authorities(const std::filesystem::path& dir,
                                          const pki::TokenKeySpec& token_key,
                                          relay::SharedState& shared) {
    auto ca = token_key.uri.empty() ? load_or_create_ca(dir, {}, default_ca_subject(), "CA")
                                    : load_ca_in_token(dir, token_key);
    if (!ca) {
        return make_error(ca.error());
    }
    auto untrusted = load_or_create_ca(dir, pki::kUntrustedCaFiles, pki::kUntrustedCaSubject,
                                       "untrusted CA (never to be installed anywhere)");
    if (!untrusted) {
        return make_error(untrusted.error());
    }
    shared.ca = std::move(*ca);
    // The root: in issuing-CA mode that is what an upstream chain of our own would end at.
    shared.upstream_checks.own_ca_spki_sha256 = pki::spki_sha256_hex(shared.ca.root());
    if (!shared.ca.chain.empty()) {
        const auto expires = pki::asn1_time_to_time_t(X509_get0_notAfter(shared.ca.cert.get()));
        const std::time_t now = std::time(nullptr);
        if (!expires || *expires <= now) {
            return make_error("refusing to start: the issuing CA in " + dir.string() +
                              " has expired; issue a new one with `tlsgate ca "
                              "issue-intermediate --force`");
        }
        if (*expires - now < 7 * 24 * 3600) {
            spdlog::warn("the issuing CA expires at {}: issue a new one soon",
                         pki::format_time_utc(*expires));
        }
    }
    shared.untrusted_ca = std::move(*untrusted);
    if (pki::spki_sha256_hex(shared.untrusted_ca.cert.get()) ==
        shared.upstream_checks.own_ca_spki_sha256) {
        return make_error("refusing to start: " + (dir / pki::kUntrustedCaKeyFile).string() +
                          " holds the same key as the CA; remove both untrusted-ca files to "
                          "have a new untrusted CA generated");
    }
    return {};
}

Result<std::shared_ptr<const policy::Policy>> load_policy(const RunOptions& options) {
    if (!options.policy_file.empty()) {
        auto config = policy::load_policy_file(options.policy_file);
        if (!config) {
            return make_error(config.error());
        }
        return policy::Policy::compile(std::move(*config));
    }
    if (options.inline_policy) {
        return policy::Policy::compile(*options.inline_policy);
    }
    return policy::Policy::intercept_all();
}

Result<void> prepare_worker(relay::WorkerContext& worker, const RunOptions& options,
                            tls::KeyLogSink* key_log) {
    auto upstream = tls::make_upstream_context({options.system_trust, options.upstream_ca_files});
    if (!upstream) {
        return make_error(upstream.error());
    }
    auto client = tls::make_client_facing_context();
    if (!client) {
        return make_error(client.error());
    }
    auto leaf_key = pki::generate_leaf_key();
    if (!leaf_key) {
        return make_error(leaf_key.error());
    }
    worker.upstream_context = std::move(*upstream);
    worker.upstream_sessions.attach(worker.upstream_context.get());
    worker.client_context = std::move(*client);
    if (const auto& ca = worker.shared.ca; !ca.chain.empty()) {
        // Issuing-CA mode: devices trust the root, so every leaf goes out with the issuing CA
        // (and any CA between it and the root, never the root itself).
        std::vector<X509*> send = {ca.cert.get()};
        for (std::size_t i = 0; i + 1 < ca.chain.size(); ++i) {
            send.push_back(ca.chain[i].get());
        }
        for (X509* cert : send) {
            X509_up_ref(cert);
            if (SSL_CTX_add_extra_chain_cert(worker.client_context.get(), cert) != 1) {
                X509_free(cert);
                return make_error("cannot add the issuing CA to the chain: " +
                                  pki::last_openssl_error());
            }
        }
    }
    worker.leaf_key = std::move(*leaf_key);
    if (key_log != nullptr) {
        tls::enable_key_log(worker.upstream_context.get(), key_log);
        tls::enable_key_log(worker.client_context.get(), key_log);
    }
    return {};
}

std::string portal_banner(const std::vector<listen::ListenSpec>& listeners) {
    std::string text;
    for (const auto& spec : listeners) {
        if (spec.mode == listen::Mode::portal) {
            const bool v6 = spec.address.find(':') != std::string::npos;
            text += "  portal: http://" + (v6 ? "[" + spec.address + "]" : spec.address) + ":" +
                    std::to_string(spec.port) + "/ (also /metrics, /healthz)\n";
        }
    }
    return text + "  install page through the proxy: http://" +
           std::string(relay::kPortalHostName) + "/\n";
}

// SIGHUP: the config and policy are read again and handed to every worker on its own thread.
// Listeners, the data dir and the CA stay as they are (they need a restart, which the log says).
void reload(const std::function<Result<RunOptions>()>& read_options,
            std::vector<std::unique_ptr<relay::WorkerContext>>& workers,
            std::atomic<std::uint64_t>& reloads_ok, std::atomic<std::uint64_t>& reloads_failed) {
    if (!read_options) {
        spdlog::warn("SIGHUP: nothing to reload from");
        return;
    }
    auto options = read_options();
    if (!options) {
        ++reloads_failed;
        spdlog::error("reload rejected, the running configuration stays: {}", options.error());
        return;
    }
    apply_defaults(*options);
    auto policy = load_policy(*options);
    if (!policy) {
        ++reloads_failed;
        spdlog::error("reload rejected, the running configuration stays: policy: {}",
                      policy.error());
        return;
    }
    std::shared_ptr<const policy::Policy> shared_policy = std::move(*policy);
    for (auto& worker : workers) {
        asio::post(worker->io, [&worker = *worker, shared_policy, timeouts = options->timeouts] {
            worker.policy = shared_policy;
            worker.timeouts = timeouts;
        });
    }
    ++reloads_ok;
    spdlog::info(
        "reloaded: new connections use the new policy and timeouts; open connections "
        "continue (listeners, data dir, CA and recording change only with a restart)");
}

// What a client sees of a refused upstream certificate, by default and where rules differ.
std::string describe_upstream_error_actions(const policy::Policy& policy) {
    const auto default_action = policy.default_upstream_error_action();
    std::string text = "on_upstream_error = \"" + std::string(policy::to_string(default_action)) +
                       "\"" +
                       (default_action == policy::UpstreamErrorAction::mirror
                            ? " (bad upstream certificates: the client gets a stand-in from the "
                              "untrusted CA and its own warning)"
                            : " (bad upstream certificates: the client gets a fatal TLS alert)");
    for (const std::string_view rule : policy.rules_overriding_upstream_error_action()) {
        const auto other = default_action == policy::UpstreamErrorAction::mirror
                               ? policy::UpstreamErrorAction::block
                               : policy::UpstreamErrorAction::mirror;
        text += "; rule \"" + std::string(rule) + "\": " + policy::to_string(other);
    }
    return text;
}

}  // namespace

Result<std::string> check_options(RunOptions options) {
    apply_defaults(options);
    auto policy = load_policy(options);
    if (!policy) {
        return make_error("policy: " + policy.error());
    }
    pki::KnownRoots interception_roots;
    for (const auto& file : options.interception_root_files) {
        if (auto added = interception_roots.add_file(file); !added) {
            return make_error("interception_roots: " + added.error());
        }
    }
    std::string listening;
    for (const auto& spec : options.listeners) {
        listening += (listening.empty() ? "" : ", ") + spec.to_string();
    }
    return "configuration OK: " + listening + "\n" + describe_upstream_error_actions(**policy);
}

int run_gateway(RunOptions options, std::function<Result<RunOptions>()> read_options) {
    // Signals are taken by sigwait on this thread only. Blocked before any thread starts (the
    // log and flow writers start below), so that every thread inherits the mask: a thread that
    // did not block them would take a signal sent while this one is not waiting, with the
    // default action, and end the process without its graceful shutdown.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    signal(SIGPIPE, SIG_IGN);
    apply_defaults(options);
    // Standard output carries the banner only; operational messages go to standard error.
    spdlog::set_default_logger(spdlog::stderr_color_mt("tlsgate"));
    spdlog::set_level(spdlog::level::from_str(options.log_level));
    std::error_code error;
    std::filesystem::create_directories(options.data_dir, error);
    std::filesystem::permissions(options.data_dir, std::filesystem::perms::owner_all,
                                 std::filesystem::perm_options::replace, error);

    relay::SharedState shared;
    shared.spoof_source = options.spoof_source;
    relay::ConnectionLimits limits(options.max_connections, options.max_connections_per_client);
    if (options.max_connections != 0 || options.max_connections_per_client != 0) {
        shared.limits = &limits;
    }
    // Every connection needs descriptors: use all the hard limit allows (as nginx's
    // worker_rlimit_nofile does) before running out shows up as refused clients.
    if (rlimit files{}; getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
        files.rlim_cur = files.rlim_max;
        setrlimit(RLIMIT_NOFILE, &files);
    }
    for (const auto& [name, address] : options.static_hosts) {
        shared.static_hosts[name] = address;
    }
    if (auto loaded = load_certificate_authorities(options.ca_dir, options.ca_token_key, shared);
        !loaded) {
        spdlog::error("{}", loaded.error());
        return 1;
    }
    auto rsa_leaf_key = pki::generate_leaf_key(pki::LeafKeyKind::rsa_2048);
    if (!rsa_leaf_key) {
        spdlog::error("{}", rsa_leaf_key.error());
        return 1;
    }
    shared.rsa_leaf_key = std::move(*rsa_leaf_key);
    shared.upstream_checks.interception_roots = pki::KnownRoots::with_builtins();
    for (const auto& file : options.interception_root_files) {
        if (auto added = shared.upstream_checks.interception_roots.add_file(file); !added) {
            spdlog::error("interception_roots: {}", added.error());
            return 1;
        }
    }
    auto policy = load_policy(options);
    if (!policy) {
        spdlog::error("policy: {}", policy.error());
        return 1;
    }
    std::shared_ptr<const policy::Policy> initial_policy = std::move(*policy);
    auto connection_log = record::ConnectionLog::open(
        options.connection_log, 65536,
        [](const std::string& message) { spdlog::warn("{}", message); });
    if (!connection_log) {
        spdlog::error("{}", connection_log.error());
        return 1;
    }
    shared.connection_log = connection_log->get();
    auto recorders = Recorders::start(options.record);
    if (!recorders) {
        spdlog::error("{}", recorders.error());
        return 1;
    }
    shared.recording = (*recorders)->recording();
    auto portal_assets = relay::PortalAssets::build(
        shared.ca, {options.portal_operator, options.portal_contact, options.portal_notice});
    if (!portal_assets) {
        spdlog::error("{}", portal_assets.error());
        return 1;
    }
    shared.portal = portal_assets->get();
    std::atomic<std::uint64_t> reloads_ok{0};
    std::atomic<std::uint64_t> reloads_failed{0};

    const int worker_count =
        options.workers > 0 ? options.workers : std::max(1u, std::thread::hardware_concurrency());
    const auto socks5_auth = std::make_shared<const listen::Socks5AuthConfig>(options.socks5);
    std::vector<std::unique_ptr<relay::WorkerContext>> workers;
    std::vector<std::unique_ptr<listen::WorkerListeners>> listeners;
    for (int i = 0; i < worker_count; ++i) {
        auto worker = std::make_unique<relay::WorkerContext>(i, shared, options.leaf_cache_size);
        worker->policy = initial_policy;
        worker->timeouts = options.timeouts;
        if (auto prepared = prepare_worker(*worker, options, (*recorders)->key_log_sink());
            !prepared) {
            spdlog::error("{}", prepared.error());
            return 1;
        }
        auto bound = listen::WorkerListeners::bind(*worker, options.listeners, socks5_auth);
        if (!bound) {
            spdlog::error("{}", bound.error());
            return 1;
        }
        listeners.push_back(std::move(*bound));
        workers.push_back(std::move(worker));
    }

    MetricsSources metrics{
        &workers,    connection_log->get(), (*recorders)->flows(), (*recorders)->pcap(),
        &reloads_ok, &reloads_failed};
    (*portal_assets)->render_metrics = [&metrics] { return render_metrics(metrics); };
    bool keeps_net_admin = false;
    for (const auto& spec : options.listeners) {
        keeps_net_admin |= spec.mode == listen::Mode::tproxy && options.spoof_source;
    }
    if (auto dropped = drop_privileges({options.user,
                                        keeps_net_admin,
                                        {options.data_dir, options.connection_log.parent_path(),
                                         options.record.db.parent_path()}});
        !dropped) {
        spdlog::error("{}", dropped.error());
        return 1;
    }

    // Learned exemptions and the control socket that shows and clears them.
    std::unique_ptr<policy::AutoPassthrough> auto_passthrough;
    if (options.auto_passthrough) {
        auto_passthrough =
            std::make_unique<policy::AutoPassthrough>(options.auto_passthrough_settings);
        shared.auto_passthrough = auto_passthrough.get();
    }
    auto control = ControlSocket::open(options.data_dir / kControlSocketFile,
                                       [learned = auto_passthrough.get()](auto command) {
                                           return answer_passthrough_command(command, learned);
                                       });
    if (!control) {
        spdlog::warn("{} (tlsgate passthrough will not reach this gateway)", control.error());
    }

    std::atomic<int> running{worker_count};
    std::vector<std::thread> threads;
    for (int i = 0; i < worker_count; ++i) {
        listeners[i]->start();
        threads.emplace_back([&, i] {
            name_this_thread("tg-worker-" + std::to_string(i));
            for (;;) {
                try {
                    workers[i]->io.run();
                    break;
                } catch (const std::exception& failure) {
                    // A bug must not take every other connection down with it.
                    spdlog::error("worker {}: unexpected exception: {}", i, failure.what());
                }
            }
            running.fetch_sub(1);
        });
    }

    const auto summary = pki::summarize(shared.ca.root());
    std::string listening;
    for (const auto& spec : options.listeners) {
        listening += (listening.empty() ? "" : ", ") + spec.to_string();
    }
    std::printf(
        "tlsgate %s listening on %s with %d worker%s\n"
        "  CA certificate: %s (SHA-256 %s)\n"
        "  connection log: %s\n"
        "  flow records: %s\n"
        "%s",
        TLSGATE_VERSION_STRING, listening.c_str(), worker_count, worker_count == 1 ? "" : "s",
        (options.ca_dir / pki::kCaCertFile).c_str(), summary.sha256_fingerprint.c_str(),
        options.connection_log.c_str(), (*recorders)->describe().c_str(),
        portal_banner(options.listeners).c_str());
    for (const auto& spec : options.listeners) {
        if (spec.mode == listen::Mode::explicit_proxy) {
            std::printf("  try: curl --proxy http://%s:%u --cacert %s https://example.com/\n",
                        spec.address.c_str(), spec.port,
                        (options.ca_dir / pki::kCaCertFile).c_str());
            break;
        }
    }
    std::fflush(stdout);
    (*portal_assets)->ready = true;

    int signal_number = 0;
    for (;;) {
        sigwait(&signals, &signal_number);
        if (signal_number != SIGHUP) {
            break;
        }
        reload(read_options, workers, reloads_ok, reloads_failed);
    }
    (*portal_assets)->ready = false;
    spdlog::info("signal {}: no longer accepting; letting open connections finish for {} s",
                 signal_number, options.shutdown_grace_seconds);
    for (int i = 0; i < worker_count; ++i) {
        asio::post(workers[i]->io, [&listener = *listeners[i]] { listener.close(); });
    }
    // Each worker's loop ends by itself when its last connection does.
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(options.shutdown_grace_seconds);
    while (running.load() > 0 && std::chrono::steady_clock::now() < deadline) {
        sigset_t pending;
        sigpending(&pending);
        if (sigismember(&pending, SIGINT) || sigismember(&pending, SIGTERM)) {
            break;  // a second signal: stop now
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    for (auto& worker : workers) {
        worker->io.stop();
    }
    for (auto& thread : threads) {
        thread.join();
    }
    const auto sum = [&workers](auto pick) {
        std::uint64_t value = 0;
        for (const auto& worker : workers)
            value += pick(worker->counters).get();
        return value;
    };
    using relay::Counter;
    using relay::Counters;
    const auto accepted = sum([](const Counters& c) -> const Counter& { return c.accepted; });
    const auto intercepted = sum([](const Counters& c) -> const Counter& { return c.intercepted; });
    const auto passed = sum([](const Counters& c) -> const Counter& { return c.passed_through; });
    const auto blocked = sum([](const Counters& c) -> const Counter& { return c.blocked; });
    const auto rejected =
        sum([](const Counters& c) -> const Counter& { return c.upstream_verify_failed; });
    const auto minted = sum([](const Counters& c) -> const Counter& { return c.leaves_minted; });
    const auto cache_hits =
        sum([](const Counters& c) -> const Counter& { return c.leaf_cache_hits; });
    const auto resumed =
        sum([](const Counters& c) -> const Counter& { return c.upstream_resumed; });
    const auto not_dissected =
        sum([](const Counters& c) -> const Counter& { return c.dissection_failed; });
    listeners.clear();
    workers.clear();  // closes what was still open; their records reach the log
    (*connection_log)->close();
    (*recorders)->close();
    const auto* flows = (*recorders)->flows();
    spdlog::info(
        "stopped: {} connections ({} intercepted, {} passed through, {} blocked, {} upstream "
        "certificates rejected), {} leaves minted, {} leaf cache hits, {} upstream sessions "
        "resumed, {} log records dropped, {} flows recorded ({} dropped), {} connections not "
        "dissected (malformed HTTP)",
        accepted, intercepted, passed, blocked, rejected, minted, cache_hits, resumed,
        (*connection_log)->dropped(), flows ? flows->written() : 0, flows ? flows->dropped() : 0,
        not_dissected);
    return 0;
}

}  // namespace tlsgate::app

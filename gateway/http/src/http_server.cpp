#include "fieldlink/gateway/http/http_server.hpp"

#include <httplib.h>

#include <fmt/format.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "fieldlink/gateway/http/exposition.hpp"
#include "fieldlink/gateway/http/render.hpp"
#include "static_assets.hpp"

namespace fieldlink::gateway::http {

namespace {

// cpp-httplib's task queue, bounded: enqueue() waits while `capacity` connections
// are already waiting, so the accept loop stops accepting instead of queueing
// without limit. shutdown() (called by the accept loop as it ends) serves what
// is queued, then joins the workers.
class BoundedTaskQueue final : public httplib::TaskQueue {
public:
    BoundedTaskQueue(std::size_t workers, std::size_t capacity) : capacity_(capacity) {
        for (std::size_t i = 0; i < workers; ++i) threads_.emplace_back([this] { work(); });
    }
    ~BoundedTaskQueue() override { shutdown(); }

    void enqueue(std::function<void()> fn) override {
        std::unique_lock lock(mutex_);
        space_.wait(lock, [this] { return jobs_.size() < capacity_ || stopping_; });
        jobs_.push_back(std::move(fn));  // also while stopping: the job closes its socket
        ready_.notify_one();
    }

    void shutdown() override {
        {
            std::lock_guard lock(mutex_);
            if (stopping_ && threads_.empty()) return;
            stopping_ = true;
        }
        ready_.notify_all();
        space_.notify_all();
        for (std::thread& t : threads_) {
            if (t.joinable()) t.join();
        }
        threads_.clear();
    }

private:
    void work() {
        for (;;) {
            std::function<void()> job;
            {
                std::unique_lock lock(mutex_);
                ready_.wait(lock, [this] { return !jobs_.empty() || stopping_; });
                if (jobs_.empty()) return;  // stopping, nothing left
                job = std::move(jobs_.front());
                jobs_.pop_front();
            }
            space_.notify_one();
            job();
        }
    }

    const std::size_t capacity_;
    std::mutex mutex_;
    std::condition_variable ready_;
    std::condition_variable space_;
    std::deque<std::function<void()>> jobs_;
    bool stopping_ = false;
    std::vector<std::thread> threads_;
};

}  // namespace

class HttpServer::Impl {
public:
    Impl(const HttpSettings& settings, GatewayObserver& observer, Logger& log)
        : settings_(settings), observer_(observer), log_(log) {}

    ~Impl() { stop(); }

    void start() {
        std::lock_guard lifecycle(lifecycle_mutex_);
        if (thread_.joinable() || stopped_) return;
        routes();
        server_.set_read_timeout(settings_.read_timeout_s, 0);
        server_.set_write_timeout(settings_.write_timeout_s, 0);
        server_.set_keep_alive_max_count(1);
        server_.set_payload_max_length(64 * 1024);  // we take no uploads
        // Called by the accept loop once it runs: from then on stop() reaches it.
        server_.new_task_queue = [this]() -> httplib::TaskQueue* {
            auto* queue = new BoundedTaskQueue(settings_.workers, settings_.queue);
            {
                std::lock_guard lock(state_mutex_);
                listening_ = true;
            }
            state_cv_.notify_all();
            return queue;
        };
        const ListenAddress& at = settings_.listen;
        int bound = at.port;
        errno = 0;  // cpp-httplib reports only false: bind()'s errno names the cause
        if (at.port == 0) {
            bound = server_.bind_to_any_port(at.host);
            if (bound < 0) bound = 0;
        } else if (!server_.bind_to_port(at.host, at.port)) {
            bound = 0;
        }
        if (bound <= 0) {
            const int cause = errno;
            throw std::runtime_error(
                fmt::format("http: cannot listen on {}:{}: {}", at.host, at.port,
                            cause != 0 ? std::strerror(cause) : "not an address of this host, or in use"));
        }
        port_ = bound;
        thread_ = std::thread([this] {
            server_.listen_after_bind();
            std::lock_guard lock(state_mutex_);
            loop_ended_ = true;
            state_cv_.notify_all();
        });
        {
            std::unique_lock lock(state_mutex_);
            state_cv_.wait(lock, [this] { return listening_ || loop_ended_; });
            if (!listening_) {
                lock.unlock();
                thread_.join();
                throw std::runtime_error(fmt::format("http: the server on {}:{} ended at once", at.host, port_));
            }
        }
        log_.event(LogLevel::Info,
                   fmt::format("http: serving /metrics, /healthz and the status page on http://{}:{}/",
                               at.host.find(':') != std::string::npos ? "[" + at.host + "]" : at.host, port_),
                   {{"port", static_cast<std::int64_t>(port_)}});
    }

    void stop() {
        std::lock_guard lifecycle(lifecycle_mutex_);
        stopped_ = true;
        if (!thread_.joinable()) return;
        server_.stop();  // closes the listening socket; the loop ends and joins its workers
        thread_.join();
    }

    int port() const noexcept { return port_; }

private:
    struct View {
        Observation observation;
        HealthReport health;
    };

    View look() {
        View v{observer_.observe(), {}};
        v.health = evaluate_health(v.observation.health, settings_.health);
        return v;
    }

    void routes() {
        server_.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
            const View v = look();
            res.set_content(render_metrics(v.observation, v.health, settings_.version),
                            std::string(kExpositionContentType).c_str());
        });
        server_.Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
            const View v = look();
            res.status = v.health.healthy ? 200 : 503;
            res.set_header("Cache-Control", "no-store");
            res.set_content(to_json(v.health), "application/json");
        });
        server_.Get("/api/status", [this](const httplib::Request&, httplib::Response& res) {
            const View v = look();
            res.set_header("Cache-Control", "no-store");
            res.set_content(render_status_json(v.observation, v.health, settings_.version), "application/json");
        });
        for (const StaticAsset& asset : static_assets()) {
            const std::string path = asset.path == "index.html" ? "/" : "/" + std::string(asset.path);
            server_.Get(path, [asset](const httplib::Request&, httplib::Response& res) {
                res.set_content(reinterpret_cast<const char*>(asset.data), asset.size,
                                std::string(asset.content_type).c_str());
                res.set_header("Content-Security-Policy", "default-src 'self'");
            });
        }
        // cpp-httplib 0.11 hands over the exception as a pointer.
        server_.set_exception_handler(
            [this](const httplib::Request& req, httplib::Response& res, const std::exception_ptr& error) {
                std::string what = "unknown exception";
                try {
                    if (error) std::rethrow_exception(error);
                } catch (const std::exception& e) {
                    what = e.what();
                } catch (...) {
                    // keeps "unknown exception"
                }
                log_.event(LogLevel::Warn, fmt::format("http: {} {} failed: {}", req.method, req.path, what),
                           {{"method", req.method}, {"path", req.path}});
                res.status = 500;
                res.set_content("internal error\n", "text/plain");
            });
    }

    const HttpSettings settings_;
    GatewayObserver& observer_;
    Logger& log_;
    httplib::Server server_;
    int port_ = 0;

    std::mutex lifecycle_mutex_;
    bool stopped_ = false;
    std::thread thread_;
    std::mutex state_mutex_;
    std::condition_variable state_cv_;
    bool listening_ = false;
    bool loop_ended_ = false;
};

HttpServer::HttpServer(const HttpSettings& settings, GatewayObserver& observer, Logger& log)
    : impl_(std::make_unique<Impl>(settings, observer, log)) {}
HttpServer::~HttpServer() = default;
void HttpServer::start() { impl_->start(); }
void HttpServer::stop() { impl_->stop(); }
int HttpServer::port() const noexcept { return impl_->port(); }

}  // namespace fieldlink::gateway::http

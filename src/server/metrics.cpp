#include "server/metrics.hpp"

#include "audit/ledger.hpp"

#include <fmt/format.h>

#include "channel/agent_channel.hpp"

namespace agentpane::server {
namespace {

std::string formatDouble(double v) {
  return fmt::format("{}", v);
}

std::string label(const char* name, const std::string& value) {
  return std::string(name) + "=\"" + escapeLabelValue(value) + "\"";
}

}  // namespace

std::string escapeLabelValue(const std::string& v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void Histogram::observe(double seconds) {
  for (std::size_t i = 0; i < kBuckets.size(); ++i) {
    if (seconds <= kBuckets[i]) ++counts_[i];
  }
  ++count_;
  sum_ += seconds;
}

void Histogram::render(std::string& out, const std::string& name, const std::string& labels) const {
  const std::string sep = labels.empty() ? "" : ",";
  for (std::size_t i = 0; i < kBuckets.size(); ++i) {
    out += fmt::format("{}_bucket{{{}{}le=\"{}\"}} {}\n", name, labels, sep,
                       formatDouble(kBuckets[i]), counts_[i]);
  }
  out += fmt::format("{}_bucket{{{}{}le=\"+Inf\"}} {}\n", name, labels, sep, count_);
  out += fmt::format("{}_sum{{{}}} {}\n", name, labels, formatDouble(sum_));
  out += fmt::format("{}_count{{{}}} {}\n", name, labels, count_);
}

std::string methodLabel(std::string_view method) {
  // Any string is a valid HTTP method token, and requests are counted before they are
  // authenticated: only the methods HTTP defines get their own label, so that a client
  // cannot grow the label set (and /metrics) without bound.
  static constexpr std::string_view kKnown[] = {"GET",     "HEAD",    "POST",  "PUT",  "DELETE",
                                                "CONNECT", "OPTIONS", "TRACE", "PATCH"};
  for (auto m : kKnown) {
    if (method == m) return std::string(m);
  }
  return "other";
}

void Metrics::recordRequest(const std::string& route, const std::string& method, int status,
                            double seconds) {
  std::lock_guard lock(mu_);
  ++requests_[{route, methodLabel(method), status}];
  requestDurations_[route].observe(seconds);
}

void Metrics::recordExec(const std::string& provider, const std::string& result, double seconds) {
  std::lock_guard lock(mu_);
  ++execs_[{provider, result}];
  execDurations_[provider].observe(seconds);
}

std::string Metrics::render(const std::map<std::pair<std::string, std::string>, int>& sandboxes,
                            const std::vector<WarmPoolInfo>& pools) const {
  std::string out;
  std::lock_guard lock(mu_);

  out +=
      "# HELP agentpane_http_requests_total HTTP requests by route pattern, method and status.\n";
  out += "# TYPE agentpane_http_requests_total counter\n";
  for (const auto& [key, n] : requests_) {
    const auto& [route, method, status] = key;
    out += fmt::format("agentpane_http_requests_total{{{},{},{}}} {}\n", label("route", route),
                       label("method", method), label("status", std::to_string(status)), n);
  }

  out += "# HELP agentpane_http_request_duration_seconds HTTP request latency by route pattern.\n";
  out += "# TYPE agentpane_http_request_duration_seconds histogram\n";
  for (const auto& [route, h] : requestDurations_) {
    h.render(out, "agentpane_http_request_duration_seconds", label("route", route));
  }

  out += "# HELP agentpane_sandboxes Sandboxes known to the server by provider and status.\n";
  out += "# TYPE agentpane_sandboxes gauge\n";
  for (const auto& [key, n] : sandboxes) {
    out += fmt::format("agentpane_sandboxes{{{},{}}} {}\n", label("provider", key.first),
                       label("status", key.second), n);
  }

  out += "# HELP agentpane_exec_total Commands run in sandboxes by provider and result.\n";
  out += "# TYPE agentpane_exec_total counter\n";
  for (const auto& [key, n] : execs_) {
    out += fmt::format("agentpane_exec_total{{{},{}}} {}\n", label("provider", key.first),
                       label("result", key.second), n);
  }

  out += "# HELP agentpane_exec_duration_seconds Duration of commands run in sandboxes.\n";
  out += "# TYPE agentpane_exec_duration_seconds histogram\n";
  for (const auto& [provider, h] : execDurations_) {
    h.render(out, "agentpane_exec_duration_seconds", label("provider", provider));
  }

  if (!pools.empty()) {
    out +=
        "# HELP agentpane_warm_pool_sandboxes Warm pool sandboxes by pool (profile) and state.\n";
    out += "# TYPE agentpane_warm_pool_sandboxes gauge\n";
    for (const auto& p : pools) {
      for (auto [state, n] :
           {std::pair{"warm", p.warm}, {"starting", p.starting}, {"claimed", p.claimed}}) {
        out += fmt::format("agentpane_warm_pool_sandboxes{{{},{}}} {}\n",
                           label("pool", p.configName), label("state", state), n);
      }
    }
    out += "# HELP agentpane_warm_pool_target Sandboxes each pool keeps warm now (min..max).\n";
    out += "# TYPE agentpane_warm_pool_target gauge\n";
    for (const auto& p : pools)
      out += fmt::format("agentpane_warm_pool_target{{{}}} {}\n", label("pool", p.configName),
                         p.target);
    out +=
        "# HELP agentpane_warm_pool_claims_total Creates of a pooled profile: warm sandbox "
        "claimed (hit) or made cold (miss).\n";
    out += "# TYPE agentpane_warm_pool_claims_total counter\n";
    for (const auto& p : pools) {
      out += fmt::format("agentpane_warm_pool_claims_total{{{},result=\"hit\"}} {}\n",
                         label("pool", p.configName), p.hits);
      out += fmt::format("agentpane_warm_pool_claims_total{{{},result=\"miss\"}} {}\n",
                         label("pool", p.configName), p.misses);
    }
    out +=
        "# HELP agentpane_warm_pool_claim_seconds Time a claim takes (the row, the "
        "provider's bind of project and egress).\n";
    out += "# TYPE agentpane_warm_pool_claim_seconds histogram\n";
    for (const auto& p : pools) {
      const std::string l = label("pool", p.configName);
      std::int64_t cum = 0;
      for (std::size_t i = 0; i < p.claimBuckets.size(); ++i) {
        cum += p.claimBuckets[i];
        const std::string le = i < std::size(kClaimBucketsMs)
                                   ? fmt::format("{}", kClaimBucketsMs[i] / 1000.0)
                                   : std::string("+Inf");
        out += fmt::format("agentpane_warm_pool_claim_seconds_bucket{{{},le=\"{}\"}} {}\n", l, le,
                           cum);
      }
      out +=
          fmt::format("agentpane_warm_pool_claim_seconds_sum{{{}}} {}\n", l, p.claimSumMs / 1000.0);
      out += fmt::format("agentpane_warm_pool_claim_seconds_count{{{}}} {}\n", l, p.hits);
    }
  }

  const auto& ch = channel::counters();
  out +=
      "# HELP agentpane_exec_path_total Commands by the path they took: the in-sandbox agent "
      "channel, the provider's native exec as a fallback (channel down), or native for root.\n";
  out += "# TYPE agentpane_exec_path_total counter\n";
  out += fmt::format("agentpane_exec_path_total{{path=\"channel\"}} {}\n", ch.channelExecs.load());
  out += fmt::format("agentpane_exec_path_total{{path=\"native_fallback\"}} {}\n",
                     ch.nativeExecs.load());
  out += fmt::format("agentpane_exec_path_total{{path=\"native_root\"}} {}\n", ch.rootExecs.load());
  out +=
      "# HELP agentpane_exec_channel_events_total Agent channel starts, failed starts, agent "
      "copies into sandboxes, channels lost while in use, commands whose unread output held the "
      "agent, and commands whose unread stdin held the client.\n";
  out += "# TYPE agentpane_exec_channel_events_total counter\n";
  out += fmt::format("agentpane_exec_channel_events_total{{event=\"started\"}} {}\n",
                     ch.starts.load());
  out += fmt::format("agentpane_exec_channel_events_total{{event=\"start_failed\"}} {}\n",
                     ch.startFailures.load());
  out += fmt::format("agentpane_exec_channel_events_total{{event=\"installed\"}} {}\n",
                     ch.installs.load());
  out += fmt::format("agentpane_exec_channel_events_total{{event=\"lost\"}} {}\n", ch.lost.load());
  out += fmt::format("agentpane_exec_channel_events_total{{event=\"output_held\"}} {}\n",
                     ch.outputHolds.load());
  out += fmt::format("agentpane_exec_channel_events_total{{event=\"stdin_waited\"}} {}\n",
                     ch.stdinWaits.load());
  const auto& wf = audit::writeFailures();
  out +=
      "# HELP agentpane_audit_write_failures_total Audit entries not written: to the ledger "
      "(the tamper-evident record), or to the state table's index.\n";
  out += "# TYPE agentpane_audit_write_failures_total counter\n";
  out +=
      fmt::format("agentpane_audit_write_failures_total{{sink=\"ledger\"}} {}\n", wf.ledger.load());
  out +=
      fmt::format("agentpane_audit_write_failures_total{{sink=\"index\"}} {}\n", wf.index.load());
  out +=
      "# HELP agentpane_audit_prune_failures_total Ledger retention passes that failed (the old "
      "files stay; the next rotation tries again).\n";
  out += "# TYPE agentpane_audit_prune_failures_total counter\n";
  out += fmt::format("agentpane_audit_prune_failures_total {}\n", wf.prune.load());
  return out;
}

}  // namespace agentpane::server

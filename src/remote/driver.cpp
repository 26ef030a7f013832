// covirt: the remote driver's connection: open and its handshake, reconnect, events, and the
// node-level rows. Domain rows are in domains.cpp, network rows in networks.cpp.
#include "driver_state.hpp"

namespace covirt::remote {

namespace {

// A lifecycle event from libvirtd: what it says about the domain's identity, then the subscribers.
void on_event(driver::state& s, const header& h, std::string_view payload) {
  if (h.prog != remote_program || h.proc != static_cast<std::int32_t>(proc::domain_event_callback_lifecycle)) return;
  diagnostics d;
  auto m = xdr::decode<domain_event_callback_lifecycle_msg>(payload, "lifecycle event", d);
  if (!m) return;  // one bad event is dropped, not the connection
  const auto& dom = m->msg.dom;
  const auto type = static_cast<event_type>(m->msg.event);
  if (type == event_type::undefined) s.forget(dom);
  else s.learn(dom);
  s.events.publish(to_ref(dom), type, m->msg.detail);
}

op<void> handshake(const std::shared_ptr<driver::state>& s, diagnostics& diag) {
  auto rpc = std::make_shared<client>(s->ex);
  if (auto r = co_await rpc->connect(s->u, (s->flags & open_flags::read_only) != 0, diag); !r) co_return r;
  auto auth = co_await rpc->call<auth_list_ret>(proc::auth_list, diag);
  if (!auth) co_return failure(auth.error());
  bool none = auth->types.empty();
  for (auto t : auth->types) none = none || t == auth_type::none;
  if (!none)
    co_return fail(diag, errc::auth_failed,
                   "libvirtd at '" + rpc->peer() + "' asks for " +
                       std::string(auth->types.front() == auth_type::sasl ? "SASL" : "polkit") +
                       " authentication, which covirt does not support (configure auth_unix_rw/auth_tcp = \"none\")");
  // Asking makes the daemon start its keepalive PINGs for this client, which the client answers.
  const int_args keepalive{feature::program_keepalive};
  auto ka = co_await rpc->call<int_ret>(proc::connect_supports_feature, keepalive, diag);
  if (!ka) co_return failure(ka.error());
  connect_open_args open{s->u.without_transport(), (s->flags & open_flags::read_only) ? 1u : 0u};
  if (auto r = co_await rpc->call<void>(proc::connect_open, open, diag); !r) co_return r;
  auto type = co_await rpc->call<str_ret>(proc::connect_get_type, diag);
  if (!type) co_return failure(type.error());
  const int_args callbacks{feature::remote_event_callback};
  auto cb = co_await rpc->call<int_ret>(proc::connect_supports_feature, callbacks, diag);
  if (!cb) co_return failure(cb.error());
  if (cb->value) {
    std::weak_ptr<driver::state> w = s;
    rpc->on_message([w](const header& h, std::string_view payload) {
      if (auto st = w.lock()) on_event(*st, h, payload);
    });
    const event_register_args lifecycle{0, {}};
    auto id = co_await rpc->call<int_ret>(proc::connect_domain_event_callback_register_any, lifecycle, diag);
    if (!id) co_return failure(id.error());
  }
  rpc->on_close([w = std::weak_ptr<driver::state>(s)](error_code, std::string_view) {
    if (auto st = w.lock()) st->events.close_all();
  });
  s->rpc = std::move(rpc);
  s->type = std::move(type->value);
  s->doms.clear();
  s->nets.clear();
  co_return result<void>();
}

}  // namespace

driver::driver(asio::any_io_executor ex) : s_(std::make_shared<state>(std::move(ex))) {}
driver::driver(driver&&) noexcept = default;
driver& driver::operator=(driver&&) noexcept = default;
driver::~driver() {
  if (!s_) return;
  if (s_->rpc) s_->rpc->close();
  s_->events.close_all();
}

asio::any_io_executor driver::get_executor() const noexcept { return s_->ex; }
std::string_view driver::type_name() const noexcept { return s_->type; }
event_stream driver::subscribe(std::string domain) { return s_->events.subscribe(s_->ex, std::move(domain)); }
client& driver::rpc() noexcept { return *s_->rpc; }
std::size_t driver::known_domains() const noexcept { return s_->doms.size(); }

op<void> driver::open(const uri& u, unsigned flags, diagnostics& diag) {
  auto s = s_;
  s->u = u;
  s->flags = flags;
  co_return co_await handshake(s, diag);
}

op<void> driver::reconnect(diagnostics& diag) {
  auto s = s_;
  if (s->rpc) s->rpc->close();
  s->events.close_all();
  co_return co_await handshake(s, diag);
}

// ---- node and connection

op<void> driver::close(diagnostics& diag) {
  auto s = s_;
  auto rpc = s->rpc;
  result<void> r;
  if (rpc->is_open()) r = co_await rpc->call<void>(proc::connect_close, diag);
  rpc->close();
  s->events.close_all();
  co_return r;
}

op<std::string> driver::get_hostname(diagnostics& diag) {
  auto r = co_await s_->rpc->call<str_ret>(proc::connect_get_hostname, diag);
  if (!r) co_return failure(r.error());
  co_return std::move(r->value);
}

op<std::uint64_t> driver::get_version(diagnostics& diag) {
  auto r = co_await s_->rpc->call<u64_ret>(proc::connect_get_version, diag);
  if (!r) co_return failure(r.error());
  co_return r->value;
}

op<std::string> driver::get_capabilities(diagnostics& diag) {
  auto r = co_await s_->rpc->call<str_ret>(proc::connect_get_capabilities, diag);
  if (!r) co_return failure(r.error());
  co_return std::move(r->value);
}

op<node_info> driver::node_get_info(diagnostics& diag) {
  auto r = co_await s_->rpc->call<node_get_info_ret>(proc::node_get_info, diag);
  if (!r) co_return failure(r.error());
  node_info n;
  n.model.assign(r->model.data(), ::strnlen(r->model.data(), r->model.size()));
  n.memory_kib = r->memory;
  n.cpus = unsigned(r->cpus);
  n.mhz = unsigned(r->mhz);
  n.nodes = unsigned(r->nodes);
  n.sockets = unsigned(r->sockets);
  n.cores = unsigned(r->cores);
  n.threads = unsigned(r->threads);
  co_return n;
}

op<int> driver::get_max_vcpus(std::string_view type, diagnostics& diag) {
  opt_str_args a;
  if (!type.empty()) a.value.emplace(type);
  auto r = co_await s_->rpc->call<int_ret>(proc::connect_get_max_vcpus, a, diag);
  if (!r) co_return failure(r.error());
  co_return r->value;
}

}  // namespace covirt::remote

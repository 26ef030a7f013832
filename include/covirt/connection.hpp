// covirt: the connection, a type-erased handle on any driver, and open(uri).
#pragma once

#include <covirt/detail/erased_driver.hpp>
#include <covirt/driver.hpp>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/consign.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <exception>
#include <functional>
#include <memory>
#include <type_traits>

namespace covirt {

namespace detail {
template <class T>
struct op_signature { using type = void(error_code, T); };
template <>
struct op_signature<void> { using type = void(error_code); };
template <class Token>
inline constexpr bool is_diag = std::is_same_v<std::decay_t<Token>, diagnostics>;
template <class Token>
inline constexpr bool is_use_awaitable = std::is_same_v<std::decay_t<Token>, asio::use_awaitable_t<>>;
}  // namespace detail

// Declares async_NAME twice: without diagnostics and with them.
//   T: the value; API: libvirt's name for it (used in read-only refusals); MUT: true if it changes anything;
//   PARAMS: the parameter list; CAPTURE: how the lambda keeps them; CALL: the erased driver call.
#define COVIRT_P(...) __VA_ARGS__ __VA_OPT__(, )
#define COVIRT_OP(T, NAME, API, MUT, PARAMS, CAPTURE, CALL)                                                  \
  template <class Token = asio::use_awaitable_t<>>                                                           \
    requires(!detail::is_diag<Token>)                                                                        \
  auto async_##NAME(COVIRT_P PARAMS Token&& token = {}) {                                                    \
    return run<T>(MUT ? API : nullptr, [this COVIRT_CAP CAPTURE](diagnostics & d) { return impl_->CALL; },   \
                  nullptr, std::forward<Token>(token));                                                      \
  }                                                                                                          \
  template <class Token = asio::use_awaitable_t<>>                                                           \
  auto async_##NAME(COVIRT_P PARAMS diagnostics& diag, Token&& token = {}) {                                 \
    return run<T>(MUT ? API : nullptr, [this COVIRT_CAP CAPTURE](diagnostics & d) { return impl_->CALL; },   \
                  &diag, std::forward<Token>(token));                                                        \
  }
#define COVIRT_CAP(...) __VA_OPT__(, ) __VA_ARGS__

/// A connection to one hypervisor through one driver. Move-only; not thread-safe
/// (use it from one thread or strand, like any Asio I/O object).
///
/// Every operation comes in two forms, `async_X(args..., token)` and
/// `async_X(args..., diagnostics& diag, token)`. The handler is `void(error_code, T)`
/// (`void(error_code)` when there is no value). With the default token,
/// `asio::use_awaitable`, a failure throws covirt::error, which carries the code and the
/// driver's message ("domain 'web1' is not running"); other tokens get the code, and
/// the message lands in `diag` when given. Errors are covirt::errc values (libvirt's).
/// Cancellation: through the token's cancellation slot, or the awaiting coroutine's;
/// what a driver has already sent to its peer may still take effect.
/// A read-only connection refuses every operation that changes anything with
/// errc::operation_denied before the driver sees it.
class connection {
public:
  connection() = default;
  connection(std::unique_ptr<detail::erased_driver> impl, covirt::uri u, unsigned flags) noexcept
      : impl_(std::move(impl)), uri_(std::move(u)), flags_(flags) {}
  connection(connection&&) noexcept = default;
  connection& operator=(connection&&) noexcept = default;
  ~connection();

  bool is_open() const noexcept { return impl_ != nullptr; }
  bool is_read_only() const noexcept { return (flags_ & open_flags::read_only) != 0; }
  asio::any_io_executor get_executor() const { return impl_->get_executor(); }
  const covirt::uri& uri() const noexcept { return uri_; }
  /// virConnectGetType: "TEST", "QEMU", "Xen".
  std::string_view type() const { return impl_->type_name(); }
  /// The driver, for code that knows its type (nullptr if it is another).
  template <driver D>
  D* driver_as() noexcept {
    auto* m = dynamic_cast<detail::driver_model<D>*>(impl_.get());
    return m ? &m->get() : nullptr;
  }
  /// Lifecycle events, optionally of one domain only.
  event_stream subscribe(std::string domain = {}) { return impl_->subscribe(std::move(domain)); }

  // Node and connection
  COVIRT_OP(void, close, "virConnectClose", false, (), (), close())
  COVIRT_OP(std::string, get_hostname, "virConnectGetHostname", false, (), (), get_hostname(d))
  COVIRT_OP(std::uint64_t, get_version, "virConnectGetVersion", false, (), (), get_version(d))
  COVIRT_OP(std::string, get_capabilities, "virConnectGetCapabilities", false, (), (), get_capabilities(d))
  COVIRT_OP(node_info, node_get_info, "virNodeGetInfo", false, (), (), node_get_info(d))
  COVIRT_OP(int, get_max_vcpus, "virConnectGetMaxVcpus", false, (std::string type), (type = std::move(type)),
            get_max_vcpus(type, d))

  // Domains: listing and lookup
  COVIRT_OP(std::vector<domain_ref>, list_domains, "virConnectListAllDomains", false, (unsigned flags),
            (flags), list_domains(flags, d))
  COVIRT_OP(domain_ref, lookup_by_name, "virDomainLookupByName", false, (std::string name),
            (name = std::move(name)), lookup_by_name(name, d))
  COVIRT_OP(domain_ref, lookup_by_uuid, "virDomainLookupByUUIDString", false, (std::string uuid),
            (uuid = std::move(uuid)), lookup_by_uuid(uuid, d))
  COVIRT_OP(domain_ref, lookup_by_id, "virDomainLookupByID", false, (int id), (id), lookup_by_id(id, d))

  // Domains: definition and lifecycle
  COVIRT_OP(domain_ref, define_xml, "virDomainDefineXML", true, (std::string xml), (xml = std::move(xml)),
            define_xml(xml, d))
  COVIRT_OP(void, undefine, "virDomainUndefine", true, (std::string name), (name = std::move(name)),
            undefine(name, d))
  /// Starts a defined domain (virDomainCreate, virsh start).
  COVIRT_OP(void, create, "virDomainCreate", true, (std::string name), (name = std::move(name)), create(name, d))
  /// Starts a transient domain from XML (virDomainCreateXML).
  COVIRT_OP(domain_ref, create_xml, "virDomainCreateXML", true, (std::string xml, unsigned flags),
            (xml = std::move(xml), flags), create_xml(xml, flags, d))
  COVIRT_OP(void, destroy, "virDomainDestroy", true, (std::string name), (name = std::move(name)), destroy(name, d))
  COVIRT_OP(void, shutdown, "virDomainShutdown", true, (std::string name), (name = std::move(name)),
            shutdown(name, d))
  COVIRT_OP(void, reboot, "virDomainReboot", true, (std::string name), (name = std::move(name)), reboot(name, d))
  COVIRT_OP(void, suspend, "virDomainSuspend", true, (std::string name), (name = std::move(name)), suspend(name, d))
  COVIRT_OP(void, resume, "virDomainResume", true, (std::string name), (name = std::move(name)), resume(name, d))

  // Domains: state and configuration
  COVIRT_OP(domain_info, get_info, "virDomainGetInfo", false, (std::string name), (name = std::move(name)),
            get_info(name, d))
  COVIRT_OP(std::string, get_os_type, "virDomainGetOSType", false, (std::string name), (name = std::move(name)),
            get_os_type(name, d))
  COVIRT_OP(domain_state_info, get_state, "virDomainGetState", false, (std::string name), (name = std::move(name)),
            get_state(name, d))
  /// flags: xml_flags::inactive for the definition as it will be at next boot.
  COVIRT_OP(std::string, get_xml, "virDomainGetXMLDesc", false, (std::string name, unsigned flags),
            (name = std::move(name), flags), get_xml(name, flags, d))
  COVIRT_OP(bool, is_active, "virDomainIsActive", false, (std::string name), (name = std::move(name)),
            is_active(name, d))
  COVIRT_OP(bool, is_persistent, "virDomainIsPersistent", false, (std::string name), (name = std::move(name)),
            is_persistent(name, d))
  /// flags: modify::live / modify::config / modify::mem_maximum, as virDomainSetMemoryFlags.
  COVIRT_OP(void, set_memory, "virDomainSetMemoryFlags", true, (std::string name, std::uint64_t kib, unsigned flags),
            (name = std::move(name), kib, flags), set_memory(name, kib, flags, d))
  COVIRT_OP(void, set_max_memory, "virDomainSetMaxMemory", true, (std::string name, std::uint64_t kib),
            (name = std::move(name), kib), set_memory(name, kib, modify::mem_maximum, d))
  /// flags: modify::live / modify::config / modify::vcpu_maximum, as virDomainSetVcpusFlags.
  COVIRT_OP(void, set_vcpus, "virDomainSetVcpusFlags", true, (std::string name, unsigned count, unsigned flags),
            (name = std::move(name), count, flags), set_vcpus(name, count, flags, d))
  COVIRT_OP(bool, get_autostart, "virDomainGetAutostart", false, (std::string name), (name = std::move(name)),
            get_autostart(name, d))
  COVIRT_OP(void, set_autostart, "virDomainSetAutostart", true, (std::string name, bool on),
            (name = std::move(name), on), set_autostart(name, on, d))

  // Domains: save/restore, dumps, statistics, monitor
  /// Saves the guest's state to `path` and stops it (shut off, reason saved).
  COVIRT_OP(void, save, "virDomainSave", true, (std::string name, std::string path),
            (name = std::move(name), path = std::move(path)), save(name, path, d))
  /// Starts a domain from a file written by async_save.
  COVIRT_OP(domain_ref, restore, "virDomainRestore", true, (std::string path), (path = std::move(path)),
            restore(path, d))
  /// flags: dump_flags (memory_only: an ELF of the guest's memory).
  COVIRT_OP(void, core_dump, "virDomainCoreDumpWithFormat", true, (std::string name, std::string path, unsigned flags),
            (name = std::move(name), path = std::move(path), flags), core_dump(name, path, flags, d))
  /// disk: the target dev ("vda").
  COVIRT_OP(block_stats, block_stats, "virDomainBlockStats", false, (std::string name, std::string disk),
            (name = std::move(name), disk = std::move(disk)), get_block_stats(name, disk, d))
  /// Raw QMP passthrough: `command` is a JSON command object; the result is QEMU's whole reply.
  COVIRT_OP(std::string, qemu_monitor_command, "virDomainQemuMonitorCommand", true,
            (std::string name, std::string command), (name = std::move(name), command = std::move(command)),
            qemu_monitor_command(name, command, d))

  // Domains: devices
  /// Adds one device (<disk>, <interface>) given as XML; flags: device_modify (live: to the
  /// running guest, config: to the definition; current: live if running, else config).
  COVIRT_OP(void, attach_device, "virDomainAttachDeviceFlags", true, (std::string name, std::string xml, unsigned flags),
            (name = std::move(name), xml = std::move(xml), flags), attach_device(name, xml, flags, d))
  /// Removes the device the XML matches. On a running guest the removal needs the guest's
  /// cooperation (PCI unplug): like libvirt, this waits a few seconds for it, then returns and
  /// lets the removal finish when the guest allows it.
  COVIRT_OP(void, detach_device, "virDomainDetachDeviceFlags", true, (std::string name, std::string xml, unsigned flags),
            (name = std::move(name), xml = std::move(xml), flags), detach_device(name, xml, flags, d))

  // Domains: long jobs
  /// The job running on the domain now (save, restore, dump, migration) and its progress.
  COVIRT_OP(job_info, get_job_info, "virDomainGetJobInfo", false, (std::string name), (name = std::move(name)),
            get_job_info(name, d))
  /// Stops the domain's running job; the job's own call then fails with errc::operation_aborted.
  COVIRT_OP(void, abort_job, "virDomainAbortJob", true, (std::string name), (name = std::move(name)),
            abort_job(name, d))
  /// Live migration to the hypervisor behind `dest` (virDomainMigrate3): the guest keeps
  /// running while its state moves, then runs on `dest`; the result is its ref there.
  /// Cancelling the call (or async_abort_job on this connection) cancels the migration and
  /// the guest keeps running here. Both connections must stay open until it completes.
  template <class Token = asio::use_awaitable_t<>>
    requires(!detail::is_diag<Token>)
  auto async_migrate(std::string name, connection& dest, migrate_options opt = {}, Token&& token = {}) {
    return run<domain_ref>("virDomainMigrate3", migrate_call(std::move(name), dest, std::move(opt)), nullptr,
                           std::forward<Token>(token));
  }
  template <class Token = asio::use_awaitable_t<>>
  auto async_migrate(std::string name, connection& dest, migrate_options opt, diagnostics& diag, Token&& token = {}) {
    return run<domain_ref>("virDomainMigrate3", migrate_call(std::move(name), dest, std::move(opt)), &diag,
                           std::forward<Token>(token));
  }

  // Networks
  COVIRT_OP(std::vector<network_ref>, list_networks, "virConnectListAllNetworks", false, (unsigned flags), (flags),
            list_networks(flags, d))
  COVIRT_OP(network_ref, lookup_network, "virNetworkLookupByName", false, (std::string name),
            (name = std::move(name)), lookup_network(name, d))
  COVIRT_OP(network_ref, define_network, "virNetworkDefineXML", true, (std::string xml), (xml = std::move(xml)),
            define_network(xml, d))
  COVIRT_OP(void, undefine_network, "virNetworkUndefine", true, (std::string name), (name = std::move(name)),
            undefine_network(name, d))
  COVIRT_OP(void, create_network, "virNetworkCreate", true, (std::string name), (name = std::move(name)),
            create_network(name, d))
  COVIRT_OP(void, destroy_network, "virNetworkDestroy", true, (std::string name), (name = std::move(name)),
            destroy_network(name, d))
  COVIRT_OP(std::string, get_network_xml, "virNetworkGetXMLDesc", false, (std::string name, unsigned flags),
            (name = std::move(name), flags), get_network_xml(name, flags, d))
  COVIRT_OP(bool, get_network_autostart, "virNetworkGetAutostart", false, (std::string name),
            (name = std::move(name)), get_network_autostart(name, d))
  COVIRT_OP(void, set_network_autostart, "virNetworkSetAutostart", true, (std::string name, bool on),
            (name = std::move(name), on), set_network_autostart(name, on, d))
  COVIRT_OP(std::string, get_network_bridge_name, "virNetworkGetBridgeName", false, (std::string name),
            (name = std::move(name)), get_network_bridge_name(name, d))

private:
  auto migrate_call(std::string name, connection& dest, migrate_options opt) {
    return [this, name = std::move(name), dst = &dest, opt = std::move(opt)](diagnostics& d) {
      return detail::migrate(*impl_, dst->impl_.get(), dst->is_read_only(), name, opt, d);
    };
  }

  // The common path of every operation. `denied_api` is non-null for a mutating call.
  template <class T, class F, class Token>
  auto run(const char* denied_api, F&& f, diagnostics* diag, Token&& token) {
    const char* refused = (denied_api && is_read_only()) ? denied_api : nullptr;
    if constexpr (detail::is_use_awaitable<Token>) {
      return throwing<T>(impl_.get(), refused, std::forward<F>(f), diag);
    } else {
      return asio::async_initiate<Token, typename detail::op_signature<T>::type>(
          [this](auto h, const char* refused, std::decay_t<F> f, diagnostics* diag) {
            auto ex = impl_ ? impl_->get_executor() : asio::get_associated_executor(h);
            auto slot = asio::get_associated_cancellation_slot(h);
            auto hex = asio::get_associated_executor(h, ex);
            asio::co_spawn(ex, as_result<T>(impl_.get(), refused, std::move(f), diag),
                           asio::bind_cancellation_slot(slot, asio::bind_executor(hex,
                               [h = std::move(h)](std::exception_ptr e, result<T> r) mutable {
                                 if (e) r = make_error_code(errc::internal_error);
                                 if constexpr (std::is_void_v<T>) std::move(h)(r ? error_code{} : r.error());
                                 else if (r) std::move(h)(error_code{}, std::move(*r));
                                 else std::move(h)(r.error(), T{});
                               })));
          },
          token, refused, std::forward<F>(f), diag);
    }
  }

  template <class T, class F>
  static op<T> as_result(detail::erased_driver* impl, const char* refused, F f, diagnostics* diag) {
    diagnostics local;
    diagnostics& d = diag ? *diag : local;
    if (!impl) co_return fail(d, errc::invalid_conn, "the connection is not open");
    if (refused) co_return fail(d, errc::operation_denied, std::string("read only access prevents ") + refused);
    co_return co_await f(d);
  }

  template <class T, class F>
  static asio::awaitable<T> throwing(detail::erased_driver* impl, const char* refused, F f, diagnostics* diag) {
    diagnostics local;
    diagnostics& d = diag ? *diag : local;
    if (!impl) throw_error(fail(d, errc::invalid_conn, "the connection is not open"), d);
    if (refused) throw_error(fail(d, errc::operation_denied, std::string("read only access prevents ") + refused), d);
    result<T> r = co_await f(d);
    if (!r) throw_error(r.error(), d);
    if constexpr (!std::is_void_v<T>) co_return std::move(*r);
  }

  std::unique_ptr<detail::erased_driver> impl_;
  covirt::uri uri_;
  unsigned flags_ = 0;
};

#undef COVIRT_OP
#undef COVIRT_P
#undef COVIRT_CAP

/// Makes a driver for a URI whose scheme it was registered under.
using driver_factory = std::function<op<std::unique_ptr<detail::erased_driver>>(
    asio::any_io_executor, const uri&, unsigned flags, diagnostics&)>;

/// Adds (or replaces) the driver for `scheme` ("test", "qemu", ...). The test driver is built in.
void register_driver(std::string scheme, driver_factory factory);

/// The schemes open() knows.
std::vector<std::string> registered_drivers();

namespace detail {
op<connection> open_erased(asio::any_io_executor ex, std::string uri, unsigned flags, diagnostics& diag);
}  // namespace detail

/// Opens a connection (virConnectOpenAuth without auth): parses the URI and asks its driver.
/// Handler: `void(error_code, connection)`. Errors: errc::invalid_arg (malformed URI),
/// errc::no_connect (no driver for the scheme), the driver's own.
/// flags: open_flags::read_only.
template <class Token = asio::use_awaitable_t<>>
  requires(!detail::is_diag<Token>)
auto async_open(asio::any_io_executor ex, std::string uri, unsigned flags = 0, Token&& token = {});

template <class Token = asio::use_awaitable_t<>>
auto async_open(asio::any_io_executor ex, std::string uri, unsigned flags, diagnostics& diag, Token&& token = {}) {
  if constexpr (detail::is_use_awaitable<Token>) {
    return [](asio::any_io_executor ex, std::string uri, unsigned flags, diagnostics& diag) -> asio::awaitable<connection> {
      result<connection> r = co_await detail::open_erased(ex, std::move(uri), flags, diag);
      if (!r) throw_error(r.error(), diag);
      co_return std::move(*r);
    }(std::move(ex), std::move(uri), flags, diag);
  } else {
    return asio::async_initiate<Token, void(error_code, connection)>(
        [](auto h, asio::any_io_executor ex, std::string uri, unsigned flags, diagnostics* diag) {
          auto slot = asio::get_associated_cancellation_slot(h);
          auto hex = asio::get_associated_executor(h, ex);
          asio::co_spawn(ex, detail::open_erased(ex, std::move(uri), flags, *diag),
                         asio::bind_cancellation_slot(slot, asio::bind_executor(hex,
                             [h = std::move(h)](std::exception_ptr e, result<connection> r) mutable {
                               if (e) r = make_error_code(errc::internal_error);
                               if (r) std::move(h)(error_code{}, std::move(*r));
                               else std::move(h)(r.error(), connection{});
                             })));
        },
        token, std::move(ex), std::move(uri), flags, &diag);
  }
}

template <class Token>
  requires(!detail::is_diag<Token>)
auto async_open(asio::any_io_executor ex, std::string uri, unsigned flags, Token&& token) {
  if constexpr (detail::is_use_awaitable<Token>) {
    return [](asio::any_io_executor ex, std::string uri, unsigned flags) -> asio::awaitable<connection> {
      diagnostics diag;
      result<connection> r = co_await detail::open_erased(ex, std::move(uri), flags, diag);
      if (!r) throw_error(r.error(), diag);
      co_return std::move(*r);
    }(std::move(ex), std::move(uri), flags);
  } else {
    // The message has nowhere to go with this token; the code still does.
    auto diag = std::make_shared<diagnostics>();
    return async_open(std::move(ex), std::move(uri), flags, *diag,
                      asio::consign(std::forward<Token>(token), diag));
  }
}

}  // namespace covirt

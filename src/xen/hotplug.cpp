// The Xen driver's attach and detach of disks and interfaces: live through xend's device_create
// and device_destroy (the device id found in xenstore's backend folders, as libvirt did), and in
// the definition (the config file written again).
#include "driver_state.hpp"

namespace covirt::xen {

namespace {

// What the device is called in its backend folder: a disk's target, a NIC's MAC.
std::string key_of(const device_def& dev) {
  if (auto* disk = std::get_if<disk_def>(&dev)) return disk->target_dev;
  return std::get<interface_def>(dev).mac;
}
const char* class_of(const device_def& dev) { return std::holds_alternative<disk_def>(dev) ? "vbd" : "vif"; }

bool same_device(const device_def& dev, const disk_def& d) {
  auto* x = std::get_if<disk_def>(&dev);
  return x && x->target_dev == d.target_dev;
}
bool same_device(const device_def& dev, const interface_def& n) {
  auto* x = std::get_if<interface_def>(&dev);
  return x && !x->mac.empty() && x->mac == n.mac;
}

// Where the change goes: the running domain, its definition, or both (libvirt's flag rules).
struct where_t {
  bool live, config;
};
result<where_t> where(const xen_domain& d, unsigned flags, diagnostics& diag) {
  where_t w{(flags & device_modify::live) != 0, (flags & device_modify::config) != 0};
  if (!w.live && !w.config) (d.active() ? w.live : w.config) = true;
  if (w.live && !d.active()) return fail(diag, errc::operation_invalid, "domain is not running");
  if (w.config && !d.persistent) return fail(diag, errc::operation_invalid, "cannot modify device on transient domain");
  return w;
}

}  // namespace

op<void> driver::attach_device(const domain_key& key, std::string_view xml, unsigned flags, diagnostics& diag) {
  auto s = s_;
  auto dev = parse_device_xml(xml, diag);
  if (!dev) co_return failure(dev.error());
  auto d = co_await s->find(key, diag);
  if (!d) co_return failure(d.error());
  auto& dom = **d;
  auto w = where(dom, flags, diag);
  if (!w) co_return failure(w.error());
  if (auto* nic = std::get_if<interface_def>(&*dev); nic && nic->mac.empty()) nic->mac = random_mac();
  if (w->live) {
    sxpr_context ctx;
    ctx.xend_config_version = s->config_version;
    const bool hvm = dom.def.os.type == "hvm";
    auto config = std::visit([&](const auto& x) { return device_to_sxpr(x, hvm, ctx, diag); }, *dev);
    if (!config) co_return failure(config.error());
    const form_t form = fields("config", *config);
    auto r = co_await s->domain_op(dom, "device_create", form, diag);
    if (!r) co_return failure(r.error());
  }
  if (w->config) {
    domain_config next = dom.persistent_def();
    if (auto* disk = std::get_if<disk_def>(&*dev)) {
      for (auto& x : next.devices.disks)
        if (x.target_dev == disk->target_dev)
          co_return fail(diag, errc::operation_failed, "target " + disk->target_dev + " already exists");
      next.devices.disks.push_back(*disk);
    } else {
      next.devices.interfaces.push_back(std::get<interface_def>(*dev));
    }
    if (auto wr = s->write_config(next, diag); !wr) co_return wr;
    dom.persistent_def_mut() = std::move(next);
  }
  co_return result<void>();
}

op<void> driver::detach_device(const domain_key& key, std::string_view xml, unsigned flags, diagnostics& diag) {
  auto s = s_;
  auto dev = parse_device_xml(xml, diag);
  if (!dev) co_return failure(dev.error());
  auto d = co_await s->find(key, diag);
  if (!d) co_return failure(d.error());
  auto& dom = **d;
  auto w = where(dom, flags, diag);
  if (!w) co_return failure(w.error());
  const std::string wanted = key_of(*dev);
  const std::string cls = class_of(*dev);
  if (wanted.empty()) co_return fail(diag, errc::invalid_arg, "the device names no target or MAC address to detach");
  if (w->live) {
    // The backend folder holds one entry per device id: its `dev` (disks) or `mac` (NICs).
    const std::string folder = "/local/domain/0/backend/" + cls + "/" + std::to_string(dom.id);
    auto ids = co_await s->xs.directory(folder, diag);
    std::string devid;
    if (ids) {
      for (const auto& id : *ids) {
        const std::string node = folder + "/" + id + (cls == "vbd" ? "/dev" : "/mac");
        diagnostics ignore;
        auto v = co_await s->xs.read(node, ignore);
        if (v && (*v == wanted || v->substr(0, v->find(':')) == wanted)) {
          devid = id;
          break;
        }
      }
    }
    if (devid.empty())
      co_return fail(diag, errc::operation_failed, "device " + wanted + " not found in the running domain");
    const form_t form = fields("type", cls, "dev", devid, "force", "0", "rm_cfg", "1");
    auto r = co_await s->domain_op(dom, "device_destroy", form, diag);
    if (!r) co_return failure(r.error());
  }
  if (w->config) {
    domain_config next = dom.persistent_def();
    auto& disks = next.devices.disks;
    auto& nics = next.devices.interfaces;
    const std::size_t before = disks.size() + nics.size();
    std::erase_if(disks, [&](const disk_def& x) { return same_device(*dev, x); });
    std::erase_if(nics, [&](const interface_def& x) { return same_device(*dev, x); });
    if (disks.size() + nics.size() == before)
      co_return fail(diag, errc::operation_failed, "no device " + wanted + " in the definition");
    if (auto wr = s->write_config(next, diag); !wr) co_return wr;
    dom.persistent_def_mut() = std::move(next);
  }
  co_return result<void>();
}

}  // namespace covirt::xen

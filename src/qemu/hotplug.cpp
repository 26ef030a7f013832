// The QEMU driver: attach and detach of disks and interfaces, live (QMP) and in the definition.
#include "driver_state.hpp"

#include <pugixml.hpp>
#include <cstdio>
#include <set>
#include <sstream>

namespace covirt::qemu {

namespace {

std::string disk_bus(const disk_def& x) {
  if (!x.target_bus.empty()) return x.target_bus;
  auto p = x.target_dev.substr(0, 2);
  return p == "vd" ? "virtio" : p == "sd" ? "scsi" : p == "hd" ? "ide" : p == "fd" ? "fdc" : "xen";
}

// libvirt's matching for detach: a disk by its target, an interface by its MAC (or the only one).
result<std::size_t> find_device(const domain_config& def, const device_variant& dev, diagnostics& diag) {
  if (auto* x = std::get_if<disk_def>(&dev)) {
    const auto& v = def.devices.disks;
    for (std::size_t i = 0; i < v.size(); ++i)
      if (v[i].target_dev == x->target_dev) return i;
    return fail(diag, errc::device_missing, "disk " + x->target_dev + " not found");
  }
  const auto& n = std::get<interface_def>(dev);
  const auto& v = def.devices.interfaces;
  std::optional<std::size_t> found;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (!n.mac.empty() ? v[i].mac == n.mac : v[i].type == n.type) {
      if (found) return fail(diag, errc::operation_failed, "multiple devices matching MAC address " + n.mac + " found");
      found = i;
    }
  }
  if (!found)
    return fail(diag, errc::device_missing,
                n.mac.empty() ? "no interface of type " + q(n.type) + " found" : "no device matching MAC address " + n.mac + " found");
  return *found;
}

result<void> check_new_device(const domain_config& def, const device_variant& dev, diagnostics& diag) {
  if (auto* x = std::get_if<disk_def>(&dev)) {
    for (auto& e : def.devices.disks)
      if (e.target_dev == x->target_dev) return fail(diag, errc::operation_failed, "target " + x->target_dev + " already exists");
    return {};
  }
  auto& n = std::get<interface_def>(dev);
  for (auto& e : def.devices.interfaces)
    if (e.mac == n.mac) return fail(diag, errc::operation_failed, "a device with MAC address " + n.mac + " already exists");
  return {};
}

void add_device(domain_config& def, device_variant dev) {
  if (auto* x = std::get_if<disk_def>(&dev)) def.devices.disks.push_back(std::move(*x));
  else def.devices.interfaces.push_back(std::move(std::get<interface_def>(dev)));
  def.has_devices = true;
}

// The block node layer names of a disk: its format node "...-format" sits on "...-storage".
std::string storage_node(const std::string& format_node) {
  auto at = format_node.rfind("-format");
  return at == std::string::npos ? format_node + "-storage" : format_node.substr(0, at) + "-storage";
}

std::string hex_bus(unsigned v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%02x", v);
  return buf;
}

}  // namespace

// Adds the device to the running QEMU (backend, then the PCI device) and to the live definition.
asio::awaitable<result<void>> driver::state::hotplug(dom_ptr d, std::shared_ptr<runtime> rt, device_variant dev,
                                                     diagnostics& diag) {
  domain_config& def = d->def;
  // Whatever the command line would refuse (a comma-free path is no check here: values go in JSON).
  {
    domain_config probe = def;
    add_device(probe, dev);
    argv_options opt;
    opt.kvm_available = true;
    if (auto a = build_argv(probe, opt, diag); !a) co_return a.error();
  }
  const bool q35 = def.os.machine == "q35" || def.os.machine.rfind("pc-q35", 0) == 0;
  json::object placement;
  std::optional<device_address> addr;
  if (q35) {
    // PCIe's root bus takes no hotplug: the device goes on an empty root port.
    std::set<unsigned> used;
    auto note = [&](const device_common& c) {
      if (c.address && c.address->type == "pci" && !c.address->get("bus").empty())
        used.insert(static_cast<unsigned>(std::strtoul(std::string(c.address->get("bus")).c_str(), nullptr, 0)));
    };
    for (auto& x : def.devices.disks) note(x);
    for (auto& x : def.devices.interfaces) note(x);
    for (auto& x : def.devices.controllers) note(x);
    std::optional<unsigned> port;
    for (auto& c : def.devices.controllers)
      if (c.type == "pci" && c.model == "pcie-root-port" && c.index && !used.count(*c.index)) {
        port = *c.index;
        break;
      }
    if (!port)
      co_return fail(diag, errc::operation_failed,
                     "no free PCIe root port to hotplug into (a q35 machine's pcie.0 takes no hotplug): define the domain with "
                     "spare <controller type='pci' index='N' model='pcie-root-port'/>");
    placement["bus"] = "pci." + std::to_string(*port);
    placement["addr"] = "0x0";
    addr = device_address{"pci", {}};
    addr->set("domain", "0x0000");
    addr->set("bus", hex_bus(*port));
    addr->set("slot", "0x00");
    addr->set("function", "0x0");
  }

  auto run = [&](const char* cmd, json::object args) -> asio::awaitable<result<json::value>> {
    std::string c = cmd;
    co_return co_await call(rt, c, std::move(args), diag);
  };
  auto undo = [&](const char* cmd, const char* key, std::string value) -> asio::awaitable<void> {
    json::object a;
    a[key] = value;
    diagnostics ignore;
    std::string c = cmd;
    (void)co_await call(rt, c, std::move(a), ignore, 5s);
  };

  std::string id;
  std::string format_node;
  if (auto* x = std::get_if<disk_def>(&dev)) {
    if (x->device != "disk")
      co_return fail(diag, errc::config_unsupported, "hotplug of a disk with device " + q(x->device) + " (covirt hotplugs device='disk' on bus 'virtio')");
    if (disk_bus(*x) != "virtio")
      co_return fail(diag, errc::config_unsupported, "hotplug of a disk on bus " + q(disk_bus(*x)) + " (covirt hotplugs virtio disks)");
    std::string path = x->source ? (x->type == "block" ? x->source->dev : x->source->file) : std::string();
    if (path.empty()) co_return fail(diag, errc::invalid_arg, "disk " + x->target_dev + " has no source to attach");
    auto idx = disk_target_index(x->target_dev);
    id = "virtio-disk" + std::to_string(idx.value_or(0));
    format_node = "hp-" + id + "-format";
    json::object st;
    st["driver"] = x->type == "block" ? "host_device" : "file";
    st["filename"] = path;
    st["node-name"] = storage_node(format_node);
    st["auto-read-only"] = true;
    json::object cache;
    std::string cm = x->driver ? x->driver->cache : std::string();
    bool has_cache = !cm.empty() && cm != "default";
    if (has_cache) {
      cache["direct"] = cm == "none" || cm == "directsync";
      cache["no-flush"] = cm == "unsafe";
      st["cache"] = cache;
    }
    if (x->driver && !x->driver->io.empty()) st["aio"] = x->driver->io;
    if (x->driver && !x->driver->discard.empty()) st["discard"] = x->driver->discard;
    if (auto r = co_await run("blockdev-add", std::move(st)); !r) co_return command_failed(d, rt, r.error(), diag);
    json::object fm;
    fm["node-name"] = format_node;
    fm["read-only"] = x->readonly;
    fm["driver"] = x->driver && !x->driver->type.empty() ? x->driver->type : std::string("raw");
    fm["file"] = storage_node(format_node);
    if (has_cache) fm["cache"] = cache;
    if (auto r = co_await run("blockdev-add", std::move(fm)); !r) {
      auto f = command_failed(d, rt, r.error(), diag);
      co_await undo("blockdev-del", "node-name", storage_node(format_node));
      co_return f;
    }
    json::object dv = placement;
    dv["driver"] = "virtio-blk-pci";
    dv["drive"] = format_node;
    dv["id"] = id;
    if (has_cache) dv["write-cache"] = cm == "writethrough" || cm == "directsync" ? "off" : "on";
    if (auto r = co_await run("device_add", std::move(dv)); !r) {
      auto f = command_failed(d, rt, r.error(), diag);
      co_await undo("blockdev-del", "node-name", format_node);
      co_await undo("blockdev-del", "node-name", storage_node(format_node));
      co_return f;
    }
  } else {
    auto& n = std::get<interface_def>(dev);
    std::set<std::string> taken;
    for (auto& e : def.devices.interfaces) taken.insert(e.alias);
    for (int k = 0;; ++k)
      if (!taken.count("net" + std::to_string(k))) {
        id = "net" + std::to_string(k);
        break;
      }
    json::object nd;
    nd["id"] = "host" + id;
    if (n.type == "user") nd["type"] = "user";
    else if (n.type == "bridge") {
      nd["type"] = "bridge";
      nd["br"] = n.source ? n.source->bridge : std::string();
    } else if (n.type == "ethernet") {
      nd["type"] = "tap";
      if (n.target_dev) nd["ifname"] = *n.target_dev;
      nd["script"] = "no";
      nd["downscript"] = "no";
    } else {
      co_return fail(diag, errc::config_unsupported, "hotplug of interface type " + q(n.type));
    }
    if (auto r = co_await run("netdev_add", std::move(nd)); !r) co_return command_failed(d, rt, r.error(), diag);
    static const std::map<std::string, std::string, std::less<>> models = {
        {"virtio", "virtio-net-pci"}, {"e1000", "e1000"}, {"e1000e", "e1000e"}, {"rtl8139", "rtl8139"},
        {"ne2k_pci", "ne2k_pci"},    {"pcnet", "pcnet"}, {"vmxnet3", "vmxnet3"}};
    auto model = models.find(n.model_type.empty() ? std::string("rtl8139") : n.model_type);
    json::object dv = placement;
    dv["driver"] = model->second;  // build_argv above refused unknown models
    dv["netdev"] = "host" + id;
    dv["id"] = id;
    dv["mac"] = n.mac;
    if (auto r = co_await run("device_add", std::move(dv)); !r) {
      auto f = command_failed(d, rt, r.error(), diag);
      co_await undo("netdev_del", "id", "host" + id);
      co_return f;
    }
  }

  if (!addr) {
    // i440fx: QEMU chose the slot; record it so that a migration recreates the same machine.
    diagnostics ignore;
    if (auto r = co_await run("query-pci", {}); r && r->is_array())
      for (auto& bus : r->as_array()) {
        auto* devs = bus.is_object() ? bus.as_object().if_contains("devices") : nullptr;
        if (!devs || !devs->is_array()) continue;
        for (auto& e : devs->as_array()) {
          if (!e.is_object()) continue;
          auto& o = e.as_object();
          auto* qid = o.if_contains("qdev_id");
          if (!qid || !qid->is_string() || qid->as_string() != id) continue;
          auto num = [&](const char* k) { auto* v = o.if_contains(k); return v && v->is_int64() ? unsigned(v->as_int64()) : 0u; };
          addr = device_address{"pci", {}};
          addr->set("domain", "0x0000");
          addr->set("bus", hex_bus(num("bus")));
          addr->set("slot", hex_bus(num("slot")));
          addr->set("function", "0x" + std::to_string(num("function")));
        }
      }
  }
  std::visit([&](auto& x) {
    x.alias = id;
    x.address = addr;
  }, dev);
  if (auto* x = std::get_if<disk_def>(&dev)) rt->rec.extra["node:" + x->target_dev] = format_node;
  add_device(def, std::move(dev));
  domain_format_options fo;
  fo.id = d->id;
  rt->rec.live_xml = format_domain_xml(def, fo);
  persist(*d);
  co_return result<void>{};
}

// After QEMU removed the device `id`: its backend goes too, and it leaves the live definition.
asio::awaitable<void> driver::state::remove_backend(dom_ptr d, std::shared_ptr<runtime> rt, std::string id) {
  auto& disks = d->def.devices.disks;
  auto& nets = d->def.devices.interfaces;
  diagnostics ignore;
  if (auto it = std::find_if(disks.begin(), disks.end(), [&](auto& x) { return x.alias == id; }); it != disks.end()) {
    std::string key = "node:" + it->target_dev;
    if (auto nn = rt->rec.extra.find(key); nn != rt->rec.extra.end()) {
      std::string fmt = nn->second;
      rt->rec.extra.erase(nn);
      for (std::string node : {fmt, storage_node(fmt)}) {
        json::object a;
        a["node-name"] = node;
        std::string c = "blockdev-del";
        (void)co_await call(rt, c, std::move(a), ignore, 5s);
      }
    }
    // The loop above may have let another event in: look again before erasing.
    std::erase_if(disks, [&](auto& x) { return x.alias == id; });
  } else if (std::any_of(nets.begin(), nets.end(), [&](auto& x) { return x.alias == id; })) {
    json::object a;
    a["id"] = "host" + id;
    std::string c = "netdev_del";
    (void)co_await call(rt, c, std::move(a), ignore, 5s);
    std::erase_if(nets, [&](auto& x) { return x.alias == id; });
  } else {
    co_return;
  }
  if (d->rt != rt || rt->finished) co_return;
  domain_format_options fo;
  fo.id = d->id;
  rt->rec.live_xml = format_domain_xml(d->def, fo);
  persist(*d);
}

op<void> driver::attach_device(const domain_key& key, std::string_view xml, unsigned flags, diagnostics& diag) {
  return s_->attach_job(key, xml, flags, diag);
}

asio::awaitable<result<driver::state::device_change>> driver::state::begin_device_job(
    const domain_key& key, std::string_view xml, unsigned flags, diagnostics& diag) {
  auto dev = parse_device_xml(xml, diag);
  if (!dev) co_return dev.error();
  auto j = co_await begin_job(shared_from_this(), key, diag);
  if (!j) co_return j.error();
  const dom_ptr& d = j->guard.d;
  // virDomainModificationImpact, as every --live/--config call of this driver (force is a CD-ROM's).
  auto how = impact_of(*d, flags & ~device_modify::force, false, diag);
  if (!how) co_return how.error();
  co_return device_change{std::move(*j), std::move(*dev), how->live, how->config};
}

op<void> driver::state::attach_job(const domain_key& key, std::string_view xml, unsigned flags, diagnostics& diag) {
  auto c = co_await begin_device_job(key, xml, flags, diag);
  if (!c) co_return c.error();
  auto& [job, dev, live, config] = *c;
  auto [s, d, rt] = job.parts();
  if (auto* n = std::get_if<interface_def>(&dev); n && n->mac.empty()) n->mac = random_mac();
  if (config)
    if (auto ok = check_new_device(d->persistent_def(), dev, diag); !ok) co_return ok.error();
  if (live) {
    if (auto ok = check_new_device(d->def, dev, diag); !ok) co_return ok.error();
    if (auto h = co_await s->hotplug(d, rt, dev, diag); !h) co_return h.error();
  }
  if (config) {
    domain_config next = d->persistent_def();
    add_device(next, std::move(dev));
    argv_options opt;
    opt.kvm_available = true;
    if (!live)
      if (auto a = build_argv(next, opt, diag); !a) co_return a.error();
    if (auto w = co_await s->store_definition(next.name, format_domain_xml(next), diag); !w) co_return w.error();
    d->persistent_def_mut() = std::move(next);
  }
  co_return result<void>{};
}

op<void> driver::detach_device(const domain_key& key, std::string_view xml, unsigned flags, diagnostics& diag) {
  return state::cleanup_on_cancel<void>([s = s_, key = key, xml = std::string(xml), flags, &diag] {
    return s->detach_job(key, xml, flags, diag);
  });
}

op<void> driver::state::detach_job(const domain_key& key, std::string_view xml, unsigned flags, diagnostics& diag) {
  auto c = co_await begin_device_job(key, xml, flags, diag);
  if (!c) co_return c.error();
  auto& [job, dev, live, config] = *c;
  auto [s, d, rt] = job.parts();
  std::optional<std::size_t> in_config;
  if (config) {
    auto at = find_device(d->persistent_def(), dev, diag);
    if (!at) co_return at.error();
    in_config = *at;
  }
  if (live) {
    auto at = find_device(d->def, dev, diag);
    if (!at) co_return at.error();
    std::string id;
    if (std::holds_alternative<disk_def>(dev)) {
      const auto& x = d->def.devices.disks[*at];
      if (disk_bus(x) != "virtio" || x.alias.empty())
        co_return fail(diag, errc::operation_unsupported, "hot unplug of a disk on bus " + q(disk_bus(x)) + " is not supported");
      id = x.alias;
    } else {
      id = d->def.devices.interfaces[*at].alias;
      if (id.empty()) co_return fail(diag, errc::operation_unsupported, "this interface has no device alias to unplug");
    }
    auto wait = std::make_shared<asio::steady_timer>(s->ex, 5s);
    rt->unplugs[id] = wait;
    json::object a;
    a["id"] = id;
    std::string c = "device_del";
    if (auto rr = co_await s->call(rt, c, std::move(a), diag); !rr) {
      rt->unplugs.erase(id);
      co_return s->command_failed(d, rt, rr.error(), diag);
    }
    // The guest must let go of the device (ACPI or PCIe hotplug); like libvirt, wait a while for
    // DEVICE_DELETED, and past that leave the removal to the event handler.
    (void)co_await wait->async_wait(asio::as_tuple(asio::use_awaitable));
    if (auto it = rt->unplugs.find(id); it != rt->unplugs.end() && it->second == wait && co_await caller_cancelled())
      co_return fail(diag, errc::operation_aborted, "detaching device " + q(id) + " was cancelled; the guest may still release it");
  }
  if (config) {
    domain_config next = d->persistent_def();
    if (std::holds_alternative<disk_def>(dev)) next.devices.disks.erase(next.devices.disks.begin() + static_cast<long>(*in_config));
    else next.devices.interfaces.erase(next.devices.interfaces.begin() + static_cast<long>(*in_config));
    if (auto w = co_await s->store_definition(next.name, format_domain_xml(next), diag); !w) co_return w.error();
    d->persistent_def_mut() = std::move(next);
  }
  co_return result<void>{};
}

}  // namespace covirt::qemu

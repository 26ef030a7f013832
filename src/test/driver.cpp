// The test driver: libvirt's test:/// in memory, rule for rule.
#include "driver_state.hpp"
#include "../common/listed_domains.hpp"

#include <pugixml.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <unordered_map>
#include <sstream>

#include <unistd.h>

namespace covirt::test {

namespace {

// libvirt 9.0's test:///default, as `virsh -c test:///default dumpxml test` prints it.
constexpr std::string_view default_domain_xml = R"(<domain type='test'>
  <name>test</name>
  <uuid>6695eb01-f6a4-8304-79aa-97f2502e193f</uuid>
  <memory unit='KiB'>8388608</memory>
  <currentMemory unit='KiB'>2097152</currentMemory>
  <vcpu placement='static'>2</vcpu>
  <os>
    <type arch='i686'>hvm</type>
    <boot dev='hd'/>
  </os>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'>
      <source file='/guest/diskimage1'/>
      <target dev='vda' bus='virtio'/>
      <address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>
    </disk>
    <interface type='network'>
      <mac address='aa:bb:cc:dd:ee:ff'/>
      <source network='default'/>
      <target dev='testnet0'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x01' function='0x0'/>
    </interface>
    <memballoon model='virtio'>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x0'/>
    </memballoon>
  </devices>
</domain>
)";

constexpr std::string_view default_network_xml = R"(<network>
  <name>default</name>
  <uuid>dd8fe884-6c02-601e-7551-cca97df1c5df</uuid>
  <forward mode='nat'/>
  <bridge name='virbr0' stp='on' delay='0'/>
  <ip address='192.168.122.1' netmask='255.255.255.0'>
    <dhcp>
      <range start='192.168.122.2' end='192.168.122.254'/>
    </dhcp>
  </ip>
</network>
)";

constexpr int max_vcpus = 32;  // testConnectGetMaxVcpus

std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
}

}  // namespace

using namespace impl;

driver::driver(asio::any_io_executor ex) : s_(new state, [](state* s) { delete s; }) { s_->ex = std::move(ex); }


result<void> driver::load_default(diagnostics& diag) {
  // libvirt's default domain runs for no recorded reason: `domstate --reason test` says "running (unknown)".
  if (auto r = s_->add_domain_xml(default_domain_xml, true, diag, reason::running_unknown); !r) return r;
  return s_->add_network_xml(default_network_xml, true, diag);
}

result<void> driver::load_file(const std::string& path, diagnostics& diag) {
  namespace fs = std::filesystem;
  std::error_code fec;
  auto size = fs::file_size(path, fec);
  if (fec) return fail(diag, errc::xml_error, "cannot read node file " + q(path) + ": " + fec.message());
  if (size > (16u << 20)) return fail(diag, errc::xml_error, "node file " + q(path) + " is larger than 16 MiB");
  pugi::xml_document doc;
  auto pr = doc.load_file(path.c_str(), pugi::parse_default & ~pugi::parse_doctype);
  if (!pr) return fail(diag, errc::xml_error, "node file " + q(path) + ": " + pr.description() + " at offset " +
                                                  std::to_string(pr.offset));
  auto node = doc.child("node");
  if (!node) return fail(diag, errc::xml_error, "node file " + q(path) + " has no <node> root element");
  auto& ni = s_->node;
  if (auto cpu = node.child("cpu")) {
    auto num = [&](const char* n, unsigned& out) {
      if (auto c = cpu.child(n)) out = c.text().as_uint(out);
    };
    num("nodes", ni.nodes); num("sockets", ni.sockets); num("cores", ni.cores); num("threads", ni.threads);
    num("active", ni.cpus); num("mhz", ni.mhz);
    if (auto m = cpu.child("model")) ni.model = m.text().get();
    if (!cpu.child("active")) ni.cpus = ni.nodes * ni.sockets * ni.cores * ni.threads;
  }
  if (auto m = node.child("memory")) ni.memory_kib = m.text().as_ullong(ni.memory_kib);
  fs::path base = fs::path(path).parent_path();
  auto content = [&](pugi::xml_node n, std::string& out) -> result<void> {
    if (auto f = n.attribute("file")) {
      fs::path p = f.value();
      if (p.is_relative()) p = base / p;
      std::ifstream in(p);
      if (!in) return fail(diag, errc::open_failed, "cannot read " + q(p.string()) + " named in " + q(path));
      std::ostringstream ss;
      ss << in.rdbuf();
      out = ss.str();
    } else {
      std::ostringstream ss;
      n.print(ss, "  ", pugi::format_default | pugi::format_no_declaration);
      out = ss.str();
    }
    return {};
  };
  for (auto d : node.children("domain")) {
    std::string xml;
    if (auto r = content(d, xml); !r) return r;
    if (auto r = s_->add_domain_xml(xml, true, diag, reason::running_unknown); !r) {
      diag.assign("in " + path + ": " + std::string(diag.message()));
      return r;
    }
  }
  for (auto n : node.children("network")) {
    std::string xml;
    if (auto r = content(n, xml); !r) return r;
    if (auto r = s_->add_network_xml(xml, true, diag); !r) {
      diag.assign("in " + path + ": " + std::string(diag.message()));
      return r;
    }
  }
  return {};
}

result<void> driver::close_now(diagnostics&) {
  s_->events.close_all();
  return result<void>{};
}

result<std::string> driver::get_hostname_now(diagnostics& diag) {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return fail(diag, errc::system_error, "gethostname failed");
  return std::string(buf);
}

result<std::uint64_t> driver::get_version_now(diagnostics&) { return std::uint64_t{2}; }  // "TEST 0.0.2"

result<std::string> driver::get_capabilities_now(diagnostics&) {
  if (s_->caps_xml.empty()) s_->caps_xml = format_capabilities_xml(test_driver_default_capabilities());
  return s_->caps_xml;
}

result<node_info> driver::node_get_info_now(diagnostics&) { return s_->node; }

result<int> driver::get_max_vcpus_now(std::string_view, diagnostics&) { return max_vcpus; }


result<domain_ref> driver::define_xml_now(std::string_view xml, diagnostics& diag) {
  auto def = parse_domain_xml(xml, diag);
  if (!def) return def.error();
  if (auto r = normalize_domain_for_test_driver(*def, diag); !r) return r.error();
  auto at = s_->admit(*def, false, diag);
  if (!at) return at.error();
  if (dom* d = *at) {
    s_->doms.redefine(*d, std::move(*def));
    return d->ref();
  }
  auto d = s_->doms.add(std::move(*def), true);
  s_->emit(*d, event_type::defined, event_detail::defined_added);
  return d->ref();
}

result<void> driver::undefine_now(const domain_key& key, diagnostics& diag) {
  auto d = s_->get(key, diag);
  if (!d) return failure(d.error());
  s_->doms.undefine(**d);
  return result<void>{};
}

result<void> driver::create_now(const domain_key& key, diagnostics& diag) {
  auto d = s_->get(key, diag);
  if (!d) return failure(d.error());
  if ((*d)->active()) return fail(diag, errc::internal_error, "Domain " + q((*d)->def.name) + " is already running");
  s_->start(**d, reason::booted);
  s_->emit(**d, event_type::started, event_detail::started_booted);
  return result<void>{};
}

result<domain_ref> driver::create_xml_now(std::string_view xml, unsigned flags, diagnostics& diag) {
  constexpr unsigned start_paused = 1;  // VIR_DOMAIN_START_PAUSED
  auto def = parse_domain_xml(xml, diag);
  if (!def) return def.error();
  if (auto r = normalize_domain_for_test_driver(*def, diag); !r) return r.error();
  auto at = s_->admit(*def, true, diag);
  if (!at) return at.error();
  dom* d = *at;
  // A persistent domain started with other XML: that XML is for this run only.
  if (d) s_->doms.run_instead(*d, std::move(*def));
  else d = s_->doms.add(std::move(*def), false).get();
  s_->start(*d, reason::booted);
  s_->emit(*d, event_type::started, event_detail::started_booted);
  if (flags & start_paused) {
    d->state = domain_state::paused;
    d->reason = reason::user;
    s_->emit(*d, event_type::suspended, event_detail::suspended_paused);
  }
  return d->ref();
}

result<void> driver::destroy_now(const domain_key& key, diagnostics& diag) {
  auto d = s_->get_active(key, diag);
  if (!d) return failure(d.error());
  s_->stop(**d, reason::destroyed, event_detail::stopped_destroyed);
  return result<void>{};
}

result<void> driver::shutdown_now(const domain_key& key, diagnostics& diag) {
  auto d = s_->get(key, diag);
  if (!d) return failure(d.error());
  if ((*d)->state != domain_state::running)
    return fail(diag, errc::internal_error, "domain " + q((*d)->def.name) + " not running");
  s_->stop(**d, reason::shutdown, event_detail::stopped_shutdown);
  return result<void>{};
}

result<void> driver::reboot_now(const domain_key& key, diagnostics& diag) {
  auto d = s_->get_active(key, diag);
  if (!d) return failure(d.error());
  dom& x = **d;
  // testDomainReboot: the on_reboot action decides; only a stop is an event.
  const std::string& action = x.def.on_reboot;
  if (action == "destroy" || action == "preserve") {
    s_->stop(x, reason::shutdown, event_detail::stopped_shutdown);
  } else {
    x.state = domain_state::running;
    x.reason = reason::booted;
    x.changed();
  }
  return result<void>{};
}

result<void> driver::suspend_now(const domain_key& key, diagnostics& diag) { return s_->set_paused(key, true, diag); }

result<void> driver::resume_now(const domain_key& key, diagnostics& diag) { return s_->set_paused(key, false, diag); }

result<domain_info> driver::get_info_now(const domain_key& key, diagnostics& diag) {
  auto found = s_->get(key, diag);
  if (!found) return failure(found.error());
  dom* d = *found;
  const auto& def = d->def;
  return domain_info{d->state, def.memory_kib, def.current_memory_kib, def.vcpu_current.value_or(def.vcpus),
                        now_ns()};
}

// testDomainGetOSType answers "linux" whatever the XML says.
result<std::string> driver::get_os_type_now(const domain_key& key, diagnostics& diag) {
  auto d = s_->get(key, diag);
  if (!d) return failure(d.error());
  return std::string("linux");
}

result<security_model> driver::node_get_security_model_now(diagnostics&) {
  return security_model{"testSecurity", ""};
}

// A label only while the domain runs, as virsh dominfo shows on libvirt's test driver.
result<security_label> driver::get_security_label_now(const domain_key& key, diagnostics& diag) {
  auto found = s_->get(key, diag);
  if (!found) return failure(found.error());
  if (!(*found)->active()) return security_label{};
  return security_label{"libvirt-test", true};
}

result<std::string> driver::get_xml_now(const domain_key& key, unsigned flags, diagnostics& diag) {
  auto found = s_->get(key, diag);
  if (!found) return failure(found.error());
  dom* d = *found;
  domain_format_options opt;
  opt.secure = (flags & xml_flags::secure) == 0;
  if ((flags & xml_flags::inactive) || !d->active()) {
    if (!opt.secure) return format_domain_xml(d->persistent_def(), opt);
    if (d->xml_inactive_cache.empty()) d->xml_inactive_cache = format_domain_xml(d->persistent_def(), opt);
    return d->xml_inactive_cache;
  }
  opt.id = d->id;
  if (!opt.secure) return format_domain_xml(d->def, opt);
  if (d->xml_cache.empty()) d->xml_cache = format_domain_xml(d->def, opt);
  return d->xml_cache;
}




// virDomainObjUpdateModificationImpact: "current" is live on a running domain, config otherwise.
static result<std::pair<bool, bool>> impact(const dom& d, unsigned flags, diagnostics& diag) {
  bool live = flags & modify::live, config = flags & modify::config;
  if (!live && !config) (d.active() ? live : config) = true;
  if (live && !d.active()) return fail(diag, errc::operation_invalid, "domain is not running");
  if (config && !d.persistent) return fail(diag, errc::operation_invalid, "transient domains do not have any persistent config");
  return std::pair{live, config};
}

result<void> driver::set_max_memory_now(const domain_key& key, std::uint64_t kib, diagnostics& diag) {
  return set_memory_now(key, kib, modify::mem_maximum, diag);
}

result<void> driver::set_memory_now(const domain_key& key, std::uint64_t kib, unsigned flags, diagnostics& diag) {
  auto d = s_->get(key, diag);
  if (!d) return failure(d.error());
  dom& x = **d;
  auto im = impact(x, flags & (modify::live | modify::config), diag);
  if (!im) return im.error();
  auto [live, config] = *im;
  if (kib == 0) return fail(diag, errc::invalid_arg, "memory size must be greater than zero");
  if (flags & modify::mem_maximum) {
    if (live) return fail(diag, errc::operation_invalid, "cannot resize the maximum memory on an active domain");
    auto& def = x.persistent_def_mut();
    def.memory_kib = kib;
    if (def.current_memory_kib > kib) def.current_memory_kib = kib;
  } else {
    if (live) {
      if (kib > x.def.memory_kib) return fail(diag, errc::invalid_arg, "cannot set memory higher than max memory");
    }
    if (config && kib > x.persistent_def().memory_kib)
      return fail(diag, errc::invalid_arg, "cannot set memory higher than max memory");
    if (live) x.def.current_memory_kib = kib;
    if (config) x.persistent_def_mut().current_memory_kib = kib;
  }
  x.changed();
  return result<void>{};
}

result<void> driver::set_vcpus_now(const domain_key& key, unsigned count, unsigned flags, diagnostics& diag) {
  auto d = s_->get(key, diag);
  if (!d) return failure(d.error());
  dom& x = **d;
  if (count == 0) return fail(diag, errc::invalid_arg, "argument unsupported: count of vCPUs must be at least 1");
  auto im = impact(x, flags & (modify::live | modify::config), diag);
  if (!im) return im.error();
  auto [live, config] = *im;
  if ((flags & modify::vcpu_maximum) && live)
    return fail(diag, errc::invalid_arg, "cannot set max vcpu count of a live domain");
  if (count > static_cast<unsigned>(max_vcpus))
    return fail(diag, errc::invalid_arg, "requested cpu amount exceeds maximum supported amount (" +
                                                std::to_string(count) + " > " + std::to_string(max_vcpus) + ")");
  auto check = [&](const domain_config& def) -> result<void> {
    if (!(flags & modify::vcpu_maximum) && count > def.vcpus)
      return fail(diag, errc::invalid_arg, "requested cpu amount exceeds maximum (" + std::to_string(count) + " > " +
                                               std::to_string(def.vcpus) + ")");
    return {};
  };
  if (live) if (auto r = check(x.def); !r) return r.error();
  if (config) if (auto r = check(x.persistent_def()); !r) return r.error();
  auto apply = [&](domain_config& def) {
    if (flags & modify::vcpu_maximum) {
      unsigned current = def.vcpu_current.value_or(def.vcpus);
      def.vcpus = count;
      if (current < count) def.vcpu_current = current;
      else def.vcpu_current.reset();
    } else {
      if (count == def.vcpus) def.vcpu_current.reset();
      else def.vcpu_current = count;
    }
  };
  if (live) apply(x.def);
  if (config) apply(x.persistent_def_mut());
  x.changed();
  return result<void>{};
}


result<void> driver::set_autostart_now(const domain_key& key, bool on, diagnostics& diag) {
  auto d = s_->get(key, diag);
  if (!d) return failure(d.error());
  (*d)->autostart = on;
  return result<void>{};
}

result<std::vector<network_ref>> driver::list_networks_now(unsigned flags, diagnostics&) {
  using namespace network_list_flags;
  std::vector<network_ref> out;
  for (auto& [k, n] : s_->nets) {
    if ((flags & (active | inactive)) && !((flags & active) && n->active) && !((flags & inactive) && !n->active))
      continue;
    if ((flags & (persistent | transient)) && !((flags & persistent) && n->persistent) &&
        !((flags & transient) && !n->persistent))
      continue;
    if ((flags & (autostart | no_autostart)) && !((flags & autostart) && n->autostart) &&
        !((flags & no_autostart) && !n->autostart))
      continue;
    out.push_back(n->ref());
  }
  return out;
}

result<network_ref> driver::lookup_network_now(std::string_view name, diagnostics& diag) {
  auto n = s_->get_net(name, diag);
  if (!n) return failure(n.error());
  return (*n)->ref();
}

result<network_ref> driver::define_network_now(std::string_view xml, diagnostics& diag) {
  auto def = parse_network_xml(xml, diag);
  if (!def) return def.error();
  if (auto r = normalize_network_for_test_driver(*def, diag); !r) return r.error();
  for (auto& [k, n] : s_->nets)
    if (n->def.uuid == def->uuid && n->def.name != def->name)
      return fail(diag, errc::operation_failed,
                     "network " + q(n->def.name) + " is already defined with uuid " + def->uuid);
  if (net* n = s_->find_net(def->name)) {
    if (n->def.uuid != def->uuid)
      return fail(diag, errc::operation_failed,
                     "network " + q(def->name) + " already exists with uuid " + n->def.uuid);
    n->def = std::move(*def);
    n->persistent = true;
    return n->ref();
  }
  auto n = std::make_unique<net>();
  n->def = std::move(*def);
  network_ref ref = n->ref();
  s_->nets.emplace(ref.name, std::move(n));
  return ref;
}

result<void> driver::undefine_network_now(std::string_view name, diagnostics& diag) {
  auto n = s_->get_net(name, diag);
  if (!n) return failure(n.error());
  if (!(*n)->persistent) return fail(diag, errc::operation_invalid, "network " + q(name) + " is not persistent");
  if ((*n)->active)
    return fail(diag, errc::operation_invalid, "Network " + q((*n)->def.name) + " is still running");
  s_->nets.erase(std::string((*n)->def.name));
  return result<void>{};
}

result<void> driver::create_network_now(std::string_view name, diagnostics& diag) {
  auto n = s_->get_net(name, diag);
  if (!n) return failure(n.error());
  if ((*n)->active) return fail(diag, errc::operation_invalid, "network " + q(name) + " is already active");
  (*n)->active = true;
  return result<void>{};
}

result<void> driver::destroy_network_now(std::string_view name, diagnostics& diag) {
  auto n = s_->get_net(name, diag);
  if (!n) return failure(n.error());
  // libvirt's test driver lets an inactive network be destroyed again.
  (*n)->active = false;
  if (!(*n)->persistent) s_->nets.erase((*n)->def.name);
  return result<void>{};
}

result<std::string> driver::get_network_xml_now(std::string_view name, unsigned, diagnostics& diag) {
  auto n = s_->get_net(name, diag);
  if (!n) return failure(n.error());
  return format_network_xml((*n)->def);
}

result<bool> driver::get_network_autostart_now(std::string_view name, diagnostics& diag) {
  auto n = s_->get_net(name, diag);
  if (!n) return failure(n.error());
  return (*n)->autostart;
}

result<void> driver::set_network_autostart_now(std::string_view name, bool on, diagnostics& diag) {
  auto n = s_->get_net(name, diag);
  if (!n) return failure(n.error());
  if (!(*n)->persistent) return fail(diag, errc::invalid_network, "cannot set autostart for transient network");
  (*n)->autostart = on;
  return result<void>{};
}

result<std::string> driver::get_network_bridge_name_now(std::string_view name, diagnostics& diag) {
  auto n = s_->get_net(name, diag);
  if (!n) return failure(n.error());
  if ((*n)->def.bridge_name.empty())
    return fail(diag, errc::internal_error, "network " + q(name) + " does not have a bridge name.");
  return (*n)->def.bridge_name;
}

op<void> driver::open(const uri& u, unsigned, diagnostics& diag) {
  if (u.path == "/default") {
    if (auto r = load_default(diag); !r) co_return r.error();
  } else if (u.path.size() > 1) {
    if (auto r = load_file(u.path, diag); !r) co_return r.error();
  } else {
    co_return fail(diag, errc::invalid_arg,
                   "test driver URI " + q(u.original) + " needs a path: test:///default or test:///ABSOLUTE/FILE.xml");
  }
  co_return result<void>{};
}

}  // namespace covirt::test

// Listing, lookup and subscriptions, answered by the domain list and the event hub.
template class covirt::listed_domains<covirt::test::driver>;

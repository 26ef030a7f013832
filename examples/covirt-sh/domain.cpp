// covirt-sh: virsh's "Domain Management" commands, but the long jobs (jobs.cpp): define, start,
// stop, settings, devices, ids, the QEMU native forms.

#include "shell.hpp"

namespace covirt_sh {

using enum opt_type;
using namespace common_opts;

// Declared in shell.hpp: the commands of tuning.cpp use them too.
std::optional<unsigned> impact_flags(shell& sh, const args& a) {
  bool current = a.has("current"), live = a.has("live"), config = a.has("config");
  if (current && live) {
    sh.error("Options --current and --live are mutually exclusive");
    return std::nullopt;
  }
  if (current && config) {
    sh.error("Options --current and --config are mutually exclusive");
    return std::nullopt;
  }
  return (live ? covirt::modify::live : 0u) | (config ? covirt::modify::config : 0u);
}

std::string cpu_list(std::string_view map) {
  std::string out;
  for (std::size_t i = 0; i < map.size();) {
    if (map[i] != 'y') {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j + 1 < map.size() && map[j + 1] == 'y') ++j;
    if (!out.empty()) out += ',';
    out += std::to_string(i);
    if (j > i) out += "-" + std::to_string(j);
    i = j + 1;
  }
  return out;
}

namespace {

awaitable<bool> cmd_dumpxml(shell& sh, const args& a) {
  auto d = co_await sh.domain(a);
  if (!d) co_return false;
  unsigned flags = 0;
  if (a.has("inactive")) flags |= covirt::xml_flags::inactive;
  if (a.has("security-info")) flags |= covirt::xml_flags::secure;
  if (a.has("update-cpu")) flags |= covirt::xml_flags::update_cpu;
  if (a.has("migratable")) flags |= covirt::xml_flags::migratable;
  sh.print(co_await sh.conn.async_get_xml(*d, flags));
  co_return true;
}

awaitable<bool> cmd_define(shell& sh, const args& a) {
  return from_file(
      sh, a, "Failed to define domain from %s", [&](std::string xml) { return sh.conn.async_define_xml(std::move(xml)); },
      "Domain '%s' defined from %s\n");
}

/// virsh domxml-from-native: the driver's reading of a native config (xen-sxpr, xen-xm, xen-xl).
awaitable<bool> cmd_domxml_from_native(shell& sh, const args& a) {
  std::string config = read_file(a.at("config"));
  std::string format = a.at("format");
  sh.print(co_await sh.conn.async_domain_xml_from_native(std::move(format), std::move(config)));
  co_return true;
}

/// virsh domxml-to-native: the driver's native config for a domain (xen-sxpr, xen-xm, xen-xl),
/// or qemu-argv: the command line covirt's QEMU driver would run, on any connection.
awaitable<bool> cmd_domxml_to_native(shell& sh, const args& a) {
  const std::string& fmt = a.at("format");
  std::string xml = read_file(a.at("xml"));
  if (fmt != "qemu-argv") {
    std::string format = fmt;
    std::string native = co_await sh.conn.async_domain_xml_to_native(std::move(format), std::move(xml));
    if (!native.empty() && native.back() != '\n') native.push_back('\n');
    sh.print(native);
    co_return true;
  }
  covirt::diagnostics diag;
  auto def = covirt::parse_domain_xml(xml, diag);
  if (def) {
    covirt::qemu::argv_options opt;
    opt.qmp_socket = "/run/covirt/qemu/" + def->name + ".qmp";  // where qemu:///system would put it
    opt.kvm_available = ::access("/dev/kvm", R_OK | W_OK) == 0;
    if (auto argv = covirt::qemu::build_argv(*def, opt, diag)) {
      sh.print(covirt::qemu::argv_to_shell(*argv) + "\n");
      co_return true;
    } else {
      co_return sh.fail("", covirt::error(argv.error(), std::string(diag.message())));
    }
  }
  co_return sh.fail("", covirt::error(def.error(), std::string(diag.message())));
}

awaitable<bool> cmd_create(shell& sh, const args& a) {
  unsigned flags = a.has("paused") ? 1u : 0u;  // VIR_DOMAIN_START_PAUSED
  return from_file(
      sh, a, "Failed to create domain from %s",
      [&sh, flags](std::string xml) { return sh.conn.async_create_xml(std::move(xml), flags); },
      "Domain '%s' created from %s\n");
}

awaitable<bool> cmd_start(shell& sh, const args& a) {
  auto d = co_await sh.domain(a);
  if (!d) co_return false;
  if (d->id >= 0) {
    sh.error("Domain is already active");
    co_return false;
  }
  const std::string& n = a.at("domain");
  sh.doing(format("Failed to start domain '%s'", n.c_str()));
  co_await sh.conn.async_create(*d);
  sh.extra(format("Domain '%s' started\n", n.c_str()));
  co_return true;
}

/// attach-device and detach-device: virsh's option checks, then one call with the file's XML.
awaitable<bool> device_op(shell& sh, const args& a, bool attach) {
  bool current = a.has("current"), live = a.has("live"), config = a.has("config"), persistent = a.has("persistent");
  const std::pair<bool, const char*> clashes[] = {
      {persistent && current, "Options --persistent and --current are mutually exclusive"},
      {current && live, "Options --current and --live are mutually exclusive"},
      {current && config, "Options --current and --config are mutually exclusive"}};
  for (auto [clash, msg] : clashes)
    if (clash) {
      sh.error(msg);
      co_return false;
    }
  unsigned flags = covirt::device_modify::current;
  if (config || persistent) flags |= covirt::device_modify::config;
  if (live) flags |= covirt::device_modify::live;
  auto d = co_await sh.domain(a);
  if (!d) co_return false;
  const std::string& file = a.at("file");
  if (persistent) {
    bool active = false;
    try {
      active = co_await sh.conn.async_is_active(*d);
    } catch (const covirt::error&) {
    }
    if (active) flags |= covirt::device_modify::live;
  }
  std::string xml = read_file(file);
  // Without flags virsh calls virDomainAttachDevice / virDomainDetachDevice: the running guest.
  if (flags == 0 && !current) flags = covirt::device_modify::live;
  try {
    if (attach) co_await sh.conn.async_attach_device(*d, std::move(xml), flags);
    else co_await sh.conn.async_detach_device(*d, std::move(xml), flags);
  } catch (const covirt::error& e) {
    co_return sh.fail(format(attach ? "Failed to attach device from %s" : "Failed to detach device from %s",
                             file.c_str()),
                      e);
  }
  sh.extra(attach ? "Device attached successfully\n" : "Device detached successfully\n");
  co_return true;
}

awaitable<bool> cmd_attach_device(shell& sh, const args& a) { return device_op(sh, a, true); }
awaitable<bool> cmd_detach_device(shell& sh, const args& a) { return device_op(sh, a, false); }

/// JSON text indented by two spaces per level (virsh qemu-monitor-command --pretty).
std::string pretty_json(std::string_view in) {
  std::string out;
  int depth = 0;
  bool in_str = false, esc = false;
  auto newline = [&] { out += '\n'; out.append(static_cast<std::size_t>(2 * std::max(depth, 0)), ' '); };
  for (std::size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (in_str) {
      out += c;
      if (esc) esc = false;
      else if (c == '\\') esc = true;
      else if (c == '"') in_str = false;
      continue;
    }
    switch (c) {
      case '"': in_str = true; out += c; break;
      case '{': case '[': {
        out += c;
        std::size_t j = in.find_first_not_of(" \t\r\n", i + 1);
        if (j != std::string_view::npos && (in[j] == '}' || in[j] == ']')) { out += in[j]; i = j; break; }
        ++depth;
        newline();
        break;
      }
      case '}': case ']': --depth; newline(); out += c; break;
      case ',': out += c; newline(); break;
      case ':': out += ": "; break;
      case ' ': case '\t': case '\r': case '\n': break;
      default: out += c;
    }
  }
  return out;
}

awaitable<bool> cmd_qemu_monitor_command(shell& sh, const args& a) {
  auto d = co_await sh.domain(a);
  if (!d) co_return false;
  auto reply = co_await sh.conn.async_qemu_monitor_command(*d, a.at("cmd"));
  while (!reply.empty() && (reply.back() == '\n' || reply.back() == '\r')) reply.pop_back();
  sh.print((a.has("pretty") ? pretty_json(reply) : reply) + "\n");
  co_return true;
}

std::optional<std::uint64_t> size_arg(shell& sh, const args& a) {
  auto r = parse_size_kib(a.at("size"), "size");
  if (auto* errs = std::get_if<std::vector<std::string>>(&r)) {
    for (auto& e : *errs) sh.error(e);
    return std::nullopt;
  }
  return std::get<std::uint64_t>(r);
}

// setmem and setmaxmem: the domain, the impact flags and the size, in virsh's order of checks.
struct memory_change {
  covirt::domain_ref dom;
  unsigned flags;
  std::uint64_t kib;
};
awaitable<std::optional<memory_change>> memory_args(shell& sh, const args& a) {
  auto d = co_await sh.domain(a);
  if (!d) co_return std::nullopt;
  auto flags = impact_flags(sh, a);
  if (!flags) co_return std::nullopt;
  auto kib = size_arg(sh, a);
  if (!kib) co_return std::nullopt;
  co_return memory_change{std::move(*d), *flags, *kib};
}

awaitable<bool> cmd_setmem(shell& sh, const args& a) {
  auto m = co_await memory_args(sh, a);
  if (!m) co_return false;
  // Without flags virsh calls virDomainSetMemory, which acts on the running domain.
  bool plain = m->flags == 0 && !a.has("current");
  co_await sh.conn.async_set_memory(m->dom, m->kib, plain ? covirt::modify::live : m->flags);
  co_return true;
}

awaitable<bool> cmd_setmaxmem(shell& sh, const args& a) {
  auto m = co_await memory_args(sh, a);
  if (!m) co_return false;
  sh.doing("Unable to change MaxMemorySize");
  if (m->flags == 0) co_await sh.conn.async_set_max_memory(m->dom, m->kib);
  else co_await sh.conn.async_set_memory(m->dom, m->kib, m->flags | covirt::modify::mem_maximum);
  co_return true;
}

awaitable<bool> cmd_setvcpus(shell& sh, const args& a) {
  auto d = co_await sh.domain(a);
  if (!d) co_return false;
  auto flags = impact_flags(sh, a);
  if (!flags) co_return false;
  if (a.has("maximum") && !a.has("config")) {
    sh.error("Option --config is required by option --maximum");
    co_return false;
  }
  auto count = parse_int(a.at("count"));
  if (!count || *count < INT_MIN || *count > INT_MAX) {
    sh.error(format("Numeric value '%s' for <count> option is malformed or out of range", a.at("count").c_str()));
    co_return false;
  }
  if (*count <= 0) {
    sh.error(format("Can't set %lld processors for a VM", *count));
    co_return false;
  }
  unsigned f = *flags | (a.has("maximum") ? covirt::modify::vcpu_maximum : 0u);
  // Without flags virsh calls virDomainSetVcpus, which acts on the running domain.
  if (f == 0 && !a.has("current")) f = covirt::modify::live;
  co_await sh.conn.async_set_vcpus(*d, static_cast<unsigned>(*count), f);
  co_return true;
}

awaitable<bool> cmd_vcpuinfo(shell& sh, const args& a) {
  auto d = co_await sh.domain(a);
  if (!d) co_return false;
  auto vcpus = co_await sh.conn.async_get_vcpus(*d);
  static constexpr const char* states[] = {"offline", "running", "blocked"};
  std::string out;
  // Blocks with a blank line between them, as virsh (the run loop ends the last).
  for (const auto& v : vcpus) {
    if (!out.empty()) out += "\n";
    out += format("%-15s %u\n", "VCPU:", v.number);
    out += format("%-15s %d\n", "CPU:", v.cpu);
    out += format("%-15s %s\n", "State:", v.state >= 0 && v.state <= 2 ? states[v.state] : "no state");
    if (v.cpu_time_ns) out += format("%-15s %.1lfs\n", "CPU time:", static_cast<double>(v.cpu_time_ns) / 1e9);
    if (a.has("pretty"))
      out += format("%-15s %s (out of %zu)\n", "CPU Affinity:", cpu_list(v.affinity).c_str(), v.affinity.size());
    else
      out += format("%-15s %s\n", "CPU Affinity:", v.affinity.c_str());
  }
  sh.print(out);
  co_return true;
}

awaitable<bool> cmd_autostart(shell& sh, const args& a) {
  auto d = co_await sh.domain(a);
  if (!d) co_return false;
  bool on = !a.has("disable");
  const std::string& n = a.at("domain");
  try {
    co_await sh.conn.async_set_autostart(*d, on);
  } catch (const covirt::error& e) {
    co_return sh.fail(format(on ? "Failed to mark domain '%s' as autostarted" : "Failed to unmark domain '%s' as autostarted",
                             n.c_str()),
                      e);
  }
  sh.extra(format(on ? "Domain '%s' marked as autostarted\n" : "Domain '%s' unmarked as autostarted\n", n.c_str()));
  co_return true;
}

// domuuid, domid, domname: one field of the domain, on a line.
std::string uuid_of(const covirt::domain_ref& d) { return d.uuid; }
std::string id_of(const covirt::domain_ref& d) { return d.id >= 0 ? std::to_string(d.id) : "-"; }
std::string name_of(const covirt::domain_ref& d) { return d.name; }

template <std::string (*Field)(const covirt::domain_ref&)>
awaitable<bool> cmd_domain_field(shell& sh, const args& a) {
  auto d = co_await sh.domain(a);
  if (!d) co_return false;
  sh.print(Field(*d) + "\n");
  co_return true;
}

// The one-line domain commands, in order: undefine, destroy, shutdown, reboot, suspend, resume.
constexpr one_line_op<covirt::domain_ref> one_line_domain[] = {
    {COVIRT_SH_CALL(async_undefine), "Domain '%s' has been undefined\n", "Failed to undefine domain '%s'"},
    {COVIRT_SH_CALL(async_destroy), "Domain '%s' destroyed\n", "Failed to destroy domain '%s'"},
    {COVIRT_SH_CALL(async_shutdown), "Domain '%s' is being shutdown\n", "Failed to shutdown domain '%s'"},
    {COVIRT_SH_CALL(async_reboot), "Domain '%s' is being rebooted\n", "Failed to reboot domain '%s'"},
    {COVIRT_SH_CALL(async_suspend), "Domain '%s' suspended\n", "Failed to suspend domain '%s'"},
    {COVIRT_SH_CALL(async_resume), "Domain '%s' resumed\n", "Failed to resume domain '%s'"},
};

}  // namespace

const std::vector<command> domain_commands = {
    {"dumpxml",
     {dom,
      {"inactive", boolean, false, "show inactive defined XML"},
      {"security-info", boolean, false, "include security sensitive information in XML dump"},
      {"update-cpu", boolean, false, "update guest CPU according to host CPU"},
      {"migratable", boolean, false, "provide XML suitable for migrations"}},
     cmd_dumpxml, "domain information in XML", "Output the domain information as an XML dump to stdout."},
    {"define", {{"file", data, true, "file containing an XML domain description"}}, cmd_define,
     "define (but don't start) a domain from an XML file", "Define a domain."},
    {"undefine", {dom}, run_one_line<one_line_domain, 0>, "undefine a domain", "Undefine an inactive domain, or convert persistent to transient."},
    {"create",
     {{"file", data, true, "file containing an XML domain description"},
      {"paused", boolean, false, "leave the guest paused after creation"}},
     cmd_create, "create a domain from an XML file", "Create a domain."},
    {"start", {dom}, cmd_start, "start a (previously defined) inactive domain", "Start a (previously defined) inactive domain."},
    {"destroy", {dom}, run_one_line<one_line_domain, 1>, "destroy (stop) a domain", "Forcefully stop a given domain, but leave its resources intact."},
    {"shutdown", {dom}, run_one_line<one_line_domain, 2>, "gracefully shutdown a domain", "Run shutdown in the target domain."},
    {"reboot", {dom}, run_one_line<one_line_domain, 3>, "reboot a domain", "Run a reboot command in the target domain."},
    {"suspend", {dom}, run_one_line<one_line_domain, 4>, "suspend a domain", "Suspend a running domain."},
    {"resume", {dom}, run_one_line<one_line_domain, 5>, "resume a domain", "Resume a previously suspended domain."},
    {"attach-device",
     {dom, {"file", data, true, "XML file"}, {"persistent", boolean, false, "make live change persistent"}, config,
      live, current},
     cmd_attach_device, "attach device from an XML file", "Attach device from an XML <file>."},
    {"detach-device",
     {dom, {"file", data, true, "XML file"}, {"persistent", boolean, false, "make live change persistent"}, config,
      live, current},
     cmd_detach_device, "detach device from an XML file", "Detach device from an XML <file>"},
    {"qemu-monitor-command",
     {dom, {"cmd", data, true, "command"}, {"pretty", boolean, false, "pretty-print any qemu monitor protocol output"}},
     cmd_qemu_monitor_command, "QEMU Monitor Command", "QEMU Monitor Command"},
    {"setmem", {dom, {"size", number, true, "new memory size, as scaled integer (default KiB)"}, config, live, current},
     cmd_setmem, "change memory allocation", "Change the current memory allocation in the guest domain."},
    {"setmaxmem",
     {dom, {"size", number, true, "new maximum memory size, as scaled integer (default KiB)"}, config, live, current},
     cmd_setmaxmem, "change maximum memory limit", "Change the maximum memory allocation limit in the guest domain."},
    {"setvcpus",
     {dom, {"count", number, true, "number of virtual CPUs"},
      {"maximum", boolean, false, "set maximum limit on next boot"}, config, live, current},
     cmd_setvcpus, "change number of virtual CPUs", "Change the number of virtual CPUs in the guest domain."},
    {"vcpuinfo", {dom, {"pretty", boolean, false, "return human readable output"}}, cmd_vcpuinfo,
     "detailed domain vcpu information", "Returns basic information about the domain virtual CPUs."},
    {"autostart", {dom, {"disable", boolean, false, "disable autostarting"}}, cmd_autostart, "autostart a domain",
     "Configure a domain to be automatically started at boot."},
    {"domuuid", {{"domain", data, true, "domain id or name"}}, cmd_domain_field<uuid_of>, "convert a domain name or id to domain UUID",
     "Convert a domain name or id to domain UUID."},
    {"domid", {{"domain", data, true, "domain name or uuid"}}, cmd_domain_field<id_of>, "convert a domain name or UUID to domain id",
     "Convert a domain name to domain id."},
    {"domname", {{"domain", data, true, "domain id or uuid"}}, cmd_domain_field<name_of>, "convert a domain id or UUID to domain name",
     "Convert a domain id or UUID to domain name."},
    {"domxml-from-native",
     {{"format", data, true, "source config data type format"},
      {"config", data, true, "config data file to import from"}},
     cmd_domxml_from_native, "Convert native config to domain XML",
     "Convert native guest configuration format to domain XML format."},
    {"domxml-to-native",
     {{"format", data, true, "target config data type format"},
      {"xml", data, true, "xml data file to export from"}},
     cmd_domxml_to_native, "Convert domain XML to native config",
     "Convert domain XML config to a native guest configuration format."},
};

}  // namespace covirt_sh

// covirt-sh: virsh's "Host and Hypervisor" commands.

#include "shell.hpp"

namespace covirt_sh {

using enum opt_type;
using namespace common_opts;
namespace {

// ---------------------------------------------------------------------------------------------
// Host commands.

awaitable<bool> cmd_nodeinfo(shell& sh, const args&) {
  sh.doing("failed to get node information");
  auto n = co_await sh.conn.async_node_get_info();
  std::string out;
  auto line = [&](const char* label, const std::string& v) { out += format("%-20s %s\n", label, v.c_str()); };
  line("CPU model:", n.model);
  line("CPU(s):", std::to_string(n.cpus));
  line("CPU frequency:", std::to_string(n.mhz) + " MHz");
  line("CPU socket(s):", std::to_string(n.sockets));
  line("Core(s) per socket:", std::to_string(n.cores));
  line("Thread(s) per core:", std::to_string(n.threads));
  line("NUMA cell(s):", std::to_string(n.nodes));
  line("Memory size:", std::to_string(n.memory_kib) + " KiB");
  sh.print(out);
  co_return true;
}

awaitable<bool> cmd_capabilities(shell& sh, const args&) {
  sh.doing("failed to get capabilities");
  sh.print(co_await sh.conn.async_get_capabilities() + "\n");
  co_return true;
}

std::string version_string(std::uint64_t v) {
  return format("%llu.%llu.%llu", static_cast<unsigned long long>(v / 1000000),
                static_cast<unsigned long long>(v / 1000 % 1000), static_cast<unsigned long long>(v % 1000));
}

awaitable<bool> cmd_version(shell& sh, const args&) {
  // The library lines name covirt: it is covirt, not libvirt, that this tool runs on.
  std::string out = format("Compiled against library: covirt %s\n", std::string(covirt_version).c_str());
  out += format("Using library: covirt %s\n", std::string(covirt_version).c_str());
  std::string type(sh.conn.type());
  out += format("Using API: %s %s\n", type.c_str(), std::string(covirt_version).c_str());
  try {
    out += format("Running hypervisor: %s %s\n", type.c_str(),
                  version_string(co_await sh.conn.async_get_version()).c_str());
  } catch (const covirt::error& e) {
    sh.print(out);
    co_return sh.fail("failed to get the hypervisor version", e);
  }
  sh.print(out);
  co_return true;
}

awaitable<bool> cmd_uri(shell& sh, const args&) {
  sh.print(sh.conn.uri().str() + "\n");
  co_return true;
}

awaitable<bool> cmd_hostname(shell& sh, const args&) {
  sh.doing("failed to get hostname");
  sh.print(co_await sh.conn.async_get_hostname() + "\n");
  co_return true;
}

awaitable<bool> cmd_maxvcpus(shell& sh, const args& a) {
  sh.print(std::to_string(co_await sh.conn.async_get_max_vcpus(a.get("type").value_or(""))) + "\n");
  co_return true;
}

}  // namespace

const std::vector<command> host_commands = {
    {"nodeinfo", {}, cmd_nodeinfo, "node information", "Returns basic information about the node."},
    {"capabilities", {}, cmd_capabilities, "capabilities", "Returns capabilities of hypervisor/driver."},
    {"version", {}, cmd_version, "show version", "Display the system version information."},
    {"uri", {}, cmd_uri, "print the hypervisor canonical URI", "Print the hypervisor canonical URI."},
    {"hostname", {}, cmd_hostname, "print the hypervisor hostname", "Print the hypervisor hostname."},
    {"maxvcpus", {{"type", string, false, "domain type"}}, cmd_maxvcpus, "connection vcpu maximum",
     "Get maximum number of virtual CPUs for a guest domain."},
};

}  // namespace covirt_sh

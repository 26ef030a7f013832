// covirt-sh: virsh's "Networking" commands.

#include "shell.hpp"

namespace covirt_sh {

using enum opt_type;
using namespace common_opts;
namespace {

// ---------------------------------------------------------------------------------------------
// Network commands.

awaitable<bool> cmd_net_list(shell& sh, const args& a) {
  unsigned flags = 0;
  if (a.has("all")) flags = covirt::network_list_flags::active | covirt::network_list_flags::inactive;
  else if (a.has("inactive")) flags = covirt::network_list_flags::inactive;
  else flags = covirt::network_list_flags::active;
  std::vector<covirt::network_ref> nets;
  sh.doing("Failed to list networks");
  nets = co_await sh.conn.async_list_networks(flags);
  std::sort(nets.begin(), nets.end(), [](const auto& x, const auto& y) { return x.name < y.name; });
  if (print_names(sh, a, nets)) co_return true;
  std::vector<std::vector<std::string>> rows;
  for (const auto& n : nets)
    rows.push_back({n.name, n.active ? "active" : "inactive", std::string(yes_no(n.autostart)),
                    std::string(yes_no(n.persistent))});
  sh.print(render_table({"Name", "State", "Autostart", "Persistent"}, rows, !sh.quiet));
  co_return true;
}

awaitable<bool> cmd_net_info(shell& sh, const args& a) {
  auto n = co_await sh.network(a);
  if (!n) co_return false;
  auto line = [](const char* label, std::string_view v) { return format("%-15s %s\n", label, std::string(v).c_str()); };
  std::string out = line("Name:", n->name) + line("UUID:", n->uuid) + line("Active:", yes_no(n->active)) +
                    line("Persistent:", yes_no(n->persistent));
  try {
    out += line("Autostart:", yes_no(co_await sh.conn.async_get_network_autostart(n->name)));
  } catch (const covirt::error&) {
    out += line("Autostart:", "no autostart");
  }
  try {
    out += line("Bridge:", co_await sh.conn.async_get_network_bridge_name(n->name));
  } catch (const covirt::error&) {
  }
  sh.print(out);
  co_return true;
}

awaitable<bool> cmd_net_dumpxml(shell& sh, const args& a) {
  auto n = co_await sh.network(a);
  if (!n) co_return false;
  sh.print(co_await sh.conn.async_get_network_xml(n->name, a.has("inactive") ? 1u : 0u));
  co_return true;
}

awaitable<bool> cmd_net_define(shell& sh, const args& a) {
  return from_file(
      sh, a, "Failed to define network from %s",
      [&](std::string xml) { return sh.conn.async_define_network(std::move(xml)); }, "Network %s defined from %s\n");
}

awaitable<bool> cmd_net_autostart(shell& sh, const args& a) {
  auto n = co_await sh.network(a);
  if (!n) co_return false;
  bool on = !a.has("disable");
  const std::string& name = a.at("network");
  try {
    co_await sh.conn.async_set_network_autostart(n->name, on);
  } catch (const covirt::error& e) {
    co_return sh.fail(format(on ? "failed to mark network %s as autostarted" : "failed to unmark network %s as autostarted",
                             name.c_str()),
                      e);
  }
  sh.extra(format(on ? "Network %s marked as autostarted\n" : "Network %s unmarked as autostarted\n", name.c_str()));
  co_return true;
}

// The one-line network commands, in order: net_undefine, net_start, net_destroy.
constexpr one_line_op<covirt::network_ref> one_line_network[] = {
    {COVIRT_SH_CALL(async_undefine_network), "Network %s has been undefined\n", "Failed to undefine network %s"},
    {COVIRT_SH_CALL(async_create_network), "Network %s started\n", "Failed to start network %s"},
    {COVIRT_SH_CALL(async_destroy_network), "Network %s destroyed\n", "Failed to destroy network %s"},
};

}  // namespace

const std::vector<command> network_commands = {
    {"net-list",
     {{"inactive", boolean, false, "list inactive networks"},
      {"all", boolean, false, "list inactive & active networks"},
      {"uuid", boolean, false, "list uuid's only"},
      {"name", boolean, false, "list network names only"}},
     cmd_net_list, "list networks", "Returns list of networks."},
    {"net-info", {net}, cmd_net_info, "network information", "Returns basic information about the network"},
    {"net-dumpxml", {net, {"inactive", boolean, false, "show inactive defined XML"}}, cmd_net_dumpxml,
     "network information in XML", "Output the network information as an XML dump to stdout."},
    {"net-define", {{"file", data, true, "file containing an XML network description"}}, cmd_net_define,
     "define an inactive persistent virtual network or modify an existing persistent one from an XML file",
     "Define or modify a persistent virtual network."},
    {"net-undefine", {net}, run_one_line<one_line_network, 0>, "undefine a persistent network", "Undefine the configuration for a persistent network."},
    {"net-start", {net}, run_one_line<one_line_network, 1>, "start a (previously defined) inactive network", "Start a network."},
    {"net-destroy", {net}, run_one_line<one_line_network, 2>, "destroy (stop) a network", "Forcefully stop a given network."},
    {"net-autostart", {net, {"disable", boolean, false, "disable autostarting"}}, cmd_net_autostart,
     "autostart a network", "Configure a network to be automatically started at boot."},
};

}  // namespace covirt_sh

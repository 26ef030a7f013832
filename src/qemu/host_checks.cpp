// The QEMU driver: what a domain's devices need from this host, checked before QEMU is spawned
// (the command line itself is sans-io, argv*.cpp): an ethernet <script> that can run, the PCI
// device a <hostdev> names, bound to vfio-pci, an X display for SDL, a free port for SPICE's
// autoport. Each error names the device and what is missing.
#include "driver_state.hpp"

#include <boost/asio/ip/tcp.hpp>

#include <cstdlib>

#include <sys/stat.h>

namespace covirt::qemu {

namespace impl {

namespace {

// The first port from `from` that `host` lets us bind, or 0.
int free_port(const std::string& host, int from) {
  boost::asio::io_context ctx;
  boost::system::error_code ec;
  auto addr = boost::asio::ip::make_address(host, ec);
  if (ec) addr = boost::asio::ip::make_address("127.0.0.1");
  for (int p = from; p < 65536; ++p) {
    boost::asio::ip::tcp::acceptor a(ctx);
    boost::asio::ip::tcp::endpoint ep(addr, static_cast<unsigned short>(p));
    a.open(ep.protocol(), ec);
    if (ec) return 0;
    a.bind(ep, ec);
    if (!ec) return p;
  }
  return 0;
}

}  // namespace

result<void> prepare_host_devices(domain_config& d, argv_options& opt, diagnostics& diag) {
  for (auto& n : d.devices.interfaces) {
    if (n.script_path.empty()) continue;
    struct stat sb {};
    if (::stat(n.script_path.c_str(), &sb) < 0)
      return fail(diag, errc::invalid_arg, "interface script '" + n.script_path + "': " + std::strerror(errno));
    if (!S_ISREG(sb.st_mode) || ::access(n.script_path.c_str(), X_OK) < 0)
      return fail(diag, errc::invalid_arg, "interface script '" + n.script_path + "' is not an executable file");
  }
  for (auto& h : d.devices.hostdevs) {
    if (!h.source_address) continue;
    std::string addr = pci_host_address(*h.source_address);
    if (addr.empty()) continue;  // the command line refuses it, naming it
    fs::path dev = fs::path("/sys/bus/pci/devices") / addr;
    std::error_code ec;
    if (!fs::exists(dev, ec))
      return fail(diag, errc::device_missing, "PCI device " + addr + " of <hostdev> is not on this host (no " + dev.string() + ")");
    fs::path drv = fs::read_symlink(dev / "driver", ec);
    std::string bound = ec ? std::string() : drv.filename().string();
    if (bound != "vfio-pci")
      return fail(diag, errc::operation_invalid,
                  "PCI device " + addr + " is " + (bound.empty() ? "bound to no driver" : "bound to driver '" + bound + "'") +
                      ", not vfio-pci: bind it to vfio-pci first (covirt does not rebind host devices)");
  }
  for (auto& g : d.devices.graphics) {
    if (g.type == "sdl" && g.display.empty())
      if (const char* disp = std::getenv("DISPLAY")) opt.display = disp;
    if (g.type == "spice" && (!g.port || *g.port <= 0)) {
      std::string listen = g.listens.empty() || g.listens[0].address.empty() ? g.listen : g.listens[0].address;
      int p = free_port(listen.empty() ? "127.0.0.1" : listen, 5900);
      if (!p) return fail(diag, errc::operation_failed, "no free port for SPICE from 5900");
      g.port = p;
      g.autoport = "yes";
    }
  }
  return {};
}

}  // namespace impl

}  // namespace covirt::qemu

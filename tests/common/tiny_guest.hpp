// Shared by the QEMU driver tests: the tiny real guest (tests/guest/build-tiny-guest), a kernel
// and a busybox initramfs that print on the serial port and power off on the ACPI button.
#pragma once

#include "common/qemu_guests.hpp"
#include "common/run.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/this_coro.hpp>

#include <sys/wait.h>

namespace covirt::test_support {

namespace fs_ = std::filesystem;

inline const std::string up_line = "covirt-tiny-guest: up";
inline const std::string off_line = "covirt-tiny-guest: powering off";

// The tiny guest, built (or found in the cache) once per process. Fails loudly: no silent skip.
struct tiny_guest {
  fs_::path kernel, initrd;
};

inline const tiny_guest& guest_image() {
  static std::optional<tiny_guest> built;
  static std::string failure;
  if (!built && failure.empty()) {
    const char* root = std::getenv("COVIRT_SOURCE_ROOT");
    const char* cache = std::getenv("COVIRT_GUEST_CACHE");
    fs_::path out = cache && *cache ? fs_::path(cache) : fs_::path("/var/cache/covirt/tiny-guest");
    if (!root || !*root) {
      failure = "COVIRT_SOURCE_ROOT is not set (it must name the covirt source tree)";
    } else {
      fs_::path script = fs_::path(root) / "tests" / "guest" / "build-tiny-guest";
      std::string cmd = "'" + script.string() + "' '" + out.string() + "' >/dev/null";
      auto t0 = std::chrono::steady_clock::now();
      int rc = std::system(cmd.c_str());
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
      std::fprintf(stderr, "[qemu_guest] build-tiny-guest: status %d, %lld ms\n", rc, static_cast<long long>(ms));
      tiny_guest g{out / "vmlinuz", out / "initrd.img"};
      if (rc == -1 || !WIFEXITED(rc) || WEXITSTATUS(rc) != 0)
        failure = "'" + cmd + "' failed (status " + std::to_string(rc) + "); see its stderr above";
      else if (!fs_::exists(g.kernel) || !fs_::exists(g.initrd))
        failure = "build-tiny-guest succeeded but " + g.kernel.string() + " or " + g.initrd.string() + " is missing";
      else
        built = g;
    }
  }
  if (!built) FAIL("cannot build the tiny guest: " << failure);
  return *built;
}


inline std::string tiny_xml(const std::string& name, const guest_dir& dir, const std::string& on_poweroff = "",
                            const std::string& devices = "") {
  const auto& g = guest_image();
  std::string lifecycle = on_poweroff.empty() ? "" : "<on_poweroff>" + on_poweroff + "</on_poweroff>";
  return "<domain type='qemu'><name>" + name +
         "</name><memory unit='MiB'>128</memory>"
         "<os><type arch='x86_64' machine='q35'>hvm</type><kernel>" +
         g.kernel.string() + "</kernel><initrd>" + g.initrd.string() +
         "</initrd><cmdline>console=ttyS0 quiet</cmdline></os>"
         "<features><acpi/></features>" +
         lifecycle +
         "<devices>" + devices + "<serial type='file'><source path='" + dir.serial_log().string() +
         "'/><target port='0'/></serial></devices></domain>";
}

inline std::size_t count_of(const std::string& hay, const std::string& needle) {
  std::size_t n = 0;
  for (auto pos = hay.find(needle); pos != std::string::npos; pos = hay.find(needle, pos + needle.size())) ++n;
  return n;
}

/// Waits until the guest has printed its "up" line `n` times on the serial port.
inline boost::asio::awaitable<bool> wait_up(const guest_dir& dir, std::size_t n, std::chrono::milliseconds limit = std::chrono::seconds(30)) {
  boost::asio::steady_timer t(co_await boost::asio::this_coro::executor);
  auto end = std::chrono::steady_clock::now() + limit;
  for (;;) {
    if (count_of(slurp(dir.serial_log()), up_line) >= n) co_return true;
    if (std::chrono::steady_clock::now() > end) co_return false;
    t.expires_after(std::chrono::milliseconds(50));
    co_await t.async_wait(boost::asio::use_awaitable);
  }
}

}  // namespace covirt::test_support

// tests/common: a private libvirtd (Debian's real daemon) for one test, started by
// scripts/private-libvirtd in a directory of its own and stopped when the object goes.
#pragma once

#include "common/daemon.hpp"

#include <string>

namespace covirt::test_support {

class private_libvirtd : public script_daemon {
public:
  /// `options`: more arguments for scripts/private-libvirtd ("--tcp 16600 --conf 'max_clients = 2000'").
  explicit private_libvirtd(std::string options = {}) : script_daemon("private-libvirtd", std::move(options)) {}

  std::string socket() const { return dir() + "/libvirt-sock"; }
  /// DRIVER+unix:///PATH?socket=... for this daemon ("test:///default" -> "test+unix:///default?socket=...").
  std::string uri(const std::string& driver = "test", const std::string& path = "/default") const {
    return driver + "+unix://" + path + "?socket=" + socket();
  }
  /// What virsh prints for `command` on this daemon's test:///default (stdout and stderr).
  std::string virsh(const std::string& command, int* status = nullptr) const {
    return shell("virsh -q -c '" + uri() + "' " + command + " 2>&1", status);
  }
};

}  // namespace covirt::test_support

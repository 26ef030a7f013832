// tests/common: one of Debian's real xenstore daemons (xen-utils-4.17's C xenstored or
// oxenstored) for one test, started by scripts/private-xenstored with the tests' shim library
// (tests/xen/xenstored_shim.cpp, path in $COVIRT_XS_SHIM) and stopped when the object goes.
#pragma once

#include "common/daemon.hpp"

#include <string>

namespace covirt::test_support {

enum class xenstored_kind { c, ocaml };

inline const char* name_of(xenstored_kind k) { return k == xenstored_kind::c ? "xenstored" : "oxenstored"; }

inline std::string xenstored_options(xenstored_kind k, const std::string& more) {
  const char* shim = std::getenv("COVIRT_XS_SHIM");
  if (!shim) throw std::runtime_error("COVIRT_XS_SHIM is not set (meson test sets it)");
  return std::string("--shim '") + shim + "'" + (k == xenstored_kind::ocaml ? " --ocaml" : "") + " " + more;
}

class private_xenstored : public script_daemon {
public:
  /// `more`: arguments for scripts/private-xenstored ("--quota-watches 4").
  explicit private_xenstored(xenstored_kind k, std::string more = {})
      : script_daemon("private-xenstored", xenstored_options(k, more)), kind_(k) {}

  std::string socket() const { return dir() + "/socket"; }
  xenstored_kind kind() const noexcept { return kind_; }
  /// Runs one of Debian's xenstore-utils tools against this daemon: stdout and stderr.
  std::string tool(const std::string& command, int* status = nullptr) const {
    return shell("XENSTORED_PATH='" + socket() + "' " + command + " 2>&1", status);
  }

private:
  xenstored_kind kind_;
};

}  // namespace covirt::test_support

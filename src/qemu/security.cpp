// The QEMU driver's security model, libvirt's DAC driver's (src/security/security_dac.c) when the
// driver runs as root: each guest has a label, "+UID:+GID" or "user:group", that QEMU runs as,
// and its image files are given to that label while it runs (their owners are remembered in
// the runtime record, so a driver that re-attaches gives them back at stop too). An
// unprivileged driver (qemu:///session as a user) is libvirt's "none" model: QEMU runs as the
// caller, DOI "0", no labels.
//
//   <seclabel type='dynamic' model='dac'/>                the driver's own user and group,
//                                                         images relabelled (the default)
//   <seclabel type='static' model='dac' relabel='yes'>    QEMU as that user; images relabelled
//     <label>+107:+107</label></seclabel>                 only with relabel='yes'
//   <seclabel type='none'/>                               no label, nothing relabelled
//
// Other models (selinux, apparmor) are refused by name. What the label does not reach is left
// as it is: files a chardev or a hugepage mount names must already be open to that user.
#include "driver_state.hpp"

#include <cstring>

#include <grp.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

namespace covirt::qemu {

namespace {

std::string_view attr_of(const xml_element& e, std::string_view key) {
  for (auto& [k, v] : e.attributes)
    if (k == key) return v;
  return {};
}

/// "+N" a number, else a name looked up in the passwd or group database.
std::optional<unsigned> id_of(std::string_view part, bool group) {
  if (part.empty()) return std::nullopt;
  if (part[0] == '+') {
    unsigned v = 0;
    for (char c : part.substr(1)) {
      if (c < '0' || c > '9' || v > 100000000) return std::nullopt;
      v = v * 10 + static_cast<unsigned>(c - '0');
    }
    return part.size() > 1 ? std::optional<unsigned>(v) : std::nullopt;
  }
  std::string name(part);
  std::vector<char> buf(16384);
  if (group) {
    struct group g {}, *out = nullptr;
    if (::getgrnam_r(name.c_str(), &g, buf.data(), buf.size(), &out) != 0 || !out) return std::nullopt;
    return static_cast<unsigned>(out->gr_gid);
  }
  struct passwd pw {}, *out = nullptr;
  if (::getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &out) != 0 || !out) return std::nullopt;
  return static_cast<unsigned>(out->pw_uid);
}

std::string numeric_label(uid_t u, gid_t g) { return "+" + std::to_string(u) + ":+" + std::to_string(g); }

}  // namespace

namespace impl {

bool dac_privileged() { return ::geteuid() == 0; }

result<dac_plan> dac_plan_for(const domain_config& d, diagnostics& diag) {
  dac_plan p;
  const xml_element* label = nullptr;
  for (const auto& e : d.extra) {
    if (e.name != "seclabel") continue;
    std::string_view model = attr_of(e, "model"), type = attr_of(e, "type");
    if (!model.empty() && model != "dac")
      return fail(diag, errc::config_unsupported,
                  "<seclabel model='" + std::string(model) + "'> is not supported by covirt's qemu driver (only 'dac')");
    if (type == "none") return p;  // unconfined, nothing relabelled
    if (!type.empty() && type != "dynamic" && type != "static")
      return fail(diag, errc::config_unsupported, "<seclabel type='" + std::string(type) + "'>");
    label = &e;
  }
  if (!dac_privileged()) {
    // The "none" model: only a label naming ourselves (or none) can be honoured.
    if (label && attr_of(*label, "type") == "static")
      return fail(diag, errc::operation_invalid,
                  "a static DAC <seclabel> needs covirt's qemu driver to run as root (qemu:///system)");
    return p;
  }
  p.labelled = true;
  p.uid = ::geteuid();
  p.gid = ::getegid();
  p.relabel = true;
  if (label && attr_of(*label, "type") == "static") {
    std::string text;
    for (const auto& c : label->children)
      if (c.name == "label") text = c.text;
    auto colon = text.find(':');
    if (text.empty() || colon == std::string::npos)
      return fail(diag, errc::config_unsupported, "<seclabel type='static' model='dac'> needs a <label> 'user:group'");
    auto u = id_of(std::string_view(text).substr(0, colon), false);
    auto g = id_of(std::string_view(text).substr(colon + 1), true);
    if (!u || !g) return fail(diag, errc::invalid_arg, "DAC label '" + text + "' names no user or group of this host");
    p.uid = *u;
    p.gid = *g;
    // libvirt: a static label relabels only when asked to.
    p.relabel = attr_of(*label, "relabel") == "yes";
  } else if (label && attr_of(*label, "relabel") == "no") {
    p.relabel = false;
  }
  p.label = numeric_label(p.uid, p.gid);
  return p;
}

result<void> relabel_images(const domain_config& d, const dac_plan& p, image_labels& out, diagnostics& diag) {
  if (!p.labelled || !p.relabel) return {};
  for (const auto& disk : d.devices.disks) {
    if (!disk.source) continue;
    const std::string& path = !disk.source->file.empty() ? disk.source->file : disk.source->dev;
    if (path.empty()) continue;
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) continue;  // a missing image is QEMU's error to give
    if (st.st_uid == p.uid && st.st_gid == p.gid) continue;
    if (::chown(path.c_str(), p.uid, p.gid) != 0)
      return fail(diag, errc::operation_failed,
                  "cannot give image '" + path + "' to DAC label " + p.label + ": " + std::strerror(errno));
    out.changed.push_back({path, st.st_uid, st.st_gid});
  }
  return {};
}

void image_labels::restore() {
  for (auto& [path, u, g] : changed) (void)!::chown(path.c_str(), u, g);
  changed.clear();
}

void image_labels::record(runtime_record& rec) const {
  for (auto& [path, u, g] : changed) rec.extra["dac:" + path] = std::to_string(u) + ":" + std::to_string(g);
}

result<int> listen_unix(const std::string& path, diagnostics& diag) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.size() >= sizeof a.sun_path) return fail(diag, errc::invalid_arg, "socket path '" + path + "' is too long");
  std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail(diag, errc::system_error, std::string("cannot create a socket: ") + std::strerror(errno));
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 4) != 0) {
    int e = errno;
    ::close(fd);
    return fail(diag, errc::system_error, "cannot listen on '" + path + "': " + std::strerror(e));
  }
  return fd;
}

void restore_image_labels(runtime_record& rec) {
  for (auto it = rec.extra.begin(); it != rec.extra.end();) {
    if (!it->first.starts_with("dac:")) {
      ++it;
      continue;
    }
    std::string path = it->first.substr(4);
    auto colon = it->second.find(':');
    if (colon != std::string::npos) {
      auto u = static_cast<uid_t>(std::strtoul(it->second.c_str(), nullptr, 10));
      auto g = static_cast<gid_t>(std::strtoul(it->second.c_str() + colon + 1, nullptr, 10));
      (void)!::chown(path.c_str(), u, g);
    }
    it = rec.extra.erase(it);
  }
}

}  // namespace impl

op<security_model> driver::node_get_security_model(diagnostics&) {
  security_model m;
  m.model = dac_privileged() ? "dac" : "none";
  m.doi = "0";
  co_return m;
}

op<security_label> driver::get_security_label(const domain_key& key, diagnostics& diag) {
  auto r = s_->get(key, diag);
  if (!r) co_return failure(r.error());
  dom_ptr d = *r;
  security_label l;
  if (d->active() && d->rt)
    if (auto it = d->rt->rec.extra.find("dac-label"); it != d->rt->rec.extra.end() && !it->second.empty()) {
      l.label = it->second;
      l.enforcing = true;
    }
  co_return l;
}

}  // namespace covirt::qemu

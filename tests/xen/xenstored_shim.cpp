// An LD_PRELOAD library that lets Debian's real xenstore daemons (xenstored, oxenstored from
// xen-utils-4.17) run on a machine without a Xen hypervisor. It fakes only the hypervisor handles
// they open at start-up — the control interface (libxenctrl: one domain, dom0), event channels
// (libxenevtchn: a pipe, ports counted, never pending), grant tables (libxengnttab: nothing maps)
// — and moves the few host paths they insist on into the folder named by COVIRT_XS_SHIM_DIR:
// /proc/xen/xsd_port, /proc/xen/xsd_kva, /proc/sys/fs/nr_open, and oxenstored's socket folder
// (fixed at build time to /var/run/xenstored). Everything else — the protocol, transactions,
// permissions, quotas, watches — is the daemon's own code, which is what the tests exercise.
// scripts/private-xenstored starts a daemon with it.
// meson defines _FILE_OFFSET_BITS=64, which renames open() to open64(): this file defines both.
#undef _FILE_OFFSET_BITS
extern "C" {  // xenctrl.h has no extern "C" of its own
#include <xenctrl.h>
#include <xenevtchn.h>
#include <xengnttab.h>
}

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {
int fake_handle;   // any non-null address will do for the handles
int next_port = 1;
int pipe_fds[2] = {-1, -1};

// The file in COVIRT_XS_SHIM_DIR that stands for `path`, or nullptr if it is not one of ours.
const char* moved(const char* path, char* buf, size_t n) {
  static const char* const names[][2] = {{"/proc/xen/xsd_port", "xsd_port"},
                                        {"/proc/xen/xsd_kva", "xsd_kva"},
                                        {"/proc/sys/fs/nr_open", "nr_open"}};
  const char* dir = std::getenv("COVIRT_XS_SHIM_DIR");
  if (!dir || !path) return nullptr;
  for (auto& [from, to] : names)
    if (std::strcmp(path, from) == 0) {
      std::snprintf(buf, n, "%s/%s", dir, to);
      return buf;
    }
  return nullptr;
}

template <class F>
F next(const char* name) { return reinterpret_cast<F>(dlsym(RTLD_NEXT, name)); }

int open_moved(const char* fn, const char* path, int flags, va_list ap) {
  mode_t mode = (flags & O_CREAT) ? static_cast<mode_t>(va_arg(ap, int)) : 0;
  char buf[4096];
  if (const char* p = moved(path, buf, sizeof buf)) path = p;
  return next<int (*)(const char*, int, ...)>(fn)(path, flags, mode);
}
}  // namespace

extern "C" {
int open(const char* path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  int r = open_moved("open", path, flags, ap);
  va_end(ap);
  return r;
}
int open64(const char* path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  int r = open_moved("open64", path, flags, ap);
  va_end(ap);
  return r;
}
FILE* fopen(const char* path, const char* mode) {
  char buf[4096];
  if (const char* p = moved(path, buf, sizeof buf)) path = p;
  return next<FILE* (*)(const char*, const char*)>("fopen")(path, mode);
}
FILE* fopen64(const char* path, const char* mode) {
  char buf[4096];
  if (const char* p = moved(path, buf, sizeof buf)) path = p;
  return next<FILE* (*)(const char*, const char*)>("fopen64")(path, mode);
}

// oxenstored binds /var/run/xenstored/socket whatever it is told: the socket goes to the shim's folder.
int bind(int fd, const struct sockaddr* addr, socklen_t len) {
  const char* dir = std::getenv("COVIRT_XS_SHIM_DIR");
  auto real = next<int (*)(int, const struct sockaddr*, socklen_t)>("bind");
  if (dir && addr && addr->sa_family == AF_UNIX) {
    auto* un = reinterpret_cast<const sockaddr_un*>(addr);
    const char prefix[] = "/var/run/xenstored/";
    if (std::strncmp(un->sun_path, prefix, sizeof prefix - 1) == 0) {
      sockaddr_un copy{};
      copy.sun_family = AF_UNIX;
      int n = std::snprintf(copy.sun_path, sizeof copy.sun_path, "%s/%s", dir, un->sun_path + sizeof prefix - 1);
      if (n < 0 || static_cast<size_t>(n) >= sizeof copy.sun_path) { errno = ENAMETOOLONG; return -1; }
      unlink(copy.sun_path);
      return real(fd, reinterpret_cast<const sockaddr*>(&copy), sizeof copy);
    }
  }
  return real(fd, addr, len);
}

// libxenctrl: a handle, and a host whose only domain is dom0.
xc_interface* xc_interface_open(xentoollog_logger*, xentoollog_logger*, unsigned) {
  return reinterpret_cast<xc_interface*>(&fake_handle);
}
int xc_interface_close(xc_interface*) { return 0; }
int xc_domain_getinfo(xc_interface*, uint32_t first, unsigned int max, xc_dominfo_t* info) {
  if (first != 0 || max == 0) return 0;
  std::memset(info, 0, sizeof *info);
  info->domid = 0;
  info->running = 1;
  info->max_vcpu_id = 0;
  info->nr_online_vcpus = 1;
  return 1;
}
int xc_domain_getinfolist(xc_interface*, uint32_t first, unsigned int max, xc_domaininfo_t* info) {
  if (first != 0 || max == 0) return 0;
  std::memset(info, 0, sizeof *info);
  info->domain = 0;
  info->flags = XEN_DOMINF_running;
  return 1;
}

// libxenevtchn: the fd is a pipe's read end that never becomes readable.
xenevtchn_handle* xenevtchn_open(xentoollog_logger*, unsigned) {
  if (pipe_fds[0] < 0 && pipe(pipe_fds) != 0) return nullptr;
  return reinterpret_cast<xenevtchn_handle*>(&fake_handle);
}
xenevtchn_handle* xenevtchn_fdopen(xentoollog_logger* l, int, unsigned f) { return xenevtchn_open(l, f); }
int xenevtchn_close(xenevtchn_handle*) { return 0; }
int xenevtchn_fd(xenevtchn_handle*) { return pipe_fds[0]; }
int xenevtchn_notify(xenevtchn_handle*, evtchn_port_t) { return 0; }
xenevtchn_port_or_error_t xenevtchn_bind_virq(xenevtchn_handle*, unsigned int) { return next_port++; }
xenevtchn_port_or_error_t xenevtchn_bind_interdomain(xenevtchn_handle*, uint32_t, evtchn_port_t) { return next_port++; }
int xenevtchn_unbind(xenevtchn_handle*, evtchn_port_t) { return 0; }
xenevtchn_port_or_error_t xenevtchn_pending(xenevtchn_handle*) { errno = EAGAIN; return -1; }
int xenevtchn_unmask(xenevtchn_handle*, evtchn_port_t) { return 0; }

// libxengnttab: opens, maps nothing.
xengnttab_handle* xengnttab_open(xentoollog_logger*, unsigned) { return reinterpret_cast<xengnttab_handle*>(&fake_handle); }
int xengnttab_close(xengnttab_handle*) { return 0; }
int xengnttab_set_max_grants(xengnttab_handle*, uint32_t) { return 0; }
void* xengnttab_map_grant_ref(xengnttab_handle*, uint32_t, uint32_t, int) { errno = ENOSYS; return nullptr; }
int xengnttab_unmap(xengnttab_handle*, void*, uint32_t) { return 0; }
}

// covirt: the QEMU driver's state on disk.
#include <covirt/qemu/state.hpp>

#include "cgroup.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <dirent.h>
#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

namespace covirt::qemu {

namespace fs = std::filesystem;
namespace json = boost::json;

namespace {

std::string errno_text(int e) { return std::strerror(e); }

struct fd_guard {
  int fd;
  ~fd_guard() {
    if (fd >= 0) ::close(fd);
  }
};

// mkdir -p, each created level with `mode`; an existing non-directory is an error.
bool make_dirs(const fs::path& dir, unsigned mode, std::string& why) {
  fs::path cur;
  for (const auto& part : dir) {
    cur /= part;
    if (cur == cur.root_path()) continue;
    if (::mkdir(cur.c_str(), mode) == 0) continue;
    int e = errno;
    struct stat st{};
    if (e == EEXIST && ::stat(cur.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) continue;
    why = "cannot create directory '" + cur.string() + "': " + errno_text(e == EEXIST ? ENOTDIR : e);
    return false;
  }
  return true;
}

std::optional<std::string> env_abs(const char* name) {
  const char* v = std::getenv(name);
  if (!v || v[0] != '/') return std::nullopt;  // the XDG spec says to ignore relative values
  return std::string(v);
}

std::optional<std::string> home_dir() {
  if (auto h = env_abs("HOME")) return h;
  passwd pw{}, *res = nullptr;
  char buf[4096];
  if (::getpwuid_r(::getuid(), &pw, buf, sizeof buf, &res) == 0 && res && res->pw_dir && res->pw_dir[0] == '/')
    return std::string(res->pw_dir);
  return std::nullopt;
}

bool valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    std::size_t n;
    if (c < 0x80) n = 0;
    else if ((c & 0xe0) == 0xc0 && c >= 0xc2) n = 1;
    else if ((c & 0xf0) == 0xe0) n = 2;
    else if ((c & 0xf8) == 0xf0 && c <= 0xf4) n = 3;
    else return false;
    if (n > s.size() - i - 1) return false;
    for (std::size_t k = 1; k <= n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return false;
    i += n + 1;
  }
  return true;
}

}  // namespace

result<void> check_name_for_file(std::string_view name, diagnostics& diag) {
  auto bad = [&](const std::string& why) {
    std::string shown;
    for (char c : name.substr(0, 64)) shown += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
    if (name.size() > 64) shown += "...";
    return fail(diag, errc::invalid_arg, "domain name '" + shown + "' cannot be used: " + why);
  };
  if (name.empty()) return bad("it is empty");
  if (name.size() > 200) return bad("it is longer than 200 bytes");
  if (name == "." || name == "..") return bad("it names a directory");
  if (name.front() == '.') return bad("it starts with '.'");
  for (char c : name) {
    if (c == '/') return bad("it contains '/'");
    if (c == '\0') return bad("it contains a NUL byte");
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return bad("it contains a control character");
  }
  if (!valid_utf8(name)) return bad("it is not valid UTF-8");
  return {};
}

result<paths> resolve_paths(const covirt::uri& u, diagnostics& diag) {
  paths out;
  if (u.path == "/system") out.privileged = true;
  else if (u.path != "/session")
    return fail(diag, errc::invalid_arg, "unexpected path '" + u.path + "' in '" + u.original +
                                             "': expected /session or /system");
  auto override_of = [&](const char* key, std::optional<fs::path>& dst) -> result<void> {
    auto v = u.param(key);
    if (!v) return {};
    if (v->empty() || (*v)[0] != '/')
      return fail(diag, errc::invalid_arg, std::string(key) + " '" + *v + "' in '" + u.original + "' must be absolute");
    dst = fs::path(*v).lexically_normal();
    return {};
  };
  std::optional<fs::path> cfg, st, lg;
  if (auto r = override_of("config_dir", cfg); !r) return r.error();
  if (auto r = override_of("state_dir", st); !r) return r.error();
  if (auto r = override_of("log_dir", lg); !r) return r.error();

  if (out.privileged) {
    out.config_dir = cfg.value_or("/etc/covirt/qemu");
    out.state_dir = st.value_or("/run/covirt/qemu");
    out.log_dir = lg ? *lg : st ? *st / "log" : fs::path("/var/log/covirt/qemu");
  } else {
    auto home = home_dir();
    auto need_home = [&]() -> result<fs::path> {
      if (!home) return fail(diag, errc::invalid_arg, "cannot find the home directory (HOME is not set)");
      return fs::path(*home);
    };
    if (cfg) {
      out.config_dir = *cfg;
    } else if (auto x = env_abs("XDG_CONFIG_HOME")) {
      out.config_dir = fs::path(*x) / "covirt" / "qemu";
    } else {
      auto h = need_home();
      if (!h) return h.error();
      out.config_dir = *h / ".config" / "covirt" / "qemu";
    }
    if (st) {
      out.state_dir = *st;
    } else if (auto x = env_abs("XDG_RUNTIME_DIR")) {
      out.state_dir = fs::path(*x) / "covirt" / "qemu";
    } else {
      fs::path run = "/run/user/" + std::to_string(::getuid());
      struct stat sb{};
      if (::stat(run.c_str(), &sb) == 0 && S_ISDIR(sb.st_mode) && sb.st_uid == ::getuid()) {
        out.state_dir = run / "covirt" / "qemu";
      } else {
        // A directory in /tmp must really be ours: not someone's symlink or group-writable dir.
        fs::path tmp = "/tmp/covirt-" + std::to_string(::getuid());
        if (::mkdir(tmp.c_str(), 0700) < 0 && errno != EEXIST)
          return fail(diag, errc::operation_failed, "cannot create directory '" + tmp.string() + "': " + errno_text(errno));
        if (::lstat(tmp.c_str(), &sb) < 0 || !S_ISDIR(sb.st_mode) || sb.st_uid != ::getuid() ||
            (sb.st_mode & 0077) != 0)
          return fail(diag, errc::operation_failed,
                      "'" + tmp.string() + "' is not a private directory owned by this user");
        out.state_dir = tmp / "covirt" / "qemu";
      }
    }
    if (lg) {
      out.log_dir = *lg;
    } else if (st) {
      out.log_dir = *st / "log";
    } else if (auto x = env_abs("XDG_CACHE_HOME")) {
      out.log_dir = fs::path(*x) / "covirt" / "qemu" / "log";
    } else {
      auto h = need_home();
      if (!h) return h.error();
      out.log_dir = *h / ".cache" / "covirt" / "qemu" / "log";
    }
  }
  if (auto cg = u.param("cgroup_root")) {
    fs::path n = fs::path(*cg).lexically_normal();
    if (cg->empty() || (*cg)[0] != '/' || n.string().find("/..") != std::string::npos)
      return fail(diag, errc::invalid_arg, "cgroup_root '" + *cg + "' in '" + u.original + "' must be an absolute path without '..'");
    out.cgroup_root = n.string();
  } else {
    out.cgroup_root = default_cgroup_root(out.privileged, out.state_dir);
  }
  std::string why;
  if (!make_dirs(out.config_dir, out.privileged ? 0755 : 0700, why) || !make_dirs(out.state_dir, 0700, why) ||
      !make_dirs(out.log_dir, 0700, why))
    return fail(diag, errc::operation_failed, why);
  return out;
}

result<domain_files> files_for(const paths& p, std::string_view name, diagnostics& diag) {
  if (auto r = check_name_for_file(name, diag); !r) return r.error();
  std::string n(name);
  domain_files f;
  f.definition = p.config_dir / (n + ".xml");
  f.autostart = p.config_dir / "autostart" / (n + ".xml");
  f.runtime = p.state_dir / (n + ".json");
  f.qmp_socket = p.state_dir / (n + ".qmp");
  f.log = p.log_dir / (n + ".log");
  if (f.qmp_socket.native().size() >= sizeof(sockaddr_un::sun_path))
    return fail(diag, errc::invalid_arg, "the monitor socket path '" + f.qmp_socket.string() + "' is longer than " +
                                             std::to_string(sizeof(sockaddr_un::sun_path) - 1) +
                                             " bytes: use a shorter domain name or state_dir");
  return f;
}

result<void> write_file_atomic(const fs::path& p, std::string_view content, diagnostics& diag, unsigned mode,
                               bool durable) {
  auto failed = [&](const std::string& why) {
    return fail(diag, errc::write_failed, "cannot write '" + p.string() + "': " + why);
  };
  if (!p.has_filename()) return failed("not a file name");
  fs::path dir = p.parent_path().empty() ? fs::path(".") : p.parent_path();
  std::string tmpl = (dir / ("." + p.filename().string() + ".tmp-XXXXXX")).string();
  int fd = ::mkostemp(tmpl.data(), O_CLOEXEC);
  if (fd < 0) return failed(errno_text(errno));
  // From here on, every failure removes the temporary file: the old one was never touched.
  auto abandon = [&](int e) {
    if (fd >= 0) ::close(fd);
    ::unlink(tmpl.c_str());
    return failed(errno_text(e));
  };
  if (::fchmod(fd, mode) < 0) return abandon(errno);
  std::size_t done = 0;
  while (done < content.size()) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return abandon(errno);
    if (n == 0) return abandon(EIO);
    done += static_cast<std::size_t>(n);
  }
  if (durable && ::fsync(fd) < 0) return abandon(errno);
  int c = ::close(fd);
  fd = -1;
  if (c < 0) return abandon(errno);
  if (::rename(tmpl.c_str(), p.c_str()) < 0) return abandon(errno);
  // The rename is durable only once the directory is on disk too.
  int dfd = durable ? ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return {};
}

result<std::optional<std::string>> read_file_if_exists(const fs::path& p, std::size_t max_bytes, diagnostics& diag) {
  auto failed = [&](const std::string& why) {
    return fail(diag, errc::read_failed, "cannot read '" + p.string() + "': " + why);
  };
  fd_guard g{::open(p.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY)};
  if (g.fd < 0) {
    if (errno == ENOENT) return std::optional<std::string>();
    return failed(errno_text(errno));
  }
  struct stat st{};
  if (::fstat(g.fd, &st) < 0) return failed(errno_text(errno));
  if (!S_ISREG(st.st_mode)) return failed("not a regular file");
  if (static_cast<std::uint64_t>(st.st_size) > max_bytes)
    return failed("larger than " + std::to_string(max_bytes) + " bytes");
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(g.fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return failed(errno_text(errno));
    if (n == 0) break;
    if (out.size() + static_cast<std::size_t>(n) > max_bytes)  // it grew while we read
      return failed("larger than " + std::to_string(max_bytes) + " bytes");
    out.append(buf, static_cast<std::size_t>(n));
  }
  return std::optional<std::string>(std::move(out));
}

result<std::string> read_file(const fs::path& p, std::size_t max_bytes, diagnostics& diag) {
  auto r = read_file_if_exists(p, max_bytes, diag);
  if (!r) return r.error();
  if (!*r) return fail(diag, errc::read_failed, "cannot read '" + p.string() + "': " + errno_text(ENOENT));
  return std::move(**r);
}

// ---- runtime records ----

std::string current_boot_id() {
  diagnostics ignored;
  auto r = read_file("/proc/sys/kernel/random/boot_id", 128, ignored);
  if (!r) return {};
  std::string s = *r;
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string runtime_to_json(const runtime_record& r) {
  json::object o;
  o["format"] = 1;
  o["name"] = r.name;
  o["uuid"] = r.uuid;
  o["id"] = r.id;
  o["pid"] = static_cast<std::int64_t>(r.pid);
  o["pid_start_ticks"] = r.pid_start_ticks;
  o["boot_id"] = r.boot_id;
  o["qmp_socket"] = r.qmp_socket;
  o["log_path"] = r.log_path;
  o["started_unix"] = r.started_unix;
  o["emulator"] = r.emulator;
  o["marker"] = r.marker;
  o["live_xml"] = r.live_xml;
  json::object extra;
  for (const auto& [k, v] : r.extra) extra[k] = v;
  o["extra"] = std::move(extra);
  return json::serialize(o) + "\n";
}

result<runtime_record> runtime_from_json(std::string_view text, diagnostics& diag) {
  auto bad = [&](const std::string& why) { return fail(diag, errc::parse_failed, "invalid runtime record: " + why); };
  error_code ec;
  json::value v = json::parse(text, ec);
  if (ec) return bad(ec.message());
  auto* o = v.if_object();
  if (!o) return bad("not a JSON object");
  runtime_record r;
  auto get_str = [&](const char* key, std::string& dst, bool required) -> bool {
    auto* x = o->if_contains(key);
    if (!x) return !required;
    auto* s = x->if_string();
    if (!s) return false;
    dst.assign(s->data(), s->size());
    return true;
  };
  auto get_int = [&](const char* key, auto& dst, bool required) -> bool {
    auto* x = o->if_contains(key);
    if (!x) return !required;
    using T = std::remove_reference_t<decltype(dst)>;
    if (auto* i = x->if_int64()) {
      if constexpr (std::is_unsigned_v<T>) {
        if (*i < 0) return false;
      }
      dst = static_cast<T>(*i);
      return true;
    }
    if (auto* u = x->if_uint64()) {
      dst = static_cast<T>(*u);
      return true;
    }
    return false;
  };
  if (!get_str("name", r.name, true)) return bad("'name' is missing or not a string");
  if (!get_int("pid", r.pid, true) || r.pid <= 0) return bad("'pid' is missing or not a positive integer");
  if (!get_str("qmp_socket", r.qmp_socket, true)) return bad("'qmp_socket' is missing or not a string");
  if (!get_str("uuid", r.uuid, false) || !get_int("id", r.id, false) ||
      !get_int("pid_start_ticks", r.pid_start_ticks, false) || !get_str("boot_id", r.boot_id, false) ||
      !get_str("log_path", r.log_path, false) || !get_int("started_unix", r.started_unix, false) ||
      !get_str("emulator", r.emulator, false) || !get_str("marker", r.marker, false) ||
      !get_str("live_xml", r.live_xml, false))
    return bad("a field has the wrong type");
  if (auto* x = o->if_contains("extra")) {
    auto* e = x->if_object();
    if (!e) return bad("'extra' is not an object");
    for (const auto& [k, val] : *e) {
      auto* s = val.if_string();
      if (!s) return bad("'extra." + std::string(k) + "' is not a string");
      r.extra.emplace(std::string(k), std::string(*s));
    }
  }
  return r;
}

namespace {
constexpr std::size_t max_record_bytes = 16 * 1024 * 1024;
constexpr std::size_t max_definition_bytes = 16 * 1024 * 1024;
}  // namespace

namespace {

// Runtime records written off the caller's thread, in order, the latest content per file only.
// A file system write can take milliseconds (ext4, a busy disk); the drivers run on an
// io_context that must not wait for it. Synchronous writes and removals of a file first drop
// what is queued for it and wait for a write of it in progress, so the queue never brings back
// an older record; readers drain the queue first, so they see every record written before.
class record_writer {
public:
  static record_writer& get() {
    static record_writer w;
    return w;
  }
  // The record is turned into JSON on the writer thread, not the caller's.
  void post(std::string path, runtime_record record) {
    std::lock_guard lk(mu_);
    if (!started_) {
      worker_ = std::thread([this] { run(); });
      started_ = true;
    }
    bool idle = order_.empty();
    auto [it, fresh] = pending_.insert_or_assign(path, std::move(record));
    if (idle) since_ = std::chrono::steady_clock::now();
    if (fresh) order_.push_back(std::move(path));
    if (idle) cv_.notify_all();  // a worker already collecting a burst needs no wake-up
  }
  // Drops what is queued for `path` and waits for a write of it in progress. Only the calling
  // thread queues writes of a given record, so none starts again before its own write or removal.
  void claim(const std::string& path) {
    std::unique_lock lk(mu_);
    if (pending_.erase(path)) order_.erase(std::find(order_.begin(), order_.end(), path));
    cv_.wait(lk, [&] { return writing_ != path; });
  }
  void drain() {
    std::unique_lock lk(mu_);
    ++draining_;
    cv_.notify_all();
    cv_.wait(lk, [&] { return order_.empty() && writing_.empty(); });
    --draining_;
  }
  ~record_writer() {
    {
      std::lock_guard lk(mu_);
      stop_ = true;
      cv_.notify_all();
    }
    if (worker_.joinable()) worker_.join();  // after writing what was queued
  }

private:
  void run() {
    std::unique_lock lk(mu_);
    for (;;) {
      cv_.wait(lk, [&] { return stop_ || !order_.empty(); });
      if (order_.empty()) return;  // stopping, nothing left
      // A burst of state changes (a loop of suspend/resume) becomes one write per record: wait
      // a moment for more, unless a reader or the end of the program is waiting.
      cv_.wait_until(lk, since_ + coalesce, [&] { return stop_ || draining_ > 0 || order_.empty(); });
      if (order_.empty()) continue;
      std::string path = std::move(order_.front());
      order_.pop_front();
      auto node = pending_.extract(path);
      writing_ = path;
      lk.unlock();
      diagnostics ignore;  // nobody waits for the answer; the next write or the reader will tell
      (void)write_file_atomic(path, runtime_to_json(node.mapped()), ignore, 0600, false);
      lk.lock();
      writing_.clear();
      cv_.notify_all();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, runtime_record> pending_;
  std::deque<std::string> order_;
  static constexpr auto coalesce = std::chrono::milliseconds(20);
  std::string writing_;  // the file being written now, if any
  int draining_ = 0;     // readers waiting for the queue to empty
  std::chrono::steady_clock::time_point since_;  // when the queue last became non-empty
  bool stop_ = false, started_ = false;
  std::thread worker_;
};

}  // namespace

void save_runtime_later(const paths& p, const runtime_record& r) {
  diagnostics ignore;
  auto f = files_for(p, r.name, ignore);
  if (!f) return;
  record_writer::get().post(f->runtime.string(), r);
}

void flush_runtime_writes() { record_writer::get().drain(); }

result<void> save_runtime(const paths& p, const runtime_record& r, diagnostics& diag) {
  auto f = files_for(p, r.name, diag);
  if (!f) return f.error();
  // No fsync: a runtime record describes processes that a power loss kills anyway (a record
  // from an earlier boot is stale by its boot id), and rename() alone is atomic against a crash
  // of this program. The fsyncs cost 0.6 ms or more per state change on ext4.
  std::string text = runtime_to_json(r);
  record_writer::get().claim(f->runtime.string());
  return write_file_atomic(f->runtime, text, diag, 0600, false);
}

result<std::optional<runtime_record>> load_runtime(const paths& p, std::string_view name, diagnostics& diag) {
  auto f = files_for(p, name, diag);
  if (!f) return f.error();
  flush_runtime_writes();
  auto text = read_file_if_exists(f->runtime, max_record_bytes, diag);
  if (!text) return text.error();
  if (!*text) return std::optional<runtime_record>();
  auto r = runtime_from_json(**text, diag);
  if (!r) {
    diag.assign("'" + f->runtime.string() + "': " + std::string(diag.message()));
    return r.error();
  }
  if (r->name != name)
    return fail(diag, errc::parse_failed,
                "'" + f->runtime.string() + "': invalid runtime record: it describes '" + r->name + "'");
  return std::optional<runtime_record>(std::move(*r));
}

result<void> remove_runtime(const paths& p, std::string_view name, diagnostics& diag) {
  auto f = files_for(p, name, diag);
  if (!f) return f.error();
  record_writer::get().claim(f->runtime.string());
  if (::unlink(f->runtime.c_str()) < 0 && errno != ENOENT)
    return fail(diag, errc::write_failed, "cannot remove '" + f->runtime.string() + "': " + errno_text(errno));
  return {};
}

namespace {

// Names NAME for every regular file DIR/NAME.SUFFIX whose NAME is a valid domain name.
result<std::vector<std::string>> names_in(const fs::path& dir, std::string_view suffix, diagnostics& diag) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) {
    if (errno == ENOENT) return out;
    return fail(diag, errc::read_failed, "cannot list '" + dir.string() + "': " + errno_text(errno));
  }
  while (dirent* e = ::readdir(d)) {
    std::string_view n(e->d_name);
    if (n.size() <= suffix.size() || !n.ends_with(suffix) || n.front() == '.') continue;
    if (e->d_type != DT_REG && e->d_type != DT_UNKNOWN) continue;
    auto name = n.substr(0, n.size() - suffix.size());
    diagnostics ignored;
    if (!check_name_for_file(name, ignored)) continue;
    out.emplace_back(name);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

result<std::vector<runtime_record>> list_runtime(const paths& p, diagnostics& diag, std::vector<std::string>* problems) {
  flush_runtime_writes();
  auto names = names_in(p.state_dir, ".json", diag);
  if (!names) return names.error();
  std::vector<runtime_record> out;
  std::string all;
  for (const auto& n : *names) {
    diagnostics d;
    auto r = load_runtime(p, n, d);
    if (r && *r) {
      out.push_back(std::move(**r));
    } else if (!r) {
      // A corrupt record must not hide the others: report it and go on.
      std::string msg = "skipped: " + std::string(d.message());
      if (problems) problems->push_back(msg);
      all += (all.empty() ? "" : "; ") + msg;
    }
  }
  diag.assign(all);
  return out;
}

// ---- definitions ----

result<void> save_definition(const paths& p, std::string_view name, std::string_view xml, diagnostics& diag) {
  auto f = files_for(p, name, diag);
  if (!f) return f.error();
  return write_file_atomic(f->definition, xml, diag);
}

result<std::optional<std::string>> load_definition(const paths& p, std::string_view name, diagnostics& diag) {
  auto f = files_for(p, name, diag);
  if (!f) return f.error();
  return read_file_if_exists(f->definition, max_definition_bytes, diag);
}

result<void> remove_definition(const paths& p, std::string_view name, diagnostics& diag) {
  auto f = files_for(p, name, diag);
  if (!f) return f.error();
  // The autostart link first: a crash in between must not leave a link to nothing.
  if (::unlink(f->autostart.c_str()) < 0 && errno != ENOENT)
    return fail(diag, errc::write_failed, "cannot remove '" + f->autostart.string() + "': " + errno_text(errno));
  if (::unlink(f->definition.c_str()) < 0 && errno != ENOENT)
    return fail(diag, errc::write_failed, "cannot remove '" + f->definition.string() + "': " + errno_text(errno));
  return {};
}

result<std::vector<std::string>> list_definitions(const paths& p, diagnostics& diag) {
  return names_in(p.config_dir, ".xml", diag);
}

result<void> set_autostart(const paths& p, std::string_view name, bool on, diagnostics& diag) {
  auto f = files_for(p, name, diag);
  if (!f) return f.error();
  if (!on) {
    if (::unlink(f->autostart.c_str()) < 0 && errno != ENOENT)
      return fail(diag, errc::write_failed, "cannot remove '" + f->autostart.string() + "': " + errno_text(errno));
    return {};
  }
  struct stat st{};
  if (::stat(f->definition.c_str(), &st) < 0)
    return fail(diag, errc::no_domain, "domain '" + std::string(name) + "' is not defined");
  std::string why;
  if (!make_dirs(f->autostart.parent_path(), p.privileged ? 0755 : 0700, why))
    return fail(diag, errc::write_failed, why);
  // A link made under a temporary name and renamed: it is there whole or not at all.
  std::string target = "../" + f->definition.filename().string();
  std::string tmp = (f->autostart.parent_path() / ("." + f->autostart.filename().string() + ".tmp-" +
                                                   std::to_string(::getpid()))).string();
  ::unlink(tmp.c_str());
  if (::symlink(target.c_str(), tmp.c_str()) < 0)
    return fail(diag, errc::write_failed, "cannot create '" + tmp + "': " + errno_text(errno));
  if (::rename(tmp.c_str(), f->autostart.c_str()) < 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    return fail(diag, errc::write_failed, "cannot create '" + f->autostart.string() + "': " + errno_text(e));
  }
  return {};
}

bool get_autostart(const paths& p, std::string_view name) {
  diagnostics ignored;
  auto f = files_for(p, name, ignored);
  if (!f) return false;
  struct stat st{};
  return ::lstat(f->autostart.c_str(), &st) == 0;
}

}  // namespace covirt::qemu

// covirt-sh against the QEMU driver: whole virsh sessions through
// `covirt-sh -c 'qemu:///session?config_dir=..&state_dir=..'`, one covirt-sh process per call
// (each one re-attaches to the guests the previous ones left running), with real QEMU under TCG.
// Every run of covirt-sh is bounded; every guest is killed by its guest_dir at the end.
#include "common/qemu_guests.hpp"
#include "common/prelude.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

void write_file(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
  REQUIRE(out.good());
}

struct outcome {
  std::string out, err;
  int status = -1;  // the exit status; -2: killed after its time limit
};

/// One covirt-sh run started in the background, stdout and stderr in files under `dir`.
class sh_process {
public:
  sh_process(const fs::path& dir, std::vector<std::string> args) {
    static int serial = 0;
    ++serial;
    out_ = dir / ("sh-" + std::to_string(serial) + ".out");
    err_ = dir / ("sh-" + std::to_string(serial) + ".err");
    const char* sh = std::getenv("COVIRT_SH");
    REQUIRE(sh != nullptr);
    args.insert(args.begin(), sh);
    int out_fd = ::open(out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int err_fd = ::open(err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    REQUIRE(out_fd >= 0);
    REQUIRE(err_fd >= 0);
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      ::dup2(out_fd, 1);
      ::dup2(err_fd, 2);
      int null_fd = ::open("/dev/null", O_RDONLY);
      ::dup2(null_fd, 0);
      if (::chdir(dir.c_str()) != 0) ::_exit(126);
      ::unsetenv("COVIRT_DEFAULT_URI");
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(out_fd);
    ::close(err_fd);
  }
  sh_process(const sh_process&) = delete;
  sh_process& operator=(const sh_process&) = delete;
  ~sh_process() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int st;
      ::waitpid(pid_, &st, 0);
    }
  }

  /// Waits for the end, at most `limit` (then kills it: status -2).
  outcome wait(std::chrono::milliseconds limit = 90s) {
    outcome o;
    auto end = std::chrono::steady_clock::now() + limit;
    int st = 0;
    for (;;) {
      pid_t r = ::waitpid(pid_, &st, WNOHANG);
      if (r == pid_) {
        o.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        break;
      }
      if (std::chrono::steady_clock::now() > end) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &st, 0);
        o.status = -2;
        break;
      }
      std::this_thread::sleep_for(20ms);
    }
    pid_ = -1;
    o.out = slurp(out_);
    o.err = slurp(err_);
    std::error_code ec;
    fs::remove(out_, ec);
    fs::remove(err_, ec);
    return o;
  }

  std::string out_so_far() const { return slurp(out_); }

private:
  pid_t pid_ = -1;
  fs::path out_, err_;
};

/// covirt-sh -c URI SCRIPT, run in `dir`, bounded.
outcome sh(const guest_dir& dir, const std::string& uri, const std::string& script,
           std::chrono::milliseconds limit = 90s) {
  sh_process p(dir.path, {"-c", uri, script});
  auto o = p.wait(limit);
  UNSCOPED_INFO("covirt-sh -c " << uri << " '" << script << "'\nstatus " << o.status << "\nstdout:\n"
                                << o.out << "stderr:\n" << o.err);
  return o;
}
outcome sh(const guest_dir& dir, const std::string& script, std::chrono::milliseconds limit = 90s) {
  return sh(dir, dir.uri(), script, limit);
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::vector<std::string> lines(const std::string& s) {
  std::vector<std::string> v;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);) v.push_back(l);
  return v;
}

/// The row of `list` for a domain: " ID   NAME   STATE" with the widths collapsed.
std::string list_row(const std::string& list_out, const std::string& name) {
  for (const auto& l : lines(list_out)) {
    std::istringstream in(l);
    std::string id, n, rest;
    in >> id >> n;
    std::getline(in, rest);
    if (n == name) {
      auto b = rest.find_first_not_of(' ');
      return id + " " + n + " " + (b == std::string::npos ? std::string() : rest.substr(b));
    }
  }
  return {};
}

/// The progress text of a save/restore/migrate: "\rLabel: [NNN %]" pieces; checks their form,
/// that only the last says 100, and that the whole ends with "[100 %]\n".
void check_progress(const std::string& err, const std::string& label) {
  INFO("stderr: " << err);
  REQUIRE(err.size() > 1);
  CHECK(err.back() == '\n');
  CHECK(has(err, "\r" + label + ": [100 %]\n"));
  CHECK(err.ends_with(label + ": [100 %]\n"));
  std::string body = err.substr(0, err.size() - 1);
  std::regex piece(label + R"(: \[([ 0-9]{3}) %\])");
  std::vector<int> values;
  std::size_t pos = 0;
  while (pos < body.size()) {
    REQUIRE(body[pos] == '\r');
    auto next = body.find('\r', pos + 1);
    std::string p = body.substr(pos + 1, next == std::string::npos ? std::string::npos : next - pos - 1);
    std::smatch m;
    REQUIRE(std::regex_match(p, m, piece));
    values.push_back(std::stoi(m[1].str()));
    pos = next == std::string::npos ? body.size() : next;
  }
  REQUIRE(!values.empty());
  CHECK(values.back() == 100);
  for (std::size_t i = 0; i + 1 < values.size(); ++i) {
    CHECK(values[i] >= 0);
    CHECK(values[i] < 100);
  }
}

/// The guests a dir's QEMU processes run: none left means the test cleaned up after itself.
std::size_t qemu_count(const guest_dir& dir) { return qemu_pids_with(dir.path.string()).size(); }

/// Waits until `cond` holds, polling every 50 ms, at most `limit`.
template <class F>
bool wait_until(F cond, std::chrono::milliseconds limit = 10s) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (!cond()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(50ms);
  }
  return true;
}

/// A guest of this folder: NAME.xml written, defined and started by covirt-sh.
void start_guest(const guest_dir& dir, const std::string& name) {
  write_file(dir.path / (name + ".xml"), guest_xml(name));
  REQUIRE(sh(dir, "define " + name + ".xml; start " + name).status == 0);
}

/// Runs `script` and expects it to succeed with exactly `out` on stdout and nothing on stderr.
void expect_output(const guest_dir& dir, const std::string& script, const std::string& out) {
  auto r = sh(dir, script);
  INFO(script);
  REQUIRE(r.status == 0);
  CHECK(r.err.empty());
  CHECK(r.out == out);
}

/// Ends the folder's guest NAME: destroyed, undefined, its QEMU gone.
void remove_guest(const guest_dir& dir, const std::string& name) {
  REQUIRE(sh(dir, "destroy " + name + "; undefine " + name).status == 0);
  CHECK(wait_until([&] { return qemu_count(dir) == 0; }));
}

}  // namespace

TEST_CASE("covirt-sh on qemu:///session: define, start, list, dominfo, suspend, resume, dumpxml, destroy, undefine",
          "[qemu][sh]") {
  guest_dir dir{"covirt-sh-tour"};
  write_file(dir.path / "tour.xml", guest_xml("tour"));

  auto a = sh(dir, "define tour.xml; list --all");
  REQUIRE(a.status == 0);
  CHECK(a.err.empty());
  CHECK(has(a.out, "Domain 'tour' defined from tour.xml\n"));
  CHECK(list_row(a.out, "tour") == "- tour shut off");

  // Each call below is a new covirt-sh process: the driver re-attaches to the running guest.
  auto b = sh(dir, "start tour");
  REQUIRE(b.status == 0);
  CHECK(b.out == "Domain 'tour' started\n\n");
  CHECK(dir.records().size() == 1);

  auto c = sh(dir, "list");
  REQUIRE(c.status == 0);
  CHECK(has(c.out, " Id   Name   State\n"));
  auto row = list_row(c.out, "tour");
  CHECK(row.ends_with(" tour running"));
  CHECK(row.substr(0, 1) != "-");

  auto d = sh(dir, "dominfo tour");
  REQUIRE(d.status == 0);
  CHECK(has(d.out, "Name:           tour\n"));
  CHECK(has(d.out, "State:          running\n"));
  CHECK(has(d.out, "Max memory:     65536 KiB\n"));
  CHECK(has(d.out, "Persistent:     yes\n"));
  CHECK(has(d.out, "CPU(s):         1\n"));

  auto e = sh(dir, "suspend tour; domstate --reason tour");
  REQUIRE(e.status == 0);
  CHECK(e.out == "Domain 'tour' suspended\n\npaused (user)\n\n");

  auto f = sh(dir, "domstate --reason tour; resume tour; domstate --reason tour");
  REQUIRE(f.status == 0);
  CHECK(f.out == "paused (user)\n\nDomain 'tour' resumed\n\nrunning (unpaused)\n\n");

  auto g = sh(dir, "dumpxml tour");
  REQUIRE(g.status == 0);
  CHECK(has(g.out, "<domain type='qemu' id="));
  CHECK(has(g.out, "<name>tour</name>"));
  CHECK(has(g.out, "<type arch='x86_64' machine='q35'>hvm</type>"));

  auto h = sh(dir, "destroy tour; domstate --reason tour; list --all");
  REQUIRE(h.status == 0);
  CHECK(has(h.out, "Domain 'tour' destroyed\n"));
  CHECK(has(h.out, "shut off (destroyed)\n"));
  CHECK(list_row(h.out, "tour") == "- tour shut off");
  CHECK(wait_until([&] { return qemu_count(dir) == 0; }));

  auto i = sh(dir, "undefine tour; list --all --name");
  REQUIRE(i.status == 0);
  CHECK(i.out == "Domain 'tour' has been undefined\n\n\n");

  // Errors keep virsh's two lines and the last command's status.
  auto j = sh(dir, "start nosuch");
  CHECK(j.status != 0);
  CHECK(j.err == "error: failed to get domain 'nosuch'\n");
  auto k = sh(dir, "define tour.xml; start tour; start tour; destroy tour; undefine tour");
  CHECK(k.status == 0);
  CHECK(k.err == "error: Domain is already active\n");
  auto l = sh(dir, "define tour.xml; suspend tour");
  CHECK(l.status != 0);
  CHECK(lines(l.err).size() == 2);
  CHECK(has(l.err, "error: Failed to suspend domain 'tour'\nerror: "));
  CHECK(qemu_count(dir) == 0);
}

TEST_CASE("covirt-sh on qemu:///session: event sees the lifecycle events of a script", "[qemu][sh]") {
  guest_dir dir{"covirt-sh-event"};
  write_file(dir.path / "ev.xml", guest_xml("ev"));

  SECTION("event --background --all while the script runs") {
    auto r = sh(dir, "event --background --all; define ev.xml; start ev; suspend ev; resume ev; destroy ev; "
                     "undefine ev");
    REQUIRE(r.status == 0);
    CHECK(r.err.empty());
    std::vector<std::string> events;
    for (const auto& l : lines(r.out))
      if (l.starts_with("event ")) events.push_back(l);
    std::vector<std::string> want = {"event 'lifecycle' for domain 'ev': Defined Added",
                                     "event 'lifecycle' for domain 'ev': Started Booted",
                                     "event 'lifecycle' for domain 'ev': Suspended Paused",
                                     "event 'lifecycle' for domain 'ev': Resumed Unpaused",
                                     "event 'lifecycle' for domain 'ev': Stopped Destroyed",
                                     "event 'lifecycle' for domain 'ev': Undefined Removed"};
    CHECK(events == want);
    // Each event follows the command that caused it.
    CHECK(has(r.out, "Domain 'ev' started\nevent 'lifecycle' for domain 'ev': Started Booted\n"));
    CHECK(has(r.out, "Domain 'ev' destroyed\nevent 'lifecycle' for domain 'ev': Stopped Destroyed\n"));
  }

  SECTION("event --loop --timeout: prints what happens to the guest until the timeout") {
    // The event loop runs in the covirt-sh process that owns the guest's monitor: the guest
    // is started by the same script, then QEMU is killed from outside while the loop waits.
    sh_process p(dir.path, {"-c", dir.uri(),
                            "define ev.xml; start ev; event --domain ev --all --loop --timeout 6; domstate --reason ev"});
    REQUIRE(wait_until([&] { return dir.records().size() == 1 && dir.records().at(0).pid > 0; }, 30s));
    pid_t pid = dir.records().at(0).pid;
    // `event` flushes the script's output once it listens: start's line is the sign.
    REQUIRE(wait_until([&] { return has(p.out_so_far(), "Domain 'ev' started\n"); }, 30s));
    REQUIRE(::kill(pid, SIGKILL) == 0);
    auto r = p.wait(30s);
    INFO("stdout:\n" << r.out << "stderr:\n" << r.err);
    CHECK(r.status == 0);
    CHECK(r.err.empty());
    CHECK(has(r.out, "Domain 'ev' started\n\n"
                     "event 'lifecycle' for domain 'ev': Stopped Crashed\n"
                     "event loop timed out\n"
                     "events received: 1\n\n"
                     "shut off (crashed)\n\n"));
    auto s = sh(dir, "undefine ev");
    CHECK(s.out == "Domain 'ev' has been undefined\n\n");
  }

  SECTION("event --loop --timeout with nothing happening") {
    auto r = sh(dir, "define ev.xml; event --all --loop --timeout 1; undefine ev");
    CHECK(r.status == 0);
    CHECK(has(r.out, "event loop timed out\nevents received: 0\n"));
  }
  CHECK(wait_until([&] { return qemu_count(dir) == 0; }));
}

TEST_CASE("covirt-sh on qemu:///session: save --verbose and restore --verbose show progress on stderr",
          "[qemu][sh]") {
  guest_dir dir{"covirt-sh-save"};
  start_guest(dir, "sv");

  auto s = sh(dir, "save sv sv.img --verbose; domstate --reason sv");
  REQUIRE(s.status == 0);
  CHECK(s.out == "\nDomain 'sv' saved to sv.img\n\nshut off (saved)\n\n");
  check_progress(s.err, "Save");
  CHECK(fs::exists(dir.path / "sv.img"));
  CHECK(wait_until([&] { return qemu_count(dir) == 0; }));

  auto r = sh(dir, "restore sv.img --verbose; domstate --reason sv");
  REQUIRE(r.status == 0);
  CHECK(r.out == "Domain restored from sv.img\n\nrunning (restored)\n\n");
  check_progress(r.err, "Restore");

  // Without --verbose and with stderr not a terminal: no progress at all, as virsh.
  expect_output(dir, "save sv sv2.img; restore sv2.img; domstate sv",
                "\nDomain 'sv' saved to sv2.img\n\nDomain restored from sv2.img\n\nrunning\n\n");

  // A failed save ends with virsh's two error lines and no 100 %.
  auto f = sh(dir, "save sv /nonexistent-dir/x.img --verbose");
  CHECK(f.status != 0);
  CHECK(!has(f.err, "[100 %]"));
  CHECK(has(f.err, "error: Failed to save domain 'sv' to /nonexistent-dir/x.img\nerror: "));

  remove_guest(dir, "sv");
}

TEST_CASE("covirt-sh on qemu:///session: domjobinfo and domjobabort", "[qemu][sh]") {
  guest_dir dir{"covirt-sh-job"};
  start_guest(dir, "jb");

  expect_output(dir, "domjobinfo jb", "Job type:         None        \n\n");

  // No job to abort: an error, not a crash (libvirt: "no job is active on the domain").
  auto a = sh(dir, "domjobabort jb");
  CHECK(a.status != 0);
  CHECK(a.err.starts_with("error: "));

  auto n = sh(dir, "domjobinfo nosuch");
  CHECK(n.status != 0);
  CHECK(n.err == "error: failed to get domain 'nosuch'\n");
  remove_guest(dir, "jb");
}

TEST_CASE("covirt-sh on qemu:///session: attach-device and detach-device of a disk", "[qemu][sh]") {
  guest_dir dir{"covirt-sh-hotplug"};
  // q35 hot-plugs PCI devices into free PCIe root ports.
  write_file(dir.path / "hp.xml",
             guest_xml("hp", "qemu",
                       "<controller type='pci' index='1' model='pcie-root-port'/>"
                       "<controller type='pci' index='2' model='pcie-root-port'/>"));
  fs::path disk = dir.path / "extra.raw";
  {
    std::ofstream(disk).put('\0');
    fs::resize_file(disk, 16u << 20);
  }
  write_file(dir.path / "disk.xml", "<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='" +
                                        disk.string() + "'/><target dev='vdb' bus='virtio'/></disk>\n");
  REQUIRE(sh(dir, "define hp.xml; start hp").status == 0);

  SECTION("live") {
    auto a = sh(dir, "attach-device hp disk.xml --live");
    REQUIRE(a.status == 0);
    CHECK(a.err.empty());
    CHECK(a.out == "Device attached successfully\n\n");
    auto x = sh(dir, "dumpxml hp; dumpxml --inactive hp");
    auto live_end = x.out.find("</domain>");
    REQUIRE(live_end != std::string::npos);
    std::string live = x.out.substr(0, live_end), inactive = x.out.substr(live_end);
    CHECK(has(live, "<target dev='vdb' bus='virtio'/>"));
    CHECK(has(live, disk.string()));
    CHECK(!has(inactive, "vdb"));  // --live only
    auto b = sh(dir, "domblkstat hp vdb");
    CHECK(b.status == 0);
    CHECK(has(b.out, "vdb rd_req "));

    // The same target twice is refused with virsh's first line.
    auto twice = sh(dir, "attach-device hp disk.xml --live");
    CHECK(twice.status != 0);
    CHECK(has(twice.err, "error: Failed to attach device from disk.xml\nerror: "));

    // Removal needs the guest's cooperation (this one runs no OS): the call still succeeds.
    auto d = sh(dir, "detach-device hp disk.xml --live");
    CHECK(d.status == 0);
    CHECK(d.out == "Device detached successfully\n\n");
  }

  SECTION("--config and --persistent change the definition") {
    auto a = sh(dir, "attach-device hp disk.xml --config; dumpxml --inactive hp");
    REQUIRE(a.status == 0);
    CHECK(has(a.out, "Device attached successfully\n"));
    CHECK(has(a.out, "<target dev='vdb' bus='virtio'/>"));
    auto live = sh(dir, "dumpxml hp");
    CHECK(!has(live.out, "vdb"));
    auto d = sh(dir, "detach-device hp disk.xml --config; dumpxml --inactive hp");
    REQUIRE(d.status == 0);
    CHECK(has(d.out, "Device detached successfully\n"));
    CHECK(!has(d.out, "vdb"));

    // --persistent on a running guest: both.
    auto p = sh(dir, "attach-device hp disk.xml --persistent; dumpxml hp; dumpxml --inactive hp");
    REQUIRE(p.status == 0);
    auto first = p.out.find("<target dev='vdb'");
    REQUIRE(first != std::string::npos);
    CHECK(p.out.find("<target dev='vdb'", first + 1) != std::string::npos);
  }

  SECTION("option clashes are virsh's") {
    auto c = sh(dir, "attach-device hp disk.xml --current --live");
    CHECK(c.status != 0);
    CHECK(c.err == "error: Options --current and --live are mutually exclusive\n");
    auto p = sh(dir, "detach-device hp disk.xml --persistent --current");
    CHECK(p.err == "error: Options --persistent and --current are mutually exclusive\n");
    auto m = sh(dir, "attach-device hp nosuch.xml");
    CHECK(m.status != 0);
    CHECK(m.err.starts_with("error: Failed to open file 'nosuch.xml'"));
  }

  REQUIRE(sh(dir, "destroy hp").status == 0);
  CHECK(wait_until([&] { return qemu_count(dir) == 0; }));
}

TEST_CASE("covirt-sh on qemu:///session: migrate --live --verbose to a second qemu:///session", "[qemu][sh]") {
  guest_dir src{"covirt-sh-msrc"};
  guest_dir dst{"covirt-sh-mdst"};
  write_file(src.path / "mg.xml", guest_xml("mg"));
  const std::string dest_uri = dst.uri();

  SECTION("a persistent guest: running at the destination, shut off at the source") {
    REQUIRE(sh(src, "define mg.xml; start mg").status == 0);
    auto m = sh(src, "migrate --live --verbose mg '" + dest_uri + "'");
    REQUIRE(m.status == 0);
    CHECK(m.out == "\n");
    check_progress(m.err, "Migration");

    auto d = sh(dst, dest_uri, "list; domstate --reason mg");
    CHECK(list_row(d.out, "mg").ends_with(" mg running"));
    CHECK(has(d.out, "running (migrated)\n"));
    auto s = sh(src, "list --all");
    CHECK(list_row(s.out, "mg") == "- mg shut off");
    CHECK(qemu_count(src) == 0);
    CHECK(qemu_count(dst) == 1);
    CHECK(sh(dst, dest_uri, "destroy mg").status == 0);
  }

  SECTION("--persistent --undefinesource: the definition moves too") {
    REQUIRE(sh(src, "define mg.xml; start mg").status == 0);
    auto m = sh(src, "migrate --live --persistent --undefinesource mg '" + dest_uri + "' --verbose");
    REQUIRE(m.status == 0);
    check_progress(m.err, "Migration");
    auto s = sh(src, "list --all --name");
    CHECK(!has(s.out, "mg"));
    auto d = sh(dst, dest_uri, "list --persistent --name; dominfo mg");
    CHECK(has(d.out, "mg\n"));
    CHECK(has(d.out, "Persistent:     yes\n"));
    CHECK(sh(dst, dest_uri, "destroy mg; undefine mg").status == 0);
  }

  SECTION("a transient guest is gone from the source") {
    REQUIRE(sh(src, "create mg.xml").status == 0);
    auto m = sh(src, "migrate --live mg '" + dest_uri + "'");
    REQUIRE(m.status == 0);
    CHECK(m.err.empty());  // no --verbose, stderr not a terminal: no progress
    auto s = sh(src, "list --all --name");
    CHECK(!has(s.out, "mg"));
    auto d = sh(dst, dest_uri, "list");
    CHECK(list_row(d.out, "mg").ends_with(" mg running"));
    CHECK(sh(dst, dest_uri, "destroy mg").status == 0);
  }

  SECTION("errors") {
    REQUIRE(sh(src, "define mg.xml").status == 0);
    auto off = sh(src, "migrate --live mg '" + dest_uri + "'");
    CHECK(off.status != 0);
    CHECK(lines(off.err).size() == 1);
    auto bad = sh(src, "migrate --live mg bogus:///x");
    CHECK(bad.status != 0);
    CHECK(bad.err.starts_with("error: "));
    auto nosuch = sh(src, "migrate --live nosuch '" + dest_uri + "'");
    CHECK(nosuch.err == "error: failed to get domain 'nosuch'\n");
  }
  CHECK(wait_until([&] { return qemu_count(src) == 0 && qemu_count(dst) == 0; }));
}

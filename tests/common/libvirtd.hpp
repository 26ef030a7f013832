// tests/common: a private libvirtd (Debian's real daemon) for one test, started by
// scripts/private-libvirtd in a directory of its own and stopped when the object goes.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>

namespace covirt::test_support {

/// Runs a shell command; its stdout, and its exit status in `status`.
inline std::string shell(const std::string& cmd, int* status = nullptr) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) throw std::runtime_error("cannot run: " + cmd);
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  const int st = ::pclose(p);
  if (status) *status = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
  return out;
}

inline std::string source_root() {
  const char* r = std::getenv("COVIRT_SOURCE_ROOT");
  return r ? r : ".";
}

class private_libvirtd {
public:
  /// `options`: more arguments for scripts/private-libvirtd ("--tcp 16600 --conf 'max_clients = 2000'").
  explicit private_libvirtd(std::string options = {}) : options_(std::move(options)) {
    char tmpl[] = "/tmp/covirt-libvirtd-XXXXXX";
    if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    start();
  }
  private_libvirtd(const private_libvirtd&) = delete;
  private_libvirtd& operator=(const private_libvirtd&) = delete;
  ~private_libvirtd() {
    stop(SIGTERM);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  void start() {
    int st = 0;
    const std::string out = shell(source_root() + "/scripts/private-libvirtd '" + dir_ + "' " + options_ + " 2>&1", &st);
    if (st != 0) throw std::runtime_error("private libvirtd did not start: " + out);
    pid_ = std::stoi(out);
  }
  /// Ends the daemon with `sig` and waits until it is gone (SIGKILL after 10 s).
  void stop(int sig = SIGTERM) {
    if (pid_ <= 0) return;
    ::kill(pid_, sig);
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (alive() && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (alive()) {
      ::kill(pid_, SIGKILL);
      while (alive()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    pid_ = -1;
  }
  void restart() {
    stop();
    start();
  }

  int pid() const noexcept { return pid_; }
  const std::string& dir() const noexcept { return dir_; }
  std::string socket() const { return dir_ + "/libvirt-sock"; }
  /// DRIVER+unix:///PATH?socket=... for this daemon ("test:///default" -> "test+unix:///default?socket=...").
  std::string uri(const std::string& driver = "test", const std::string& path = "/default") const {
    return driver + "+unix://" + path + "?socket=" + socket();
  }
  /// What virsh prints for `command` on this daemon's test:///default (stdout and stderr).
  std::string virsh(const std::string& command, int* status = nullptr) const {
    return shell("virsh -q -c '" + uri() + "' " + command + " 2>&1", status);
  }

private:
  // Gone, or a zombie nobody has reaped yet (the daemon is not our child).
  bool alive() const {
    std::ifstream st("/proc/" + std::to_string(pid_) + "/stat");
    std::string pid, comm, state;
    if (!(st >> pid >> comm >> state)) return false;
    return state != "Z" && state != "X";
  }

  std::string options_;
  std::string dir_;
  int pid_ = -1;
};

}  // namespace covirt::test_support

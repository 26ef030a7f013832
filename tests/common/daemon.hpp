// tests/common: a real daemon of one test's own, started by one of the scripts/private-* in a
// directory of its own (made here, removed at the end) and stopped when the object goes.
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

/// `scripts/NAME DIR OPTIONS` starts the daemon, waits until it answers and prints its pid.
class script_daemon {
public:
  script_daemon(std::string script, std::string options) : script_(std::move(script)), options_(std::move(options)) {
    std::string tmpl = "/tmp/covirt-" + script_ + "-XXXXXX";
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    start();
  }
  script_daemon(const script_daemon&) = delete;
  script_daemon& operator=(const script_daemon&) = delete;
  ~script_daemon() {
    stop(SIGTERM);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  void start() {
    int st = 0;
    const std::string out = shell(source_root() + "/scripts/" + script_ + " '" + dir_ + "' " + options_ + " 2>&1", &st);
    if (st != 0) throw std::runtime_error(script_ + " did not start: " + out);
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

private:
  // Gone, or a zombie nobody has reaped yet (the daemon is not our child).
  bool alive() const {
    std::ifstream st("/proc/" + std::to_string(pid_) + "/stat");
    std::string pid, comm, state;
    if (!(st >> pid >> comm >> state)) return false;
    return state != "Z" && state != "X";
  }

  std::string script_, options_;
  std::string dir_;
  int pid_ = -1;
};

}  // namespace covirt::test_support

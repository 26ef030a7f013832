// tests/common: the tests' fake xend (tests/fixtures/fake_xend.cpp, path in $COVIRT_FAKE_XEND)
// for one test: started in a temporary folder of its own, listening on a unix socket there
// (and on a free TCP port of 127.0.0.1 if asked), writing its domains' nodes into the given
// xenstored; ready once it printed "ready"; killed (SIGTERM, then SIGKILL) when the object goes.
#pragma once

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace covirt::test_support {

class fake_xend_process {
public:
  /// `xenstore_socket`: the xenstored it writes into (private_xenstored::socket()).
  /// `with_relocation`: also xend's relocation server (the target of migrations) on a free port.
  explicit fake_xend_process(const std::string& xenstore_socket, bool with_tcp = false, bool with_relocation = false) {
    const char* exe = std::getenv("COVIRT_FAKE_XEND");
    if (!exe) throw std::runtime_error("COVIRT_FAKE_XEND is not set (meson test sets it)");
    std::string tmpl = "/tmp/covirt-fake-xend-XXXXXX";
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    if (with_tcp) port_ = free_port();
    std::vector<std::string> args{exe, "--unix", unix_path(), "--xenstore", xenstore_socket, "--pidfile",
                                  dir_ + "/pid"};
    if (with_tcp) {
      args.push_back("--tcp");
      args.push_back(std::to_string(port_));
    }
    if (with_relocation) {
      relocation_port_ = free_port();
      args.push_back("--relocation");
      args.push_back(std::to_string(relocation_port_));
    }
    int out[2];
    if (::pipe(out) != 0) throw std::runtime_error("pipe failed");
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      ::dup2(out[1], 1);
      ::close(out[0]);
      ::close(out[1]);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(out[1]);
    out_ = out[0];
    wait_ready();
  }
  fake_xend_process(const fake_xend_process&) = delete;
  fake_xend_process& operator=(const fake_xend_process&) = delete;
  ~fake_xend_process() {
    stop();
    if (out_ >= 0) ::close(out_);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  const std::string& dir() const noexcept { return dir_; }
  std::string unix_path() const { return dir_ + "/xend-socket"; }
  /// The TCP port (0 unless started with_tcp).
  unsigned short port() const noexcept { return port_; }
  /// The relocation server's TCP port (0 unless started with_relocation).
  unsigned short relocation_port() const noexcept { return relocation_port_; }
  int pid() const noexcept { return pid_; }

  /// SIGTERM, then SIGKILL after 5 s; waits for it.
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    int st = 0;
    while (::waitpid(pid_, &st, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > until) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &st, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    pid_ = -1;
  }

  /// A TCP port of 127.0.0.1 free at the time of asking.
  static unsigned short free_port() {
    const int s = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (s < 0 || ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      throw std::runtime_error("cannot find a free TCP port");
    ::close(s);
    return ntohs(a.sin_port);
  }

  void wait_ready() {
    std::string got;
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (got.find("ready\n") == std::string::npos) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
      pollfd p{out_, POLLIN, 0};
      if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
        stop();
        throw std::runtime_error("fake_xend did not say ready within 10 s");
      }
      char buf[256];
      const auto n = ::read(out_, buf, sizeof buf);
      if (n <= 0) {
        stop();
        throw std::runtime_error("fake_xend ended before it was ready (see its stderr)");
      }
      got.append(buf, static_cast<std::size_t>(n));
    }
  }

private:
  std::string dir_;
  unsigned short port_ = 0, relocation_port_ = 0;
  int pid_ = -1;
  int out_ = -1;
};

}  // namespace covirt::test_support

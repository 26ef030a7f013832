// The QMP client against a real QEMU 7.2 (TCG, diskless) and against a fake QMP server
// that misbehaves on purpose. Every wait is bounded.
#include <catch2/catch.hpp>

#include "common/run.hpp"
#include "common/prelude.hpp"

#include "../../src/qemu/qmp_codec.hpp"

#include <covirt/qemu/qmp.hpp>
#include <covirt/timeout.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/json.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <algorithm>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace json = boost::json;
using namespace std::string_view_literals;
using covirt::qemu::qmp;


bool is_str(const json::value& v, std::string_view s) { return v.is_string() && v.get_string() == s; }
json::object obj(std::string_view text) { return json::parse(text).as_object(); }
bool contains(std::string_view hay, std::string_view needle) { return hay.find(needle) != std::string_view::npos; }

// A probe: whether a unix socket accepts connections yet (QEMU then serves the next client).
bool accepts(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

// ---- a QEMU process for one test: started in a temp dir, killed (SIGKILL + waitpid) at the end
struct qemu_process {
  std::string dir, sock;
  pid_t pid = -1;

  explicit qemu_process(std::vector<std::string> machine = {"-machine", "none"}) {
    char tmpl[] = "/tmp/covirt-qmp-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    dir = tmpl;
    sock = dir + "/qmp.sock";
    std::vector<std::string> args{"qemu-system-x86_64"};
    args.insert(args.end(), machine.begin(), machine.end());
    for (const char* a : {"-accel", "tcg", "-nodefaults", "-display", "none", "-S", "-name", "guest=qmptest", "-qmp"})
      args.emplace_back(a);
    args.push_back("unix:" + sock + ",server=on,wait=off");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::string log = dir + "/qemu.log";
    pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) { ::dup2(fd, 1); ::dup2(fd, 2); }
      ::execvp(argv[0], argv.data());
      ::_exit(127);
    }
    // Bounded wait for the listening socket.
    auto limit = clock_type::now() + 10s;
    for (;;) {
      struct stat st {};
      // The file exists from bind(), the socket accepts from listen(): wait for both.
      if (::stat(sock.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) && accepts(sock)) break;
      int status = 0;
      if (::waitpid(pid, &status, WNOHANG) == pid) {
        pid = -1;
        FAIL("qemu-system-x86_64 exited before creating its QMP socket; see " << log);
      }
      if (clock_type::now() > limit) FAIL("QEMU's QMP socket did not appear within 10 s");
      std::this_thread::sleep_for(5ms);
    }
  }
  qemu_process(const qemu_process&) = delete;
  ~qemu_process() {
    kill_now();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  void kill_now() {
    if (pid <= 0) return;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    pid = -1;
  }
  void stop() { ::kill(pid, SIGSTOP); }
  void cont() { ::kill(pid, SIGCONT); }
  // Bounded wait for QEMU to exit on its own.
  bool exits_within(std::chrono::milliseconds d) {
    auto limit = clock_type::now() + d;
    while (clock_type::now() < limit) {
      if (::waitpid(pid, nullptr, WNOHANG) == pid) {
        pid = -1;
        return true;
      }
      std::this_thread::sleep_for(5ms);
    }
    return false;
  }
};

// Connects, or fails the test with the message.
asio::awaitable<void> connect(qmp& q, const std::string& path) {
  diagnostics diag;
  covirt::op_timeout deadline{co_await asio::this_coro::executor, 10s};
  auto [ec] = co_await q.async_connect(path, diag, asio::as_tuple(deadline.bind(asio::use_awaitable)));
  INFO(ec.message() << ": " << diag.message());
  REQUIRE(!ec);
}

asio::awaitable<std::tuple<error_code, covirt::qemu::qmp_event>> next_event_within(qmp& q, clock_type::duration d) {
  covirt::op_timeout deadline{co_await asio::this_coro::executor, d};
  auto [ec, ev] = co_await q.async_next_event(asio::as_tuple(deadline.bind(asio::use_awaitable)));
  co_return std::tuple{deadline.translate(ec), std::move(ev)};
}

// Many calls at once: each records its outcome; the last one wakes the test.
struct fanout {
  int launched = 0, done = 0, wrong = 0;
  std::vector<error_code> errors;
  std::vector<std::string> messages;
  asio::steady_timer all_done;
  explicit fanout(asio::any_io_executor ex) : all_done(ex, 30s) {}
};

asio::awaitable<void> one_call(qmp& q, int i, fanout& f) {
  diagnostics d;
  bool name = i % 2 == 1;
  auto [ec, v] = co_await q.async_execute(name ? "query-name" : "query-status", d, tuple);
  f.errors.push_back(ec);
  f.messages.emplace_back(d.message());
  if (!ec) {
    const json::object* o = v.if_object();
    bool right = o && (name ? (o->contains("name") && is_str(o->at("name"), "qmptest"sv))
                            : (o->contains("status") && !o->contains("name")));
    if (!right) ++f.wrong;
  }
  if (++f.done == f.launched) f.all_done.cancel();
}

asio::awaitable<void> wait_all(fanout& f) {
  if (f.done == f.launched) co_return;  // the timer's cancel() came before anyone waited
  co_await f.all_done.async_wait(tuple);
}

}  // namespace

// ---------------------------------------------------------------- the codec, sans-io

TEST_CASE("qmp codec: framing, kinds, cap", "[qmp][codec]") {
  using namespace covirt::qemu::detail;
  qmp_codec c(1024);
  qmp_message m;
  std::string why;
  c.feed(R"({"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": ""}, "capabilities": ["oob"]}})");
  REQUIRE(c.next(m, why) == qmp_codec::status::need_more);
  c.feed("\r\n\r\n{\"return\": {}, \"id\": 7}\r\n{\"event\": \"STOP\", \"timestamp\": {\"seconds\": 1, \"microseconds\": 2}}\r\n");
  c.feed(R"({"error": {"class": "GenericError", "desc": "x"}})" "\r\n" R"({"return": 1, "id": "str"})" "\r\n");
  REQUIRE(c.next(m, why) == qmp_codec::status::message);
  CHECK(m.kind == qmp_kind::greeting);
  REQUIRE(c.next(m, why) == qmp_codec::status::message);
  CHECK(m.kind == qmp_kind::reply);
  CHECK(m.id == 7u);
  REQUIRE(c.next(m, why) == qmp_codec::status::message);
  CHECK(m.kind == qmp_kind::event);
  REQUIRE(c.next(m, why) == qmp_codec::status::message);
  CHECK(m.kind == qmp_kind::error);
  CHECK(!m.has_id);
  REQUIRE(c.next(m, why) == qmp_codec::status::message);
  CHECK(m.has_id);
  CHECK(!m.id);
  REQUIRE(c.next(m, why) == qmp_codec::status::need_more);

  qmp_codec bad(1024);
  bad.feed("[1]\r\n");
  REQUIRE(bad.next(m, why) == qmp_codec::status::error);
  CHECK(contains(why, "not a JSON object"));
  qmp_codec shape(1024);
  shape.feed("{\"hello\": 1}\n");
  REQUIRE(shape.next(m, why) == qmp_codec::status::error);
  qmp_codec big(1024);
  big.feed(std::string(5000, 'x'));  // no newline: buffering stops at the cap
  CHECK(big.buffered() <= 1025);
  REQUIRE(big.next(m, why) == qmp_codec::status::error);
  CHECK(contains(why, "exceeds the limit of 1024 bytes"));
}

// ---------------------------------------------------------------- real QEMU

TEST_CASE("qmp: connect, greeting, query-status, errors", "[qmp]") {
  qemu_process qemu;
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    qmp q(ex);
    co_await connect(q, qemu.sock);
    CHECK(q.is_open());
    CHECK(q.greeting().version.major == 7);
    CHECK(q.greeting().version.minor == 2);
    CHECK(!q.greeting().version.package.empty());
    REQUIRE(q.greeting().capabilities.size() == 1);
    CHECK(q.greeting().capabilities[0] == "oob"sv);

    diagnostics diag;
    json::value st = co_await q.async_execute("query-status", diag);
    CHECK(is_str(st.at("status"), "prelaunch"sv));
    CHECK(st.at("running") == false);

    // CommandNotFound: errc::no_support, QEMU's class and text in diag
    auto [ec, v] = co_await q.async_execute("nonexistent", diag, tuple);
    CHECK(ec == errc::no_support);
    CHECK(diag.message() == "QEMU: CommandNotFound: The command nonexistent has not been found"sv);
    CHECK(v.is_null());

    // The throwing form carries the same message
    std::string what;
    try {
      co_await q.async_execute("nonexistent");
    } catch (const covirt::error& e) {
      what = e.message();
      CHECK(e.code() == errc::no_support);
    }
    CHECK(what == "QEMU: CommandNotFound: The command nonexistent has not been found"sv);

    // Bad arguments: GenericError, errc::operation_failed
    auto [ec2, v2] = co_await q.async_execute("query-status", obj(R"({"x": 1})"), diag, tuple);
    CHECK(ec2 == errc::operation_failed);
    CHECK(diag.message() == "QEMU: GenericError: Parameter 'x' is unexpected"sv);

    // Arguments that are right
    auto [ec3, v3] = co_await q.async_execute("qom-get", obj(R"({"path": "/machine", "property": "type"})"),
                                              diag, tuple);
    CHECK(!ec3);
    CHECK(is_str(v3, "none-machine"sv));

    // A second connect on the same object is refused
    auto [ec4] = co_await q.async_connect(qemu.sock, diag, tuple);
    CHECK(ec4 == errc::operation_invalid);
    CHECK(q.is_open());
  });
}

TEST_CASE("qmp: raw passthrough", "[qmp]") {
  qemu_process qemu;
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    qmp q(ex);
    co_await connect(q, qemu.sock);
    diagnostics diag;
    std::string r = co_await q.async_execute_raw(R"({"execute":"query-status","id":"mine-1"})", diag);
    json::value v = json::parse(r);
    CHECK(is_str(v.at("id"), "mine-1"sv));
    CHECK(is_str(v.at("return").at("status"), "prelaunch"sv));

    r = co_await q.async_execute_raw(R"(  {"execute": "query-name"} )", diag);
    v = json::parse(r);
    CHECK(!v.as_object().contains("id"));
    CHECK(is_str(v.at("return").at("name"), "qmptest"sv));

    // A QMP error comes back as text, not as an error_code (virsh qemu-monitor-command prints it)
    r = co_await q.async_execute_raw(R"({"execute":"nonexistent","id":{"a":[1,2]}})", diag);
    v = json::parse(r);
    CHECK(is_str(v.at("error").at("class"), "CommandNotFound"sv));
    CHECK(v.at("id") == json::parse(R"({"a":[1,2]})"));

    r = co_await q.async_execute_raw(R"({"execute":"qom-get","arguments":{"path":"/machine","property":"type"}})", diag);
    CHECK(is_str(json::parse(r).at("return"), "none-machine"sv));

    for (const char* bad : {"{\"execute\":", "[1,2]", "{\"arguments\":{}}", "", "{\"execute\": 5}"}) {
      auto [ec, text] = co_await q.async_execute_raw(bad, diag, tuple);
      INFO(bad);
      CHECK(ec == errc::invalid_arg);
      CHECK(contains(diag.message(), "invalid QMP command"));
      CHECK(text.empty());
    }
    // still fine afterwards
    json::value st = co_await q.async_execute("query-status", diag);
    CHECK(is_str(st.at("status"), "prelaunch"sv));
  });
}

TEST_CASE("qmp: stop/cont with STOP and RESUME events", "[qmp]") {
  qemu_process qemu({"-machine", "q35", "-m", "64"});
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    qmp q(ex);
    co_await connect(q, qemu.sock);
    diagnostics diag;
    co_await q.async_execute("cont", diag);  // RESUME comes before this return
    json::value st = co_await q.async_execute("query-status", diag);
    CHECK(is_str(st.at("status"), "running"sv));
    auto [ec, ev] = co_await next_event_within(q, 5s);
    REQUIRE(!ec);
    CHECK(ev.name == "RESUME"sv);
    CHECK(ev.seconds > 1600000000);
    CHECK(ev.data.empty());

    co_await q.async_execute("stop", diag);
    auto [ec2, ev2] = co_await next_event_within(q, 5s);
    REQUIRE(!ec2);
    CHECK(ev2.name == "STOP"sv);
    st = co_await q.async_execute("query-status", diag);
    CHECK(is_str(st.at("status"), "paused"sv));

    // A waiter before the event: it arrives while the command is in flight
    fanout f(ex);
    f.launched = 1;
    asio::co_spawn(ex, one_call(q, 0, f), asio::detached);
    auto [ec3, ev3] = co_await [&]() -> asio::awaitable<std::tuple<error_code, covirt::qemu::qmp_event>> {
      auto ex2 = co_await asio::this_coro::executor;
      asio::co_spawn(ex2, q.async_execute("cont", asio::as_tuple(asio::use_awaitable)), asio::detached);
      co_return co_await next_event_within(q, 5s);
    }();
    REQUIRE(!ec3);
    CHECK(ev3.name == "RESUME"sv);
    co_await wait_all(f);
    CHECK(f.done == 1);

    // Cancelled next_event loses nothing
    asio::steady_timer t(ex, 50ms);
    {
      using namespace asio::experimental::awaitable_operators;
      auto r = co_await (q.async_next_event(tuple) || t.async_wait(tuple));
      CHECK(r.index() == 1);
    }
    co_await q.async_execute("stop", diag);
    auto [ec4, ev4] = co_await next_event_within(q, 5s);
    REQUIRE(!ec4);
    CHECK(ev4.name == "STOP"sv);
    CHECK(q.events_dropped() == 0);
  });
}

TEST_CASE("qmp: 200 commands in flight, replies matched by id", "[qmp]") {
  qemu_process qemu;
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    qmp q(ex);
    co_await connect(q, qemu.sock);
    fanout f(ex);
    f.launched = 200;
    for (int i = 0; i < 200; ++i) asio::co_spawn(ex, one_call(q, i, f), asio::detached);
    co_await asio::post(ex, asio::use_awaitable);  // every coroutine has sent its command
    std::size_t in_flight = q.pending_commands();
    co_await wait_all(f);
    CHECK(in_flight == 200);
    REQUIRE(f.done == 200);
    CHECK(f.wrong == 0);
    for (auto& e : f.errors) CHECK(!e);
    CHECK(q.pending_commands() == 0);
    CHECK(q.ignored_messages() == 0);
  });
}

TEST_CASE("qmp: per-command timeout, the late reply is dropped", "[qmp]") {
  qemu_process qemu;
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    qmp q(ex);
    co_await connect(q, qemu.sock);
    diagnostics diag;
    qemu.stop();  // QEMU cannot answer now
    auto t0 = clock_type::now();
    covirt::op_timeout deadline{ex, 300ms};
    auto [ec, v] = co_await q.async_execute("query-status", diag, asio::as_tuple(deadline.bind(asio::use_awaitable)));
    auto took = clock_type::now() - t0;
    qemu.cont();
    CHECK(ec == asio::error::operation_aborted);
    CHECK(deadline.translate(ec) == errc::operation_timeout);
    CHECK(took < 2s);
    CHECK(contains(diag.message(), "cancelled"));
    CHECK(q.pending_commands() == 0);
    // QEMU answers the old command first: that reply is dropped, this one is ours
    json::value st = co_await q.async_execute("query-status", diag);
    CHECK(is_str(st.at("status"), "prelaunch"sv));
    CHECK(q.ignored_messages() == 1);
    CHECK(q.is_open());
  });
}

TEST_CASE("qmp: cancellation with || and a timer", "[qmp]") {
  qemu_process qemu;
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    using namespace asio::experimental::awaitable_operators;
    qmp q(ex);
    co_await connect(q, qemu.sock);
    diagnostics diag;
    qemu.stop();
    asio::steady_timer t(ex, 200ms);
    auto r = co_await (q.async_execute("query-status", diag, tuple) || t.async_wait(tuple));
    CHECK(r.index() == 1);
    CHECK(q.pending_commands() == 0);
    // the throwing form, cancelled the same way
    asio::steady_timer t2(ex, 100ms);
    auto r2 = co_await (q.async_execute("query-name") || t2.async_wait(asio::use_awaitable));
    CHECK(r2.index() == 1);
    CHECK(q.pending_commands() == 0);
    qemu.cont();
    json::value n = co_await q.async_execute("query-name", diag);
    CHECK(is_str(n.at("name"), "qmptest"sv));
    CHECK(q.ignored_messages() == 2);
  });
}

// A command's own limit: the client's one timer, re-armed only for an earlier deadline.
namespace {
struct timed_outcome {
  error_code ec;
  std::string message;
  clock_type::duration took{};
  int order = 0;  // 1 for the first to complete
};
struct timed_calls {
  int launched = 0, done = 0;
  int wake_at = -1;  // wait_for(k): `wake` is cancelled when the k-th call completes
  asio::steady_timer wake;
  explicit timed_calls(asio::any_io_executor ex) : wake(ex) {}
};
asio::awaitable<void> limited_call(qmp& q, clock_type::duration limit, timed_outcome& out, timed_calls& c) {
  diagnostics d;
  auto t0 = clock_type::now();
  auto [ec, v] = co_await q.async_execute("query-status", {}, limit, d, tuple);
  out.took = clock_type::now() - t0;
  out.ec = ec;
  out.message = d.message();
  out.order = ++c.done;
  if (c.done == c.wake_at) c.wake.cancel();
}
// Until k calls have completed (bounded: 30 s).
asio::awaitable<void> wait_for(timed_calls& c, int k) {
  c.wake_at = k;
  if (c.done >= k) co_return;
  c.wake.expires_after(30s);
  co_await c.wake.async_wait(tuple);
}
asio::awaitable<void> wait_all(timed_calls& c) { co_await wait_for(c, c.launched); }
}  // namespace

TEST_CASE("qmp: a command's limit: never answered, it fails with operation_timeout", "[qmp]") {
  qemu_process qemu;
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    qmp q(ex);
    co_await connect(q, qemu.sock);
    diagnostics diag;
    // answered well within its limit: the timer, armed for it, must not touch what comes next
    json::value st0 = co_await q.async_execute("query-status", {}, 300ms, diag);
    CHECK(is_str(st0.at("status"), "prelaunch"sv));
    qemu.stop();  // QEMU cannot answer now
    auto t0 = clock_type::now();
    auto [ec, v] = co_await q.async_execute("query-status", {}, 700ms, diag, tuple);
    auto took = clock_type::now() - t0;
    qemu.cont();
    CHECK(ec == errc::operation_timeout);
    INFO(diag.message());
    CHECK(contains(diag.message(), "QEMU did not answer QMP command 'query-status' within 700 ms"));
    CHECK(took >= 700ms);  // not at the first command's deadline, which the timer waited for
    CHECK(took < 3s);
    CHECK(q.pending_commands() == 0);
    // QEMU answers the old command first: that reply is dropped, this one is ours
    json::value st = co_await q.async_execute("query-name", {}, 5s, diag);
    CHECK(is_str(st.at("name"), "qmptest"sv));
    CHECK(q.ignored_messages() == 1);
    CHECK(q.is_open());
    // the throwing form says the same
    qemu.stop();
    bool threw = false;
    try {
      (void)co_await q.async_execute("query-status", {}, 100ms, diag);
    } catch (const covirt::error& e) {
      threw = true;
      CHECK(e.code() == errc::operation_timeout);
    }
    CHECK(threw);
    qemu.cont();
  });
}

TEST_CASE("qmp: two commands in flight with different limits time out each at its own", "[qmp]") {
  qemu_process qemu;
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    qmp q(ex);
    co_await connect(q, qemu.sock);
    for (bool later_first : {true, false}) {
      INFO((later_first ? "the later deadline sent first" : "the earlier deadline sent first"));
      qemu.stop();
      timed_calls c(ex);
      c.launched = 3;
      timed_outcome longer, shorter, none;
      auto t0 = clock_type::now();
      if (later_first) {
        asio::co_spawn(ex, limited_call(q, 900ms, longer, c), asio::detached);
        asio::co_spawn(ex, limited_call(q, 300ms, shorter, c), asio::detached);  // earlier: the timer is re-armed
      } else {
        asio::co_spawn(ex, limited_call(q, 300ms, shorter, c), asio::detached);
        asio::co_spawn(ex, limited_call(q, 900ms, longer, c), asio::detached);  // later: the timer waits for the first
      }
      asio::co_spawn(ex, limited_call(q, covirt::qemu::qmp_no_limit, none, c), asio::detached);
      co_await asio::post(ex, asio::use_awaitable);
      CHECK(q.pending_commands() == 3);
      co_await wait_for(c, 2);  // both limits passed; then QEMU may answer
      CHECK(clock_type::now() - t0 < 10s);
      qemu.cont();
      co_await wait_all(c);
      REQUIRE(c.done == 3);
      CHECK(shorter.ec == errc::operation_timeout);
      CHECK(longer.ec == errc::operation_timeout);
      CHECK(shorter.order == 1);
      CHECK(longer.order == 2);
      CHECK(shorter.took >= 300ms);
      CHECK(shorter.took < 900ms);
      CHECK(longer.took >= 900ms);
      CHECK(longer.took < 5s);
      CHECK(!none.ec);  // without a limit: answered once QEMU runs again
      CHECK(contains(shorter.message, "within 300 ms"));
      CHECK(contains(longer.message, "within 900 ms"));
      CHECK(q.pending_commands() == 0);
    }
    diagnostics diag;
    json::value n = co_await q.async_execute("query-name", {}, 5s, diag);
    CHECK(is_str(n.at("name"), "qmptest"sv));
  });
}

TEST_CASE("qmp: a cancelled command with a limit: aborted, not timed out; the monitor goes on", "[qmp]") {
  qemu_process qemu;
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    using namespace asio::experimental::awaitable_operators;
    qmp q(ex);
    co_await connect(q, qemu.sock);
    diagnostics diag;
    qemu.stop();
    asio::steady_timer t(ex, 100ms);
    auto r = co_await (q.async_execute("query-status", {}, 400ms, diag, tuple) || t.async_wait(tuple));
    CHECK(r.index() == 1);
    CHECK(contains(diag.message(), "cancelled"));
    CHECK(q.pending_commands() == 0);
    // a command with a later limit, sent while the timer still waits for the cancelled one's
    // deadline: that deadline passing must not end it. The witness times out after it.
    timed_calls c(ex);
    c.launched = 2;
    timed_outcome out, witness;
    asio::co_spawn(ex, limited_call(q, 2500ms, out, c), asio::detached);
    asio::co_spawn(ex, limited_call(q, 600ms, witness, c), asio::detached);
    co_await wait_for(c, 1);
    CHECK(witness.order == 1);
    CHECK(witness.ec == errc::operation_timeout);
    CHECK(witness.took >= 600ms);
    CHECK(c.done == 1);  // past the cancelled command's deadline (400 ms) and the witness's: still waiting
    qemu.cont();
    co_await wait_all(c);
    REQUIRE(c.done == 2);
    INFO(out.ec.message() << ": " << out.message);
    CHECK(!out.ec);
    json::value n = co_await q.async_execute("query-name", {}, 5s, diag);
    CHECK(is_str(n.at("name"), "qmptest"sv));
    // the late replies of the cancelled command and the witness (read before this last reply)
    CHECK(q.ignored_messages() == 2);
  });
}

TEST_CASE("qmp: QEMU killed with commands pending", "[qmp]") {
  qemu_process qemu({"-machine", "q35", "-m", "64"});
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    qmp q(ex);
    co_await connect(q, qemu.sock);
    qemu.stop();
    fanout f(ex);
    f.launched = 20;
    for (int i = 0; i < 20; ++i) asio::co_spawn(ex, one_call(q, i, f), asio::detached);
    co_await asio::post(ex, asio::use_awaitable);
    CHECK(q.pending_commands() == 20);
    auto t0 = clock_type::now();
    qemu.kill_now();
    auto [eec, ev] = co_await next_event_within(q, 5s);
    co_await wait_all(f);
    auto took = clock_type::now() - t0;
    CHECK(eec == asio::error::eof);
    REQUIRE(f.done == 20);
    CHECK(took < 2s);
    for (std::size_t i = 0; i < f.errors.size(); ++i) {
      CHECK(f.errors[i] == errc::operation_failed);
      INFO(f.messages[i]);
      CHECK(contains(f.messages[i], "QMP connection to '" + qemu.sock + "' closed by QEMU"));
    }
    CHECK(!q.is_open());
    CHECK(q.close_code() == errc::operation_failed);
    // later commands fail at once with the same words
    diagnostics diag;
    auto [ec, v] = co_await q.async_execute("query-status", diag, tuple);
    CHECK(ec == errc::operation_failed);
    CHECK(contains(diag.message(), "closed by QEMU"));
  });
}

TEST_CASE("qmp: quit ends the connection cleanly", "[qmp]") {
  qemu_process qemu;
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    qmp q(ex);
    co_await connect(q, qemu.sock);
    diagnostics diag;
    auto [ec, v] = co_await q.async_execute("quit", diag, tuple);
    // QEMU may exit before its reply is read; either way the call ends
    CHECK((!ec || ec == errc::operation_failed));
    auto [ec1, ev1] = co_await next_event_within(q, 5s);
    CHECK(!ec1);
    CHECK(ev1.name == "SHUTDOWN"sv);
    CHECK(is_str(ev1.data.at("reason"), "host-qmp-quit"sv));
    auto [ec2, ev2] = co_await next_event_within(q, 5s);
    CHECK(ec2 == asio::error::eof);
    CHECK(!q.is_open());
    CHECK(contains(q.close_message(), "closed by QEMU"));
  });
  CHECK(qemu.exits_within(5000ms));
}

TEST_CASE("qmp: close() and destruction with commands pending", "[qmp]") {
  qemu_process qemu;
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    {
      qmp q(ex);
      co_await connect(q, qemu.sock);
      qemu.stop();
      fanout f(ex);
      f.launched = 3;
      for (int i = 0; i < 3; ++i) asio::co_spawn(ex, one_call(q, i, f), asio::detached);
      co_await asio::post(ex, asio::use_awaitable);
      q.close();
      q.close();  // idempotent
      co_await wait_all(f);
      REQUIRE(f.done == 3);
      for (std::size_t i = 0; i < 3; ++i) {
        CHECK(f.errors[i] == errc::operation_failed);
        CHECK(f.messages[i] == "QMP connection to '" + qemu.sock + "' closed");
      }
      auto [eec, ev] = co_await next_event_within(q, 1s);
      CHECK(eec == asio::error::eof);
    }
    qemu.cont();
    // QEMU takes the next client once the first has gone
    fanout f(ex);
    f.launched = 2;
    {
      auto q = std::make_unique<qmp>(ex);
      co_await connect(*q, qemu.sock);
      qemu.stop();
      for (int i = 0; i < 2; ++i) asio::co_spawn(ex, one_call(*q, i, f), asio::detached);
      co_await asio::post(ex, asio::use_awaitable);
    }  // destroyed with two commands pending
    co_await wait_all(f);
    REQUIRE(f.done == 2);
    for (auto& e : f.errors) CHECK(e == errc::operation_failed);
    qemu.cont();
  });
}

TEST_CASE("qmp: connect failures", "[qmp]") {
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    diagnostics diag;
    {
      qmp q(ex);
      auto [ec] = co_await q.async_connect("/nonexistent/covirt/qmp.sock", diag, tuple);
      CHECK(ec == errc::operation_failed);
      CHECK(contains(diag.message(), "cannot connect to QMP socket '/nonexistent/covirt/qmp.sock'"));
    }
    {
      qmp q(ex);
      auto [ec] = co_await q.async_connect(std::string(200, 'x'), diag, tuple);
      CHECK(ec == errc::invalid_arg);
    }
    {
      qmp q(ex);  // commands before connect
      auto [ec, v] = co_await q.async_execute("query-status", diag, tuple);
      CHECK(ec == errc::operation_invalid);
    }
  });
}

// ---------------------------------------------------------------- a fake QMP server that misbehaves

namespace {

const std::string greeting_line =
    R"({"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "fake"}, "capabilities": ["oob"]}})"
    "\r\n";

using local_socket = asio::local::stream_protocol::socket;

struct fake_qmp {
  std::string dir, path;
  asio::local::stream_protocol::acceptor acceptor;
  std::string inbuf;
  explicit fake_qmp(asio::any_io_executor ex) : acceptor(ex) {
    char tmpl[] = "/tmp/covirt-fakeqmp-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    dir = tmpl;
    path = dir + "/qmp.sock";
    acceptor = asio::local::stream_protocol::acceptor(ex, asio::local::stream_protocol::endpoint(path));
  }
  ~fake_qmp() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  // The next command the client sent, parsed.
  asio::awaitable<json::object> read_command(local_socket& s) {
    auto [ec, n] = co_await asio::async_read_until(s, asio::dynamic_buffer(inbuf), "\n", tuple);
    if (ec) co_return json::object{};
    std::string line = inbuf.substr(0, n);
    inbuf.erase(0, n);
    co_return json::parse(line).as_object();
  }
  static asio::awaitable<void> send(local_socket& s, std::string text) {
    co_await asio::async_write(s, asio::buffer(text), tuple);
  }
  // `, "id": ID` when the command carried one (QEMU echoes it), else nothing.
  static std::string echo_id(const json::object& cmd) {
    auto* id = cmd.if_contains("id");
    return id ? ", \"id\": " + json::serialize(*id) : std::string();
  }
  // Greeting and a successful negotiation.
  asio::awaitable<void> handshake(local_socket& s) {
    co_await send(s, greeting_line);
    json::object caps = co_await read_command(s);
    REQUIRE(is_str(caps.at("execute"), "qmp_capabilities"sv));
    co_await send(s, R"({"return": {})" + echo_id(caps) + "}\r\n");
  }
};

// Runs `script` on the one connection the fake server accepts.
template <class Script>
asio::awaitable<void> serve(fake_qmp& srv, Script script) {
  auto [ec, s] = co_await srv.acceptor.async_accept(tuple);
  if (ec) co_return;
  co_await script(s);
  // keep the socket open until the client is done with it
  std::string sink(4096, '\0');
  for (;;) {
    auto [rec, n] = co_await s.async_read_some(asio::buffer(sink), tuple);
    if (rec) break;
  }
}

}  // namespace

TEST_CASE("qmp: fake server, bad greetings", "[qmp][fake]") {
  struct bad_case {
    std::string bytes;
    errc code;
    std::string words;
  };
  std::vector<bad_case> cases{
      {"hello there\r\n", errc::rpc, "malformed QMP message from"},
      {"[1, 2, 3]\r\n", errc::rpc, "not a JSON object"},
      {"{\"return\": {}}\r\n", errc::rpc, "is not a QMP socket: expected a greeting"},
      {"{\"QMP\": {\"version\"", errc::operation_failed, "closed before the greeting"},
      {"", errc::operation_failed, "closed before the greeting"},
  };
  for (auto& c : cases) {
    INFO(c.bytes);
    run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
      fake_qmp srv(ex);
      asio::co_spawn(ex, [](fake_qmp& srv, std::string bytes) -> asio::awaitable<void> {
        auto [ec, s] = co_await srv.acceptor.async_accept(tuple);
        if (ec) co_return;
        co_await fake_qmp::send(s, bytes);
        s.close();  // then hang up
      }(srv, c.bytes), asio::detached);
      qmp q(ex);
      diagnostics diag;
      auto [ec] = co_await q.async_connect(srv.path, diag, tuple);
      CHECK(ec == c.code);
      INFO(diag.message());
      CHECK(contains(diag.message(), c.words));
      CHECK(!q.is_open());
    });
  }
}

TEST_CASE("qmp: fake server, negotiation refused", "[qmp][fake]") {
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    fake_qmp srv(ex);
    asio::co_spawn(ex, serve(srv, [&](local_socket& s) -> asio::awaitable<void> {
      co_await fake_qmp::send(s, greeting_line);
      json::object caps = co_await srv.read_command(s);
      co_await fake_qmp::send(s, R"({"error": {"class": "GenericError", "desc": "nope"})" + fake_qmp::echo_id(caps) +
                                     "}\r\n");
    }), asio::detached);
    qmp q(ex);
    diagnostics diag;
    auto [ec] = co_await q.async_connect(srv.path, diag, tuple);
    CHECK(ec == errc::operation_failed);
    CHECK(contains(diag.message(), "QEMU: GenericError: nope"));
    CHECK(!q.is_open());
  });
}

TEST_CASE("qmp: fake server, a peer that never greets is bounded by op_timeout", "[qmp][fake]") {
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    fake_qmp srv(ex);
    asio::co_spawn(ex, serve(srv, [](local_socket&) -> asio::awaitable<void> { co_return; }), asio::detached);
    qmp q(ex);
    diagnostics diag;
    covirt::op_timeout deadline{ex, 200ms};
    auto [ec] = co_await q.async_connect(srv.path, diag, asio::as_tuple(deadline.bind(asio::use_awaitable)));
    CHECK(deadline.translate(ec) == errc::operation_timeout);
    CHECK(!q.is_open());
    srv.acceptor.close();
  });
}

TEST_CASE("qmp: fake server, stray replies, id-less errors and events are harmless", "[qmp][fake]") {
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    fake_qmp srv(ex);
    asio::co_spawn(ex, serve(srv, [&](local_socket& s) -> asio::awaitable<void> {
      co_await srv.handshake(s);
      json::object cmd = co_await srv.read_command(s);
      std::string id = json::serialize(cmd.at("id"));
      co_await fake_qmp::send(s,
          "{\"return\": {\"stray\": 1}, \"id\": 999999}\r\n"
          "{\"return\": {}, \"id\": \"not-ours\"}\r\n"
          "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, expecting value\"}}\r\n"
          "{\"event\": \"FAKE\", \"data\": {\"n\": 1}, \"timestamp\": {\"seconds\": 5, \"microseconds\": 6}}\r\n"
          "\r\n"
          "{\"id\": " + id + ", \"return\": {\"ok\": true}}\r\n");
    }), asio::detached);
    // Every command with an id: an error without id is then never a reply (see the next test
    // for the default, where the one command sent without id takes it).
    qmp q(ex, covirt::qemu::qmp_options{.max_message_size = 1 << 20, .event_capacity = 16, .always_send_ids = true});
    co_await connect(q, srv.path);
    CHECK(q.greeting().version.package == "fake"sv);
    diagnostics diag;
    json::value v = co_await q.async_execute("query-anything", obj(R"({"a": "b"})"), diag);
    CHECK(v.at("ok") == true);
    CHECK(q.ignored_messages() == 3);
    auto [ec, ev] = co_await next_event_within(q, 1s);
    REQUIRE(!ec);
    CHECK(ev.name == "FAKE"sv);
    CHECK(ev.data.at("n") == 1);
    CHECK(ev.seconds == 5);
    CHECK(ev.microseconds == 6);
    CHECK(q.is_open());
    q.close();
    srv.acceptor.close();
  });
}

TEST_CASE("qmp: fake server, the command sent alone goes without id and takes the next reply without id",
          "[qmp][fake]") {
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    fake_qmp srv(ex);
    std::vector<json::object> seen;
    std::string raw_bytes;
    asio::co_spawn(ex, serve(srv, [&](local_socket& s) -> asio::awaitable<void> {
      co_await srv.handshake(s);
      // 1: alone, so without id; its reply has none either
      json::object a = co_await srv.read_command(s);
      seen.push_back(a);
      co_await fake_qmp::send(s, "{\"return\": {\"n\": 1}}\r\n");
      // 2 and 3 at once: the first without id, the second with one; answered in order, and an
      // error without id takes the one without id
      json::object b = co_await srv.read_command(s);
      json::object c = co_await srv.read_command(s);
      seen.push_back(b);
      seen.push_back(c);
      co_await fake_qmp::send(s, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"two\"}}\r\n"
                                 "{\"return\": {\"n\": 3}" + fake_qmp::echo_id(c) + "}\r\n");
      // 4: raw passthrough always carries an id; a stray error without id meanwhile (nothing
      // without id is outstanding) is ignored
      json::object d = co_await srv.read_command(s);
      seen.push_back(d);
      co_await fake_qmp::send(s, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"stray\"}}\r\n"
                                 "{\"return\": {\"n\": 4}" + fake_qmp::echo_id(d) + "}\r\n");
      // 5: alone again, without id
      json::object e = co_await srv.read_command(s);
      seen.push_back(e);
      co_await fake_qmp::send(s, "{\"return\": {\"n\": 5}" + fake_qmp::echo_id(e) + "}\r\n");
    }), asio::detached);
    qmp q(ex);
    co_await connect(q, srv.path);
    diagnostics diag;
    json::value v1 = co_await q.async_execute("one", diag);
    CHECK(v1.at("n") == 1);
    timed_calls c(ex);
    c.launched = 2;
    timed_outcome o2, o3;
    asio::co_spawn(ex, limited_call(q, 5s, o2, c), asio::detached);
    asio::co_spawn(ex, limited_call(q, 5s, o3, c), asio::detached);
    co_await wait_all(c);
    REQUIRE(c.done == 2);
    CHECK(o2.ec == errc::operation_failed);
    CHECK(o2.message == "QEMU: GenericError: two");
    CHECK(!o3.ec);
    std::string r4 = co_await q.async_execute_raw(R"({"execute":"four"})", diag);
    CHECK(contains(r4, "\"n\""));
    CHECK(!contains(r4, "\"id\""));  // covirt's own id is not shown
    CHECK(q.ignored_messages() == 1);  // the stray error
    json::value v5 = co_await q.async_execute("query-status", {}, 5s, diag);
    CHECK(v5.at("n") == 5);
    CHECK(q.ignored_messages() == 1);
    REQUIRE(seen.size() == 5);
    CHECK(!seen[0].contains("id"));
    CHECK(!seen[1].contains("id"));
    CHECK(seen[2].contains("id"));
    CHECK(seen[3].contains("id"));
    CHECK(!seen[4].contains("id"));
    q.close();
    srv.acceptor.close();
  });
}

TEST_CASE("qmp: fake server, corruption fails the connection with errc::rpc", "[qmp][fake]") {
  struct bad_case {
    std::string bytes;
    std::string words;
  };
  std::vector<bad_case> cases{
      {"this is not json\r\n", "not JSON"},
      {"42\r\n", "not a JSON object"},
      {"{\"neither\": 1}\r\n", "neither a greeting"},
      {greeting_line, "a second greeting"},
  };
  for (auto& c : cases) {
    INFO(c.bytes);
    run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
      fake_qmp srv(ex);
      asio::co_spawn(ex, serve(srv, [&](local_socket& s) -> asio::awaitable<void> {
        co_await srv.handshake(s);
        co_await srv.read_command(s);
        co_await fake_qmp::send(s, c.bytes);
      }), asio::detached);
      qmp q(ex);
      co_await connect(q, srv.path);
      diagnostics diag;
      auto [ec, v] = co_await q.async_execute("query-status", diag, tuple);
      CHECK(ec == errc::rpc);
      INFO(diag.message());
      CHECK(contains(diag.message(), "malformed QMP message from '" + srv.path + "'"));
      CHECK(contains(diag.message(), c.words));
      auto [eec, ev] = co_await next_event_within(q, 1s);
      CHECK(eec == asio::error::eof);
      CHECK(!q.is_open());
      CHECK(q.close_code() == errc::rpc);
      srv.acceptor.close();
    });
  }
}

TEST_CASE("qmp: fake server, a message beyond the cap", "[qmp][fake]") {
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    fake_qmp srv(ex);
    asio::co_spawn(ex, serve(srv, [&](local_socket& s) -> asio::awaitable<void> {
      co_await srv.handshake(s);
      co_await srv.read_command(s);
      std::string huge = "{\"return\": \"" + std::string(std::size_t(16) << 20, 'x');  // 16 MiB, no newline
      co_await fake_qmp::send(s, std::move(huge));  // ends with EPIPE when the client gives up
    }), asio::detached);
    qmp q(ex, covirt::qemu::qmp_options{.max_message_size = 1 << 20});
    co_await connect(q, srv.path);
    diagnostics diag;
    auto [ec, v] = co_await q.async_execute("query-status", diag, tuple);
    CHECK(ec == errc::rpc);
    CHECK(contains(diag.message(), "exceeds the limit of 1048576 bytes"));
    CHECK(!q.is_open());
    srv.acceptor.close();
  });
}

// ---------------------------------------------------------------- round trip vs a raw blocking client

namespace {

// A plain blocking QMP client: write a command, read until the newline. The baseline.
struct raw_client {
  int fd = -1;
  std::string buf;
  explicit raw_client(const std::string& path) {
    fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    line();  // greeting
    send(R"({"execute":"qmp_capabilities"})" "\r\n");
    line();
  }
  ~raw_client() { ::close(fd); }
  void send(std::string_view s) {
    while (!s.empty()) {
      ssize_t n = ::write(fd, s.data(), s.size());
      REQUIRE(n > 0);
      s.remove_prefix(n);
    }
  }
  std::string line() {
    for (;;) {
      if (auto p = buf.find('\n'); p != std::string::npos) {
        std::string l = buf.substr(0, p + 1);
        buf.erase(0, p + 1);
        return l;
      }
      char tmp[4096];
      ssize_t n = ::read(fd, tmp, sizeof tmp);
      REQUIRE(n > 0);
      buf.append(tmp, n);
    }
  }
};

double raw_us_per_call(const std::string& path, int n) {
  raw_client c(path);
  for (int i = 0; i < 100; ++i) {  // warm-up
    c.send(R"({"execute":"query-status","id":0})" "\r\n");
    c.line();
  }
  auto t0 = clock_type::now();
  for (int i = 0; i < n; ++i) {
    c.send(R"({"execute":"query-status","id":)" + std::to_string(i) + "}\r\n");
    std::string l = c.line();
    REQUIRE(l.find("\"status\"") != std::string::npos);
  }
  return std::chrono::duration<double, std::micro>(clock_type::now() - t0).count() / n;
}

double covirt_us_per_call(const std::string& path, int n) {
  double us = 0;
  run_coro([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    qmp q(ex);
    co_await connect(q, path);
    diagnostics diag;
    for (int i = 0; i < 100; ++i) co_await q.async_execute("query-status", diag, tuple);
    auto t0 = clock_type::now();
    int bad = 0;
    for (int i = 0; i < n; ++i) {
      auto [ec, v] = co_await q.async_execute("query-status", diag, tuple);
      if (ec || !v.is_object()) ++bad;
    }
    us = std::chrono::duration<double, std::micro>(clock_type::now() - t0).count() / n;
    CHECK(bad == 0);
  });
  return us;
}

}  // namespace

TEST_CASE("qmp: query-status round trip, covirt vs a raw blocking client", "[.][qmp][bench]") {
  qemu_process qemu;
  const int n = 2000;
  // Alternate, so a drift of the machine hits both alike; QEMU takes one client at a time.
  std::vector<double> raw, cov;
  for (int round = 0; round < 3; ++round) {
    raw.push_back(raw_us_per_call(qemu.sock, n));
    cov.push_back(covirt_us_per_call(qemu.sock, n));
  }
  auto fmt = [](const std::vector<double>& v) {
    std::ostringstream o;
    for (double x : v) o << (o.tellp() ? " / " : "") << static_cast<int>(x + 0.5);
    return o.str();
  };
  double best_raw = *std::min_element(raw.begin(), raw.end()), best_cov = *std::min_element(cov.begin(), cov.end());
  WARN("QMP query-status round trip, " << n << " sequential calls per round (us/call): raw blocking client "
       << fmt(raw) << ", covirt " << fmt(cov) << "; best covirt/raw = " << best_cov / best_raw);
  CHECK(best_cov > 0);
}

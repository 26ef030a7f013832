// covirt-sh: a virsh-like command-line tool written on covirt::connection (public API only).
//
// One io_context, one connection, every command a coroutine. The script ("cmd args; cmd args",
// one quoted argument or several argv items) is parsed in full first, as virsh does, then run in
// order; a failing command prints virsh's error lines and the next one runs. The exit status is
// the last command's, as virsh's is.
//
// Beyond virsh: `event --background` starts the event listener as a coroutine that prints events
// while the following commands of the same script run, and stops at the end of the script.
// save, restore and migrate show virsh's progress bar ("\rSave: [ 45 %]" on stderr) with --verbose
// and also whenever stderr is a terminal; restore takes --verbose too. `migrate` opens DESTURI as
// a second connection in this process (covirt's drivers run in-process).

#include "shell.hpp"

using namespace covirt_sh;

namespace {

struct options {
  std::string uri;
  bool read_only = false;
  bool quiet = false;
  std::vector<std::vector<std::string>> script;
};

void usage(std::FILE* f) {
  std::fprintf(f,
               "\ncovirt-sh [options]... [<command_string>]\n"
               "covirt-sh [options]... <command> [args...]\n\n"
               "  options:\n"
               "    -c | --connect=URI      hypervisor connection URI\n"
               "    -h | --help             this help\n"
               "    -q | --quiet            quiet mode\n"
               "    -r | --readonly         connect readonly\n"
               "    -v | --version          program version\n\n"
               "  commands (non interactive mode):\n\n");
  for (const auto& g : command_groups()) std::fprintf(f, "%s\n", group_text(g, "").c_str());
  std::fprintf(f,
               "\n  (specify help <group> for details about the commands in the group)\n\n"
               "  (specify help <command> for details about the command)\n\n");
}

awaitable<int> run(options opt) {
  auto ex = co_await asio::this_coro::executor;
  shell sh;
  sh.quiet = opt.quiet;

  std::vector<parsed_command> script;
  std::vector<std::string> errors;
  for (const auto& tokens : opt.script) {
    auto pc = parse_command(tokens, errors);
    if (!pc) break;
    script.push_back(std::move(*pc));
  }
  if (!errors.empty()) {
    for (const auto& e : errors) sh.error(e);
    co_return EXIT_FAILURE;
  }

  try {
    sh.conn = co_await covirt::async_open(ex, opt.uri, opt.read_only ? covirt::open_flags::read_only : 0u);
  } catch (const covirt::error& e) {
    sh.error("failed to connect to the hypervisor");
    sh.error(e.what());
    co_return EXIT_FAILURE;
  }

  bool ok = true;
  for (const auto& pc : script) {
    try {
      sh.doing({});
      ok = co_await pc.cmd->run(sh, pc.a);
    } catch (const covirt::error& e) {
      ok = sh.fail(sh.doing(), e);
    } catch (const std::exception& e) {  // a FILE argument that could not be read
      sh.error(e.what());
      ok = false;
    }
    co_await sh.settle();
    sh.extra("\n");
  }
  co_await sh.stop_listeners();
  try {
    co_await sh.conn.async_close();
  } catch (const covirt::error&) {
  }
  co_return ok ? EXIT_SUCCESS : EXIT_FAILURE;
}

}  // namespace

int main(int argc, char** argv) {
  options opt;
  if (const char* env = std::getenv("COVIRT_DEFAULT_URI"); env && *env) opt.uri = env;
  else opt.uri = "test:///default";

  int i = 1;
  for (; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "-c" || a == "--connect") {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "error: option '%s' requires an argument\n", argv[i]);
        return EXIT_FAILURE;
      }
      opt.uri = argv[++i];
    } else if (a.starts_with("--connect=")) {
      opt.uri = std::string(a.substr(10));
    } else if (a.starts_with("-c") && a.size() > 2) {
      opt.uri = std::string(a.substr(2));
    } else if (a == "-r" || a == "--readonly") {
      opt.read_only = true;
    } else if (a == "-q" || a == "--quiet") {
      opt.quiet = true;
    } else if (a == "-h" || a == "--help") {
      usage(stdout);
      return EXIT_SUCCESS;
    } else if (a == "-v" || a == "--version" || a == "-V") {
      std::printf("%s\n", std::string(covirt_version).c_str());
      return EXIT_SUCCESS;
    } else if (a == "--") {
      ++i;
      break;
    } else if (a.size() > 1 && a.front() == '-') {
      std::fprintf(stderr, "error: unsupported option '%s'. See --help.\n", argv[i]);
      return EXIT_FAILURE;
    } else {
      break;
    }
  }
  if (i >= argc) {
    // virsh would start its interactive shell; covirt-sh runs scripts only.
    usage(stderr);
    return EXIT_FAILURE;
  }
  if (argc - i == 1) {
    opt.script = tokenize(argv[i]);
  } else {
    // argv mode: each item is one token; a lone ";" separates commands (virsh refuses that).
    opt.script.emplace_back();
    for (; i < argc; ++i) {
      if (std::string_view(argv[i]) == ";") opt.script.emplace_back();
      else opt.script.back().push_back(argv[i]);
    }
    std::erase_if(opt.script, [](const auto& v) { return v.empty(); });
  }

  asio::io_context ioc;
  int status = EXIT_FAILURE;
  asio::co_spawn(ioc, run(std::move(opt)), [&](std::exception_ptr e, int rc) {
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        std::fprintf(stderr, "error: %s\n", ex.what());
      }
      rc = EXIT_FAILURE;
    }
    status = rc;
  });
  ioc.run();
  std::fflush(stdout);
  return status;
}

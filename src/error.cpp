#include <covirt/error.hpp>

#include <cctype>
#include <string>

namespace covirt {

namespace {

struct known { int value; const char* symbol; };
constexpr known symbols[] = {
#define COVIRT_X(name, value, symbol) {value, symbol},
    COVIRT_ERRC_LIST(COVIRT_X)
#undef COVIRT_X
};

// libvirt's generic text for the codes a user meets (virErrorMsg); the rest read from the name.
const char* generic_text(int v) noexcept {
  switch (static_cast<errc>(v)) {
    case errc::ok: return "no error";
    case errc::internal_error: return "internal error";
    case errc::no_memory: return "out of memory";
    case errc::no_support: return "this function is not supported by the connection driver";
    case errc::no_connect: return "no connection driver available";
    case errc::invalid_conn: return "invalid connection pointer";
    case errc::invalid_domain: return "invalid domain pointer";
    case errc::invalid_arg: return "invalid argument";
    case errc::operation_failed: return "operation failed";
    case errc::xml_error: return "XML description is invalid or not well formed";
    case errc::dom_exist: return "this domain exists already";
    case errc::operation_denied: return "operation forbidden";
    case errc::open_failed: return "failed to open";
    case errc::read_failed: return "failed to read";
    case errc::parse_failed: return "failed to parse";
    case errc::conf_syntax: return "configuration file syntax error";
    case errc::write_failed: return "failed to write";
    case errc::xml_detail: return "XML error";
    case errc::invalid_network: return "invalid network pointer";
    case errc::network_exist: return "this network exists already";
    case errc::system_error: return "system call error";
    case errc::rpc: return "RPC error";
    case errc::no_domain: return "Domain not found";
    case errc::no_network: return "Network not found";
    case errc::invalid_mac: return "invalid MAC address";
    case errc::auth_failed: return "authentication failed";
    case errc::operation_invalid: return "Requested operation is not valid";
    case errc::config_unsupported: return "unsupported configuration";
    case errc::operation_timeout: return "Timed out during operation";
    case errc::argument_unsupported: return "argument unsupported";
    case errc::operation_aborted: return "operation aborted";
    case errc::operation_unsupported: return "Operation not supported";
    case errc::resource_busy: return "resource busy";
    case errc::access_denied: return "access denied";
    case errc::device_missing: return "device not found";
    case errc::multiple_domains: return "multiple matching domains found";
    default: return nullptr;
  }
}

class category final : public boost::system::error_category {
public:
  const char* name() const noexcept override { return "covirt"; }
  std::string message(int v) const override {
    if (const char* t = generic_text(v)) return t;
    std::string_view sym = errc_symbol(v);
    if (sym.empty()) return "unknown covirt error " + std::to_string(v);
    // VIR_ERR_NO_STORAGE_POOL -> "no storage pool"
    std::string s(sym.substr(sym.find('_', 4) + 1));
    for (char& c : s) c = c == '_' ? ' ' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  }
};

}  // namespace

const boost::system::error_category& error_category() noexcept {
  static const category c;
  return c;
}

std::string_view errc_symbol(int value) noexcept {
  for (const auto& k : symbols)
    if (k.value == value) return k.symbol;
  return {};
}

static std::string full_text(const error_code& ec, const std::string& message) {
  std::string generic = ec.message();
  if (message.empty()) return generic;
  // libvirt's virErrorMsg says "no connection driver available for URI" rather than "...: URI".
  if (ec == errc::no_connect) return generic + " for " + message;
  return generic + ": " + message;
}

error::error(error_code ec, std::string message)
    : boost::system::system_error(ec), message_(std::move(message)), what_(full_text(ec, message_)) {}

void throw_error(error_code ec, const diagnostics& diag) { throw error(ec, std::string(diag.message())); }

}  // namespace covirt

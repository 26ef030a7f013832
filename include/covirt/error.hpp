// covirt: errors. The numbers are libvirt's virErrorNumber, so an error that
// crosses libvirt RPC keeps its meaning.
#pragma once

#include <covirt/detail/errc_list.hpp>

#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>
#include <boost/system/system_error.hpp>

#include <string>
#include <string_view>
#include <utility>

namespace covirt {

using boost::system::error_code;

/// libvirt's virErrorNumber, value for value (VIR_ERR_NO_DOMAIN = 42 is errc::no_domain).
enum class errc : int {
#define COVIRT_X(name, value, symbol) name = value,
  COVIRT_ERRC_LIST(COVIRT_X)
#undef COVIRT_X
};

/// The category of covirt::errc; name() is "covirt", message() is libvirt's
/// generic text for the code ("Domain not found").
const boost::system::error_category& error_category() noexcept;

inline error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), error_category()}; }

/// The libvirt symbol of a code ("VIR_ERR_NO_DOMAIN"), or "" for an unknown value.
std::string_view errc_symbol(int value) noexcept;

/// What a failed operation says to a person: which object, and why
/// ("domain 'web1' is not running"). Filled by the driver; the error_code is for programs.
class diagnostics {
public:
  diagnostics() = default;
  explicit diagnostics(std::string msg) : msg_(std::move(msg)) {}
  std::string_view message() const noexcept { return msg_; }
  void assign(std::string msg) { msg_ = std::move(msg); }
  void clear() noexcept { msg_.clear(); }

private:
  std::string msg_;
};

/// The exception for code that wants exceptions: the code plus the message.
/// what() reads like libvirt's "Requested operation is not valid: domain 'x' is not running".
class error : public boost::system::system_error {
public:
  error(error_code ec, std::string message);
  /// The driver's words alone ("no domain with matching name 'x'").
  const std::string& message() const noexcept { return message_; }
  /// libvirt's generic text for the code, then the driver's words.
  const char* what() const noexcept override { return what_.c_str(); }

private:
  std::string message_;
  std::string what_;
};

/// Outcome of a driver operation: a value or an error_code (the message goes to diagnostics).
template <class T>
using result = boost::system::result<T, error_code>;

/// An error on its way into any result<T>. It exists because result<bool> will not take
/// a bare error_code (error_code converts to bool), and drivers return errors uniformly.
struct failure {
  error_code ec;
  failure(error_code e) noexcept : ec(e) {}  // NOLINT: implicit on purpose
  operator error_code() const noexcept { return ec; }
  template <class T, class E>
  operator boost::system::result<T, E>() const {
    return boost::system::result<T, E>(boost::system::in_place_error, ec);
  }
};

/// Fills `diag` and returns the code, for one-line error returns in drivers:
/// `co_return fail(diag, errc::no_domain, "no domain with matching name 'x'");`
inline failure fail(diagnostics& diag, errc code, std::string message) {
  diag.assign(std::move(message));
  return make_error_code(code);
}

/// Throws covirt::error built from ec and diag.
[[noreturn]] void throw_error(error_code ec, const diagnostics& diag);

}  // namespace covirt

template <>
struct boost::system::is_error_code_enum<covirt::errc> : std::true_type {};

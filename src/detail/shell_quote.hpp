// covirt internals: a word for sh, in single quotes (every ' written as '\''), the one quoting
// that needs no knowledge of which characters sh treats specially.
#pragma once

#include <string>
#include <string_view>

namespace covirt::detail {

inline std::string shell_quote(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += "'\\''";
    else out += c;
  }
  return out + "'";
}

}  // namespace covirt::detail

// covirt: version and feature macros.
#pragma once

#include <cstdint>

#define COVIRT_VERSION_MAJOR 0
#define COVIRT_VERSION_MINOR 1
#define COVIRT_VERSION_MICRO 0
/// major * 1,000,000 + minor * 1,000 + micro, like LIBVIR_VERSION_NUMBER.
#define COVIRT_VERSION_NUMBER (COVIRT_VERSION_MAJOR * 1000000 + COVIRT_VERSION_MINOR * 1000 + COVIRT_VERSION_MICRO)

namespace covirt {
/// The library's version (virConnectGetLibVersion's counterpart), same encoding.
constexpr std::uint64_t lib_version() noexcept { return COVIRT_VERSION_NUMBER; }
}  // namespace covirt

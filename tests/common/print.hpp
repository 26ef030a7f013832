// tests/common: how Catch prints covirt's value types in a failed check.
#pragma once

#include <catch2/catch.hpp>

#include <covirt/types.hpp>

#include <string>

namespace Catch {
template <>
struct StringMaker<covirt::node_info> {
  static std::string convert(const covirt::node_info& n) {
    return "{model " + n.model + ", memory " + std::to_string(n.memory_kib) + " KiB, cpus " +
           std::to_string(n.cpus) + ", mhz " + std::to_string(n.mhz) + ", nodes " + std::to_string(n.nodes) +
           ", sockets " + std::to_string(n.sockets) + ", cores " + std::to_string(n.cores) + ", threads " +
           std::to_string(n.threads) + "}";
  }
};
}  // namespace Catch

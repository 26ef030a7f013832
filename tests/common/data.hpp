// covirt tests: the files under tests/data (documents, recorded outputs of libvirt's tools).
#pragma once

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace covirt_test {

namespace fs = std::filesystem;

/// tests/data/xml: from COVIRT_TEST_DATA or COVIRT_SOURCE_ROOT, else found from this file or the
/// working directory upwards.
inline fs::path data_dir() {
  if (const char* env = std::getenv("COVIRT_TEST_DATA"); env && fs::exists(fs::path(env) / "xml"))
    return fs::path(env) / "xml";
  if (const char* root = std::getenv("COVIRT_SOURCE_ROOT");
      root && fs::exists(fs::path(root) / "tests" / "data" / "xml" / "minimal.xml"))
    return fs::path(root) / "tests" / "data" / "xml";
  fs::path here = fs::path(__FILE__).parent_path();  // tests/unit (maybe relative to the build dir)
  for (fs::path cand : {here / ".." / "data" / "xml", fs::current_path() / here / ".." / "data" / "xml"})
    if (fs::exists(cand / "minimal.xml")) return cand;
  for (fs::path p = fs::current_path(); !p.empty() && p != p.root_path(); p = p.parent_path())
    if (fs::exists(p / "tests" / "data" / "xml" / "minimal.xml")) return p / "tests" / "data" / "xml";
  return {};
}

/// A file of tests/data/xml, whole; the test fails where it is missing.
inline std::string read_data(const std::string& name) {
  fs::path dir = data_dir();
  REQUIRE(!dir.empty());
  std::ifstream in(dir / name, std::ios::binary);
  REQUIRE(in.good());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace covirt_test


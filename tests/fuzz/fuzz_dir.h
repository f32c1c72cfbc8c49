#pragma once
// One scratch directory per fuzz process, for readers that take a path: FuzzDir(prefix, names)
// makes it once; Put writes a file there; the names listed are removed, with the directory, at
// exit.
#include <unistd.h>

#include <cstdlib>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "base/file_io.h"

namespace bitbyte::fuzz {

class FuzzDir {
 public:
  FuzzDir(const char* prefix, std::initializer_list<const char*> names) : names_(names.begin(), names.end()) {
    std::string tmpl = std::string("/tmp/") + prefix + "-XXXXXX";
    if (!::mkdtemp(tmpl.data())) std::abort();
    path_ = tmpl;
  }
  ~FuzzDir() {
    for (const std::string& n : names_) ::unlink((path_ + "/" + n).c_str());
    ::rmdir(path_.c_str());
  }
  const std::string& path() const { return path_; }
  void Put(const std::string& name, std::string_view bytes) const {
    auto f = io::Posix().NewWritableFile(path_ + "/" + name);
    f->Append(bytes);
    f->Close();
  }

 private:
  std::vector<std::string> names_;
  std::string path_;
};

}  // namespace bitbyte::fuzz

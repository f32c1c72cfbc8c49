#include "sharding/input.h"

#include <fcntl.h>
#include <glob.h>
#include <lzma.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "base/error.h"
#include "base/file_io.h"
#include "base/hash.h"

namespace bitbyte::input {
namespace {

constexpr size_t kChunk = 1 << 20;

bool EndsWith(const std::string& s, const char* suffix) {
  size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

bool HasGlobChars(const std::string& s) { return s.find_first_of("*?[") != std::string::npos; }

// The absolute path with symlinks resolved, also for a path that does not exist yet (the
// output directory of a first run): its longest existing prefix resolved, the rest appended.
std::string Canonical(const std::string& path) {
  if (char* r = ::realpath(path.c_str(), nullptr)) {
    std::string out = r;
    std::free(r);
    return out;
  }
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  const size_t slash = p.rfind('/');
  if (slash == std::string::npos) return Canonical(".") + "/" + p;
  const std::string parent = slash == 0 ? "/" : p.substr(0, slash), name = p.substr(slash + 1);
  if (name.empty() || name == "." || name == "..") return p;  // cannot resolve; compare as given
  const std::string base = Canonical(parent);
  return base == "/" ? "/" + name : base + "/" + name;
}

// What is left out of the inputs: the output directory and everything below it, whether it
// exists yet or not (it is created after enumeration, and re-running the same command sees it).
struct Exclusion {
  std::string dir;  // canonical; empty: nothing excluded
  bool Covers(const std::string& path) const {
    if (dir.empty()) return false;
    const std::string c = Canonical(path);
    return c == dir ||
           (c.size() > dir.size() && c.compare(0, dir.size(), dir) == 0 && (dir == "/" || c[dir.size()] == '/'));
  }
};

// Collects the regular files below `dir` (symlinks to files followed, symlinked directories
// not, so a link loop cannot recurse), skipping dot-entries and the excluded directory.
void Walk(const std::string& dir, const Exclusion& exclude, std::vector<std::string>& out) {
  for (const std::string& name : io::Posix().ListDir(dir)) {
    if (name[0] == '.') continue;
    std::string p = io::JoinPath(dir, name);
    struct stat st;
    if (::lstat(p.c_str(), &st) != 0) throw Error(ErrnoMessage("stat", p, errno));
    if (S_ISLNK(st.st_mode) && (::stat(p.c_str(), &st) != 0 || S_ISDIR(st.st_mode))) continue;
    if (S_ISDIR(st.st_mode)) {
      if (exclude.Covers(p)) continue;
      Walk(p, exclude, out);
    } else if (S_ISREG(st.st_mode)) {
      out.push_back(std::move(p));
    }
  }
}

// `named`: the path was given as it is (not found by a pattern): naming something inside the
// output directory is then an error rather than something to leave out quietly.
void AddPath(const std::string& p, const Exclusion& exclude, bool named, std::vector<InputFile>& out) {
  struct stat st;
  if (::stat(p.c_str(), &st) != 0) throw Error(ErrnoMessage("read input", p, errno));
  if (exclude.Covers(p)) {
    if (named && !S_ISDIR(st.st_mode))
      throw UsageError("input '" + p + "' is inside the output directory '" + exclude.dir + "'");
    return;  // a directory that is (or is inside) the output, or a pattern's match in it
  }
  if (S_ISDIR(st.st_mode)) {
    std::vector<std::string> files;
    Walk(p, exclude, files);
    std::sort(files.begin(), files.end());  // byte order of the whole path
    for (auto& f : files) out.push_back({f, CompressionOf(f)});
  } else {
    out.push_back({p, CompressionOf(p)});
  }
}

// Streams the bytes of a file to `sink` in chunks, feeding the stored-bytes hash as it goes.
// Returns the file's stamp, and fails if the file changed while it was read.
io::FileStamp StreamFile(const std::string& path, Xxh64Stream& stored_hash, uint64_t& stored_size,
                         const std::function<void(const char*, size_t)>& sink) {
  auto f = io::Posix().OpenReadable(path);
  const io::FileStamp before = f->Stamp();
  std::string buf(kChunk, '\0');
  for (uint64_t off = 0; off < f->Size();) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(kChunk, f->Size() - off));
    f->ReadAt(off, n, buf.data());
    stored_hash.Update(std::string_view(buf.data(), n));
    sink(buf.data(), n);
    off += n;
  }
  stored_size = f->Size();
  if (f->Stamp() != before) throw Error("input '" + path + "' changed while it was being read");
  return before;
}

// Reads stdin ("-"), a pipe or a device to its end.
void StreamFd(const std::string& path, Xxh64Stream& stored_hash, uint64_t& stored_size,
              const std::function<void(const char*, size_t)>& sink) {
  const bool is_stdin = path == "-";
  const int fd = is_stdin ? 0 : ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(ErrnoMessage("open", path, errno));
  std::string buf(kChunk, '\0');
  stored_size = 0;
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      if (!is_stdin) ::close(fd);
      throw Error(ErrnoMessage("read", is_stdin ? "<stdin>" : path, err));
    }
    if (n == 0) break;
    stored_hash.Update(std::string_view(buf.data(), static_cast<size_t>(n)));
    sink(buf.data(), static_cast<size_t>(n));
    stored_size += static_cast<uint64_t>(n);
  }
  if (!is_stdin) ::close(fd);
}

// A streaming decompressor: Feed() compressed bytes, it calls `out` with plain bytes.
class Decoder {
 public:
  Decoder(Compression c, std::string path, std::function<void(const char*, size_t)> out)
      : kind_(c), path_(std::move(path)), out_(std::move(out)), buf_(kChunk, '\0') {
    if (kind_ == Compression::kZstd) {
      zstd_ = ZSTD_createDStream();
      ZSTD_initDStream(zstd_);
    } else if (kind_ == Compression::kGzip) {
      std::memset(&z_, 0, sizeof(z_));
      if (inflateInit2(&z_, 15 + 32) != Z_OK) throw Error("zlib init failed");
    } else if (kind_ == Compression::kXz) {
      if (lzma_stream_decoder(&xz_, UINT64_MAX, LZMA_CONCATENATED) != LZMA_OK) throw Error("liblzma init failed");
    }
  }
  ~Decoder() {
    if (zstd_) ZSTD_freeDStream(zstd_);
    if (kind_ == Compression::kGzip) inflateEnd(&z_);
    if (kind_ == Compression::kXz) lzma_end(&xz_);
  }
  void Feed(const char* data, size_t n) {
    if (kind_ == Compression::kZstd) FeedZstd(data, n);
    if (kind_ == Compression::kGzip) FeedGzip(data, n, false);
    if (kind_ == Compression::kXz) FeedXz(data, n, false);
    consumed_ += n;
  }
  void Finish() {
    if (kind_ == Compression::kZstd && last_zstd_hint_ != 0) Fail("truncated zstd stream (ends inside a frame)");
    if (kind_ == Compression::kGzip) FeedGzip(nullptr, 0, true);
    if (kind_ == Compression::kXz) FeedXz(nullptr, 0, true);
  }

 private:
  [[noreturn]] void Fail(const std::string& what) const {
    throw DataError("input '" + path_ + "': " + what + " (near compressed offset " + std::to_string(consumed_) + ")");
  }
  void FeedZstd(const char* data, size_t n) {
    ZSTD_inBuffer in{data, n, 0};
    for (;;) {
      ZSTD_outBuffer out{buf_.data(), buf_.size(), 0};
      const size_t before = in.pos;
      size_t r = ZSTD_decompressStream(zstd_, &out, &in);
      if (ZSTD_isError(r)) Fail(std::string("zstd: ") + ZSTD_getErrorName(r));
      if (out.pos) out_(buf_.data(), out.pos);
      // A call that made no progress after a finished frame hints at the next frame's header:
      // only calls that moved count towards "ends inside a frame".
      if (in.pos != before || out.pos) last_zstd_hint_ = r;
      if (in.pos == in.size && out.pos < out.size) break;
    }
  }
  void FeedGzip(const char* data, size_t n, bool finish) {
    z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data));
    z_.avail_in = static_cast<uInt>(n);
    if (finish) {
      if (!gz_ended_ || gz_pending_member_) Fail("truncated gzip stream");
      return;
    }
    while (z_.avail_in > 0) {
      if (gz_ended_) {  // another member follows (concatenated .gz)
        inflateReset(&z_);
        gz_ended_ = false;
      }
      gz_pending_member_ = true;
      z_.next_out = reinterpret_cast<Bytef*>(buf_.data());
      z_.avail_out = static_cast<uInt>(buf_.size());
      int r = inflate(&z_, Z_NO_FLUSH);
      size_t produced = buf_.size() - z_.avail_out;
      if (produced) out_(buf_.data(), produced);
      if (r == Z_STREAM_END) {
        gz_ended_ = true;
        gz_pending_member_ = false;
      } else if (r != Z_OK && r != Z_BUF_ERROR) {
        Fail(std::string("gzip: ") + (z_.msg ? z_.msg : "corrupt data"));
      }
    }
  }
  void FeedXz(const char* data, size_t n, bool finish) {
    xz_.next_in = reinterpret_cast<const uint8_t*>(data);
    xz_.avail_in = n;
    lzma_action action = finish ? LZMA_FINISH : LZMA_RUN;
    for (;;) {
      xz_.next_out = reinterpret_cast<uint8_t*>(buf_.data());
      xz_.avail_out = buf_.size();
      lzma_ret r = lzma_code(&xz_, action);
      size_t produced = buf_.size() - xz_.avail_out;
      if (produced) out_(buf_.data(), produced);
      if (r == LZMA_STREAM_END) return;
      if (r != LZMA_OK) Fail("xz: corrupt or truncated data (lzma error " + std::to_string(r) + ")");
      if (xz_.avail_in == 0 && xz_.avail_out != 0) {
        if (finish) Fail("xz: truncated stream");
        return;
      }
    }
  }

  Compression kind_;
  std::string path_;
  std::function<void(const char*, size_t)> out_;
  std::string buf_;
  uint64_t consumed_ = 0;
  ZSTD_DStream* zstd_ = nullptr;
  size_t last_zstd_hint_ = 0;
  z_stream z_;
  bool gz_ended_ = false, gz_pending_member_ = false;
  lzma_stream xz_ = LZMA_STREAM_INIT;
};

std::string SpoolName(const std::string& dir, const char* kind, uint32_t index) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%s-%08u", kind, index);
  return io::JoinPath(dir, buf);
}

}  // namespace

Compression CompressionOf(const std::string& path) {
  if (EndsWith(path, ".zst") || EndsWith(path, ".zstd")) return Compression::kZstd;
  if (EndsWith(path, ".gz")) return Compression::kGzip;
  if (EndsWith(path, ".xz")) return Compression::kXz;
  return Compression::kNone;
}

std::vector<InputFile> Enumerate(const std::vector<std::string>& args, const std::string& exclude_dir) {
  const Exclusion exclude{exclude_dir.empty() ? "" : Canonical(exclude_dir)};
  std::vector<InputFile> out;
  bool stdin_seen = false;
  for (const std::string& a : args) {
    if (a == "-") {
      if (stdin_seen) throw Error("'-' (standard input) is given more than once");
      stdin_seen = true;
      out.push_back({"-", Compression::kNone});
      continue;
    }
    struct stat st;
    if (::stat(a.c_str(), &st) != 0 && errno == ENOENT && HasGlobChars(a)) {
      glob_t g{};
      int rc = ::glob(a.c_str(), GLOB_ERR, nullptr, &g);
      if (rc == GLOB_NOMATCH) {
        globfree(&g);
        throw Error("input pattern '" + a + "' matches no file");
      }
      if (rc != 0) {
        globfree(&g);
        throw Error("cannot expand input pattern '" + a + "'");
      }
      std::vector<std::string> matches(g.gl_pathv, g.gl_pathv + g.gl_pathc);
      globfree(&g);
      std::sort(matches.begin(), matches.end());
      for (const auto& m : matches) AddPath(m, exclude, /*named=*/false, out);
      continue;
    }
    AddPath(a, exclude, /*named=*/true, out);
  }
  return out;
}

SourceData ReadSource(const InputFile& in, uint32_t index, const std::string& spool_dir, io::FileSystem& fs) {
  SourceData s;
  s.index = index;
  s.path = in.path;
  Xxh64Stream stored;
  struct stat st;
  // Read to the end rather than by size: stdin, pipes, devices, and regular files whose size
  // says 0 (procfs and sysfs files have content all the same).
  const bool stream =
      in.path == "-" || (::stat(in.path.c_str(), &st) == 0 && (!S_ISREG(st.st_mode) || st.st_size == 0));
  if (!stream && in.compression == Compression::kNone) {
    const io::FileStamp stamp = StreamFile(in.path, stored, s.size, [](const char*, size_t) {});
    s.xxh64 = stored.Digest();
    s.data_file = std::make_shared<const DataFile>(DataFile{in.path, false, stamp});
    s.data_bytes = s.size;
    s.data_xxh64 = s.xxh64;
    return s;
  }
  const std::string spool = SpoolName(spool_dir, "src", index);
  auto out = fs.NewWritableFile(spool);
  Xxh64Stream plain;
  uint64_t plain_bytes = 0;
  auto write_plain = [&](const char* p, size_t n) {
    plain.Update(std::string_view(p, n));
    out->Append(std::string_view(p, n));
    plain_bytes += n;
  };
  const Compression c = in.path == "-" ? Compression::kNone : in.compression;
  if (c == Compression::kNone) {
    StreamFd(in.path, stored, s.size, write_plain);
  } else {
    Decoder dec(c, in.path, write_plain);
    auto feed = [&](const char* p, size_t n) { dec.Feed(p, n); };
    if (stream) {
      StreamFd(in.path, stored, s.size, feed);
    } else {
      StreamFile(in.path, stored, s.size, feed);
    }
    dec.Finish();
  }
  out->Close();
  s.xxh64 = stored.Digest();
  s.data_file = std::make_shared<const DataFile>(DataFile{spool, true, {}});
  s.data_bytes = plain_bytes;
  s.data_xxh64 = plain.Digest();
  return s;
}

SplitResult SplitDocuments(const SourceData& src, const SplitOptions& opts, const std::string& spool_dir,
                           io::FileSystem& fs) {
  SplitResult r;
  if (opts.jsonl_field.empty()) {
    r.docs.push_back({src.data_file, 0, src.data_bytes, src.data_xxh64});
    return r;
  }
  const std::string spool = SpoolName(spool_dir, "docs", src.index);
  auto docs_file = std::make_shared<const DataFile>(DataFile{spool, true, {}});
  auto out = fs.NewWritableFile(spool);
  auto in = io::Posix().OpenReadable(src.data_file->path);
  std::string buf(kChunk, '\0'), line;
  uint64_t line_no = 0, out_off = 0;
  auto handle_line = [&]() {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) return;  // blank line
    std::string err;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) {
      err = "invalid JSON";
    } else if (!j.is_object()) {
      err = "record is not a JSON object";
    } else if (!j.contains(opts.jsonl_field)) {
      err = "record has no field '" + opts.jsonl_field + "'";
    } else if (!j[opts.jsonl_field].is_string()) {
      err = "field '" + opts.jsonl_field + "' is not a string";
    }
    if (!err.empty()) {
      if (opts.skip_bad_records) {
        ++r.bad_records;
        return;
      }
      throw DataError(src.path + ":" + std::to_string(line_no) + ": " + err +
                      " (use --skip-bad-records to skip and count bad records)");
    }
    const std::string& text = j[opts.jsonl_field].get_ref<const std::string&>();
    out->Append(text);
    r.docs.push_back({docs_file, out_off, text.size(), Xxh64(text)});
    out_off += text.size();
  };
  for (uint64_t off = 0; off < in->Size();) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(kChunk, in->Size() - off));
    in->ReadAt(off, n, buf.data());
    off += n;
    size_t start = 0;
    for (;;) {
      const char* nl = static_cast<const char*>(std::memchr(buf.data() + start, '\n', n - start));
      if (!nl) {
        line.append(buf.data() + start, n - start);
        break;
      }
      size_t end = static_cast<size_t>(nl - buf.data());
      line.append(buf.data() + start, end - start);
      handle_line();
      line.clear();
      start = end + 1;
    }
  }
  if (!line.empty()) handle_line();
  out->Close();
  return r;
}

}  // namespace bitbyte::input

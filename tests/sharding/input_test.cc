#include "sharding/input.h"

#include <gtest/gtest.h>
#include <lzma.h>
#include <sys/stat.h>
#include <zlib.h>
#include <zstd.h>

#include <stdexcept>
#include <thread>
#include <vector>

#include "base/error.h"
#include "base/file_io.h"
#include "base/hash.h"
#include "tests/test_util.h"

namespace bitbyte::input {
namespace {

using testing::ReadFile;
using testing::TempDir;
using testing::WriteFile;

std::string Zstd(const std::string& s) {
  std::string out(ZSTD_compressBound(s.size()), '\0');
  out.resize(ZSTD_compress(out.data(), out.size(), s.data(), s.size(), 3));
  return out;
}

std::string Gzip(const std::string& s) {
  z_stream z{};
  deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&z, s.size()) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(s.data()));
  z.avail_in = static_cast<uInt>(s.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

std::string Xz(const std::string& s) {
  std::string out(lzma_stream_buffer_bound(s.size()), '\0');
  size_t pos = 0;
  lzma_easy_buffer_encode(6, LZMA_CHECK_CRC64, nullptr, reinterpret_cast<const uint8_t*>(s.data()), s.size(),
                          reinterpret_cast<uint8_t*>(out.data()), &pos, out.size());
  out.resize(pos);
  return out;
}

std::string DocBytes(const DocRef& d) {
  std::string all = ReadFile(d.file->path);
  return all.substr(d.offset, d.length);
}

TEST(Enumerate, DirectoriesRecursiveSortedHiddenSkipped) {
  TempDir t;
  io::Posix().CreateDirs(t / "c/b");
  WriteFile(t / "c/b/z.txt", "z");
  WriteFile(t / "c/a.txt", "a");
  WriteFile(t / "c/.hidden", "h");
  WriteFile(t / "c/b/y.txt", "y");
  auto in = Enumerate({t / "c"});
  ASSERT_EQ(in.size(), 3u);
  EXPECT_EQ(in[0].path, t / "c/a.txt");
  EXPECT_EQ(in[1].path, t / "c/b/y.txt");
  EXPECT_EQ(in[2].path, t / "c/b/z.txt");
}

TEST(Enumerate, GlobStdinAndErrors) {
  TempDir t;
  WriteFile(t / "b.txt", "b");
  WriteFile(t / "a.txt", "a");
  WriteFile(t / "a.gz", "");
  auto in = Enumerate({t / "*.txt", "-"});
  ASSERT_EQ(in.size(), 3u);
  EXPECT_EQ(in[0].path, t / "a.txt");
  EXPECT_EQ(in[2].path, "-");
  EXPECT_EQ(Enumerate({t / "a.gz"})[0].compression, Compression::kGzip);
  try {
    Enumerate({t / "missing.txt"});
    FAIL() << "missing path accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing.txt"), std::string::npos);
  }
  EXPECT_THROW(Enumerate({t / "*.nothing"}), Error);
  EXPECT_THROW(Enumerate({"-", "-"}), Error);
}

TEST(Enumerate, UnreadableFileFailsOnRead) {
  if (::geteuid() == 0) {
    // root reads any file: test an unreadable path through a directory instead.
    TempDir t;
    io::Posix().CreateDirs(t / "d");
    EXPECT_THROW(ReadSource({t / "d", Compression::kNone}, 0, t.path()), Error);
    return;
  }
  TempDir t;
  WriteFile(t / "x", "data");
  ::chmod((t / "x").c_str(), 0);
  EXPECT_THROW(ReadSource({t / "x", Compression::kNone}, 0, t.path()), Error);
}

// Property: every compression format decompresses to the same bytes for random inputs.
TEST(ReadSource, CompressedRoundTripsRandomInputs) {
  TempDir t;
  std::mt19937_64 rng(7);
  for (int round = 0; round < 12; ++round) {
    const std::string plain = testing::RandomBytes(rng, rng() % 300000);
    const struct {
      const char* ext;
      std::string bytes;
    } cases[] = {{".zst", Zstd(plain)}, {".gz", Gzip(plain)}, {".xz", Xz(plain)}};
    for (const auto& c : cases) {
      const std::string path = t / ("in" + std::to_string(round) + c.ext);
      WriteFile(path, c.bytes);
      SourceData s = ReadSource({path, CompressionOf(path)}, static_cast<uint32_t>(round), t.path());
      EXPECT_EQ(s.size, c.bytes.size());
      EXPECT_EQ(s.xxh64, Xxh64(c.bytes));
      EXPECT_EQ(s.data_bytes, plain.size());
      EXPECT_EQ(s.data_xxh64, Xxh64(plain));
      EXPECT_EQ(ReadFile(s.data_file->path), plain) << c.ext;
    }
  }
}

TEST(ReadSource, TruncatedOrGarbledCompressedInputIsAnError) {
  TempDir t;
  std::mt19937_64 rng(3);
  const std::string plain = testing::RandomBytes(rng, 100000);
  const std::pair<const char*, std::string> cases[] = {{".zst", Zstd(plain)}, {".gz", Gzip(plain)}, {".xz", Xz(plain)}};
  for (const auto& [ext, bytes] : cases) {
    const std::string path = t / (std::string("cut") + ext);
    WriteFile(path, bytes.substr(0, bytes.size() / 2));
    try {
      ReadSource({path, CompressionOf(path)}, 0, t.path());
      FAIL() << ext << " truncated input accepted";
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
    std::string garbled = bytes;
    for (size_t i = 0; i < 64 && i < garbled.size(); ++i) garbled[i] ^= 0x5a;
    WriteFile(path, garbled);
    EXPECT_THROW(ReadSource({path, CompressionOf(path)}, 0, t.path()), DataError) << ext;
  }
}

// A named pipe (e.g. bash's <(...)) is read to its end, not taken as an empty file.
TEST(ReadSource, PipeIsReadToItsEnd) {
  TempDir t;
  ASSERT_EQ(::mkfifo((t / "fifo").c_str(), 0600), 0);
  const std::string payload(300000, 'p');
  std::thread writer([&] { WriteFile(t / "fifo", payload); });
  auto in = Enumerate({t / "fifo"});
  SourceData s = ReadSource(in.at(0), 0, t.path());
  writer.join();
  EXPECT_EQ(s.data_bytes, payload.size());
  EXPECT_EQ(ReadFile(s.data_file->path), payload);
}

// A file whose size says 0 but that has content (procfs, sysfs) is read to its end.
TEST(ReadSource, ZeroSizedProcFileIsReadToItsEnd) {
  TempDir t;
  const std::string proc = "/proc/self/status";
  struct stat st;
  ASSERT_EQ(::stat(proc.c_str(), &st), 0);
  ASSERT_EQ(st.st_size, 0);  // the premise: procfs reports no size
  SourceData s = ReadSource({proc, Compression::kNone}, 0, t.path());
  EXPECT_GT(s.data_bytes, 100u);
  EXPECT_NE(ReadFile(s.data_file->path).find("Name:"), std::string::npos);
  EXPECT_NE(io::ReadFile(io::Posix(), proc).find("Name:"), std::string::npos);
  // A file that is really empty stays an empty document.
  WriteFile(t / "empty", "");
  EXPECT_EQ(ReadSource({t / "empty", Compression::kNone}, 1, t.path()).data_bytes, 0u);
}

// A failed atomic write leaves neither a temp file nor a changed target behind.
TEST(FileIo, FailedAtomicWriteLeavesNoTempFile) {
  TempDir t;
  io::Posix().CreateDirs(t / "target-is-a-dir");
  EXPECT_THROW(io::WriteFileAtomic(io::Posix(), t / "target-is-a-dir", "x"), Error);
  EXPECT_NE(::access((t / "target-is-a-dir.tmp").c_str(), F_OK), 0) << "temp file left behind";
  WriteFile(t / "f", "old");
  io::WriteFileAtomic(io::Posix(), t / "f", "new");
  EXPECT_EQ(ReadFile(t / "f"), "new");
  EXPECT_NE(::access((t / "f.tmp").c_str(), F_OK), 0);
  EXPECT_THROW(io::ReadFile(io::Posix(), t.path()), Error);  // a directory is not a file to read
}

// The output directory is never an input: not when it is an input itself, inside an input
// directory, matched by a pattern, or does not exist yet.
TEST(Enumerate, OutputDirectoryIsLeftOut) {
  TempDir t;
  io::Posix().CreateDirs(t / "s/out/sub");
  WriteFile(t / "s/a.txt", "a");
  WriteFile(t / "s/b.txt", "b");
  WriteFile(t / "s/out/manifest.pb", "m");
  WriteFile(t / "s/out/sub/x", "x");
  const std::vector<std::string> expect = {t / "s/a.txt", t / "s/b.txt"};
  auto paths = [](const std::vector<InputFile>& in) {
    std::vector<std::string> p;
    for (const auto& f : in) p.push_back(f.path);
    return p;
  };
  EXPECT_EQ(paths(Enumerate({t / "s/*"}, t / "s/out")), expect);
  EXPECT_EQ(paths(Enumerate({t / "s"}, t / "s/out")), expect);
  EXPECT_EQ(paths(Enumerate({t / "s", t / "s/out"}, t / "s/out")), expect);
  EXPECT_EQ(paths(Enumerate({t / "s"}, t / "s/../s/out/")), expect);  // spelled differently
  EXPECT_EQ(paths(Enumerate({t / "s/out/sub"}, t / "s/out")), std::vector<std::string>{});
  // Named explicitly, a file inside the output directory is an error, not silently dropped.
  EXPECT_THROW(Enumerate({t / "s/out/manifest.pb"}, t / "s/out"), UsageError);
  // An output that does not exist yet: nothing to leave out, and no error.
  EXPECT_EQ(paths(Enumerate({t / "s/*.txt"}, t / "s/new/deeper")), expect);
  // Through a symlinked parent.
  ASSERT_EQ(::symlink((t / "s").c_str(), (t / "link").c_str()), 0);
  EXPECT_EQ(paths(Enumerate({t / "s"}, t / "link/out")), expect);
}

TEST(SplitDocuments, PlainFileIsOneDocument) {
  TempDir t;
  WriteFile(t / "a", "hello");
  SourceData s = ReadSource({t / "a", Compression::kNone}, 0, t.path());
  SplitResult r = SplitDocuments(s, {}, t.path());
  ASSERT_EQ(r.docs.size(), 1u);
  EXPECT_EQ(DocBytes(r.docs[0]), "hello");
  EXPECT_EQ(r.docs[0].xxh64, Xxh64("hello"));
}

TEST(SplitDocuments, JsonlRecordsUnescaped) {
  TempDir t;
  WriteFile(t / "a.jsonl", "{\"text\": \"one\\nline\", \"id\": 1}\n\n{\"text\": \"\\u00e9\\u0000x\"}\n{\"text\":\"\"}");
  SourceData s = ReadSource({t / "a.jsonl", Compression::kNone}, 0, t.path());
  SplitResult r = SplitDocuments(s, {"text", false}, t.path());
  ASSERT_EQ(r.docs.size(), 3u);
  EXPECT_EQ(DocBytes(r.docs[0]), "one\nline");
  EXPECT_EQ(DocBytes(r.docs[1]), std::string("\xc3\xa9\0x", 4));
  EXPECT_EQ(r.docs[2].length, 0u);
  EXPECT_EQ(r.bad_records, 0u);
}

TEST(SplitDocuments, BadJsonlRecordNamesFileAndLine) {
  TempDir t;
  const std::string bad[] = {"{\"text\": \"ok\"}\n{\"text\": oops}\n", "{\"text\": \"ok\"}\n{\"other\": \"x\"}\n",
                             "{\"text\": \"ok\"}\n{\"text\": 5}\n", "{\"text\": \"ok\"}\n[1,2]\n"};
  for (const std::string& content : bad) {
    WriteFile(t / "b.jsonl", content);
    SourceData s = ReadSource({t / "b.jsonl", Compression::kNone}, 0, t.path());
    try {
      SplitDocuments(s, {"text", false}, t.path());
      FAIL() << "accepted: " << content;
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find(t / "b.jsonl:2"), std::string::npos) << e.what();
    }
    SplitResult r = SplitDocuments(s, {"text", true}, t.path());
    EXPECT_EQ(r.docs.size(), 1u);
    EXPECT_EQ(r.bad_records, 1u);
  }
}

}  // namespace
}  // namespace bitbyte::input

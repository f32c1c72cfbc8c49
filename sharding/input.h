#pragma once
// Corpus inputs: enumeration (files, directories, globs, stdin), transparent decompression
// (.zst, .gz, .xz) and splitting into documents (one per plain file, one per JSONL record).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/file_io.h"

namespace bitbyte::input {

enum class Compression { kNone, kZstd, kGzip, kXz };

struct InputFile {
  std::string path;  // "-" for stdin
  Compression compression = Compression::kNone;
};

// Expands the command-line inputs in order: a file is itself (a pipe or device is read to its
// end); a directory is every regular file below it, recursively, sorted by the bytes of the
// whole path (entries starting with '.' are skipped, symlinked directories are not followed,
// the directory `exclude` -- the output -- is left out); a pattern with * ? [ that names no
// existing path is expanded with glob(3), sorted; "-" is stdin (at most once). Throws Error for
// a missing path or a pattern that matches nothing.
std::vector<InputFile> Enumerate(const std::vector<std::string>& args, const std::string& exclude = "");

Compression CompressionOf(const std::string& path);

// A plain file holding documents' bytes: an input as scanned, or a spool file of ours. Inputs
// carry their stamp from the scan: a reader that finds another has found a changed input.
struct DataFile {
  std::string path;
  bool spool = false;
  io::FileStamp stamp;
};

// Where a document's bytes are: a byte range of a DataFile.
struct DocRef {
  std::shared_ptr<const DataFile> file;
  uint64_t offset = 0;
  uint64_t length = 0;
  uint64_t xxh64 = 0;
};

// The read stage's result: the source as stored, and where its decompressed bytes are.
struct SourceData {
  uint32_t index = 0;
  std::string path;
  uint64_t size = 0;                          // bytes as stored
  uint64_t xxh64 = 0;                         // hash of the bytes as stored
  std::shared_ptr<const DataFile> data_file;  // plain bytes (the input, or a spool file)
  uint64_t data_bytes = 0;
  uint64_t data_xxh64 = 0;
};

// Reads one input: hashes it, and decompresses or copies (stdin) it into `spool_dir` when its
// bytes are not already a plain file. Throws Error naming the file (and offset) on failure.
SourceData ReadSource(const InputFile& in, uint32_t index, const std::string& spool_dir,
                      io::FileSystem& fs = io::Default());

struct SplitOptions {
  std::string jsonl_field;        // empty: the whole source is one document
  bool skip_bad_records = false;  // JSONL: count bad records instead of failing
};

struct SplitResult {
  std::vector<DocRef> docs;
  uint64_t bad_records = 0;
};

// Cuts a source into documents. JSONL records' texts are unescaped into a spool file in
// `spool_dir`. Blank lines are ignored. Errors name "path:line".
SplitResult SplitDocuments(const SourceData& src, const SplitOptions& opts, const std::string& spool_dir,
                           io::FileSystem& fs = io::Default());

}  // namespace bitbyte::input

#include "runs/tensorboard.h"

#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "base/error.h"
#include "base/file_io.h"
#include "pipeline/monitor.h"
#include "runs/tensorboard.pb.h"

namespace bitbyte::tb {
namespace {

constexpr uint32_t kCrc32cPoly = 0x82F63B78u;  // Castagnoli, bit-reflected
constexpr uint32_t kMaskDelta = 0xa282ead8u;   // TFRecord's (tensorflow/core/lib/hash/crc32c.h)
constexpr size_t kHeaderSize = 12;             // uint64 length + uint32 masked CRC of it
constexpr size_t kFooterSize = 4;              // uint32 masked CRC of the data
constexpr char kFileVersion[] = "brain.Event:2";
constexpr char kFilePrefix[] = "events.out.tfevents.";

struct Crc32cTable {
  uint32_t entry[256];
  constexpr Crc32cTable() : entry() {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kCrc32cPoly : c >> 1;
      entry[i] = c;
    }
  }
};
constexpr Crc32cTable kCrcTable;

// Fixed-width little-endian fields, byte by byte: the format is little-endian whatever the host.
void PutLe(std::string* out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
uint64_t GetLe(const char* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = v << 8 | static_cast<unsigned char>(p[i]);
  return v;
}

std::string Hex32(uint32_t v) {
  char buf[11];
  std::snprintf(buf, sizeof buf, "0x%08" PRIx32, v);
  return buf;
}

// The seconds field of an event file name ("events.out.tfevents.<digits>[.…]"), whoever wrote it.
bool ParseFileSeconds(const char* name, int64_t* seconds) {
  const size_t prefix = sizeof(kFilePrefix) - 1;
  if (std::strncmp(name, kFilePrefix, prefix) != 0) return false;
  const char* p = name + prefix;
  int64_t v = 0;
  int digits = 0;
  for (; *p >= '0' && *p <= '9'; ++p, ++digits) {
    if (digits == 18) return false;  // not a time (and would overflow)
    v = v * 10 + (*p - '0');
  }
  if (digits == 0 || (*p != '.' && *p != '\0')) return false;
  *seconds = v;
  return true;
}

std::string Hostname() {
  std::string host = pipeline::HostName();
  if (host.empty()) return "localhost";
  for (char& c : host)
    if (c == '/') c = '_';  // never a path separator in a file name
  return host;
}

}  // namespace

uint32_t Crc32cExtend(uint32_t crc, std::string_view data) {
  uint32_t c = ~crc;
  for (const char ch : data) c = kCrcTable.entry[(c ^ static_cast<unsigned char>(ch)) & 0xff] ^ (c >> 8);
  return ~c;
}

uint32_t Crc32c(std::string_view data) { return Crc32cExtend(0, data); }

uint32_t MaskCrc(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + kMaskDelta; }

uint32_t UnmaskCrc(uint32_t masked) {
  const uint32_t rot = masked - kMaskDelta;
  return (rot >> 17) | (rot << 15);
}

std::string FrameRecord(std::string_view data) {
  if (data.size() > kMaxRecordLength)
    throw Error("TensorBoard record of " + std::to_string(data.size()) + " bytes exceeds the largest record (" +
                std::to_string(kMaxRecordLength) + " bytes)");
  std::string out;
  out.reserve(kHeaderSize + data.size() + kFooterSize);
  PutLe(&out, data.size(), 8);
  PutLe(&out, MaskCrc(Crc32c(out)), 4);
  out.append(data);
  PutLe(&out, MaskCrc(Crc32c(data)), 4);
  return out;
}

std::vector<std::string> ReadRecords(const std::string& path, int* torn) {
  const std::string bytes = io::ReadFile(io::Posix(), path);
  std::vector<std::string> records;
  if (torn) *torn = 0;
  uint64_t offset = 0;
  for (size_t index = 0; offset < bytes.size(); ++index) {
    const uint64_t left = bytes.size() - offset;
    const char* p = bytes.data() + offset;
    auto where = [&] { return path + ": record " + std::to_string(index) + " at offset " + std::to_string(offset); };
    // Only the end of the file can be torn: a writer killed mid-write(2) leaves a prefix of its
    // last records. Everything before it was written whole, so any damage there is corruption.
    auto cut_off = [&](uint64_t need) {
      if (!torn)
        throw DataError(where() + ": cut off at the end of the file (" + std::to_string(left) + " of " +
                        std::to_string(need) + " bytes present)");
      ++*torn;
    };
    if (left < kHeaderSize) {
      cut_off(kHeaderSize);
      break;
    }
    // The length's own CRC first: a damaged length could otherwise point past the end of the
    // file and pass for a torn record, silently dropping the rest.
    const uint64_t length = GetLe(p, 8);
    const uint32_t length_crc = static_cast<uint32_t>(GetLe(p + 8, 4));
    const uint32_t want_length_crc = MaskCrc(Crc32c(std::string_view(p, 8)));
    if (length_crc != want_length_crc)
      throw DataError(where() + ": length checksum mismatch (stored " + Hex32(length_crc) + ", computed " +
                      Hex32(want_length_crc) + ")");
    if (length > kMaxRecordLength)
      throw DataError(where() + ": impossible length " + std::to_string(length) + " (the largest record is " +
                      std::to_string(kMaxRecordLength) + " bytes)");
    const uint64_t need = kHeaderSize + length + kFooterSize;
    if (left < need) {
      cut_off(need);
      break;
    }
    const std::string_view data(p + kHeaderSize, length);
    const uint32_t data_crc = static_cast<uint32_t>(GetLe(p + kHeaderSize + length, 4));
    const uint32_t want_data_crc = MaskCrc(Crc32c(data));
    if (data_crc != want_data_crc)
      throw DataError(where() + ": data checksum mismatch (stored " + Hex32(data_crc) + ", computed " +
                      Hex32(want_data_crc) + ", length " + std::to_string(length) + ")");
    records.emplace_back(data);
    offset += need;
  }
  return records;
}

std::string EventFileName(int64_t unix_seconds, const std::string& hostname, int64_t pid) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%010" PRId64, unix_seconds);
  return kFilePrefix + std::string(buf) + "." + hostname + "." + std::to_string(pid);
}

EventWriter::EventWriter(const std::string& dir, int64_t start_step, io::FileSystem& fs) : fs_(fs) {
  const double now = pipeline::UnixSeconds();
  // TensorBoard reads a run's event files in name order and purges a restart's orphaned steps
  // only when the restart's file comes after the interrupted run's (see tensorboard.h). A
  // resume within the same second as the killed run's start would otherwise be ordered by
  // pid ("1000" < "999"), so take a second later than every event file already here.
  int64_t seconds = static_cast<int64_t>(std::floor(now));
  for (const std::string& name : fs_.ListDir(dir)) {
    int64_t s;
    if (ParseFileSeconds(name.c_str(), &s) && s >= seconds) seconds = s + 1;
  }
  const std::string host = Hostname();
  const int64_t pid = static_cast<int64_t>(::getpid());
  for (int attempt = 0;; ++attempt) {
    path_ = io::JoinPath(dir, EventFileName(seconds, host, pid));
    // must_create: never append to another writer's file. Appends land whole at the end, so a
    // kill can only tear the last record.
    try {
      file_ = fs_.NewAppendableFile(path_, /*must_create=*/true);
      break;
    } catch (const Error&) {
      if (attempt == 100 || !fs_.Exists(path_)) throw;
    }
    ++seconds;  // created since we listed the directory (another writer in this process)
  }

  pb::Event version;
  version.set_wall_time(now);
  version.set_file_version(kFileVersion);
  pending_ += FrameRecord(version.SerializeAsString());
  // Written by fresh runs too: TensorBoard ignores the first START of a run and purges on the
  // later ones, so the first resume needs an earlier START to purge anything.
  pb::Event start;
  start.set_wall_time(now);
  start.set_step(start_step + 1);
  start.mutable_session_log()->set_status(pb::SessionLog::START);
  pending_ += FrameRecord(start.SerializeAsString());
  try {
    Flush();
  } catch (...) {
    file_.reset();
    try {
      fs_.Remove(path_);  // a file without its header would only confuse readers
    } catch (const Error&) {
    }
    throw;
  }
}

EventWriter::~EventWriter() {
  try {
    Flush();
  } catch (const std::exception&) {
    // Nothing to report to from a destructor; the job reported its last Flush failure already.
  }
}

void EventWriter::AddScalars(int64_t step, double wall_time,
                             const std::vector<std::pair<std::string, double>>& values) {
  pb::Event event;
  event.set_wall_time(wall_time);
  event.set_step(step);
  pb::Summary* summary = event.mutable_summary();
  for (const auto& [tag, value] : values) {
    pb::Summary::Value* v = summary->add_value();
    v->set_tag(tag);
    // In a oneof, so 0.0 is written too (a plain proto3 float field would omit it, and
    // TensorBoard would see a value without a scalar).
    v->set_simple_value(static_cast<float>(value));
  }
  pending_ += FrameRecord(event.SerializeAsString());
}

void EventWriter::Flush() {
  if (!broken_.empty()) throw Error(broken_);
  if (pending_.empty()) return;
  try {
    file_->Append(pending_);
  } catch (const Error& e) {
    // Cut the file back to its last whole record: a partial record left in the middle would
    // make everything after it unreadable once a later Flush succeeds.
    try {
      file_->Truncate(size_);
    } catch (const Error& t) {
      broken_ = std::string(e.what()) + "; then " + t.what() +
                ", so the file ends in a partial record and is no longer appended to";
      throw Error(broken_);
    }
    throw Error(std::string(e.what()) + " (" + std::to_string(pending_.size()) +
                " bytes of events kept for the next flush)");
  }
  size_ += pending_.size();
  pending_.clear();
}

}  // namespace bitbyte::tb

#pragma once
// TensorBoard event files: training scalars for `tensorboard --logdir RUN_DIR`. Torch-free and
// protobuf-free (the messages, runs/tensorboard.proto, stay in tensorboard.cc and the tests).
//
// RUN_DIR/events.out.tfevents.<unix seconds, 10 digits>.<hostname>.<pid>
//   One file per process. A sequence of TFRecord records, each one serialized Event:
//     uint64 LE  length of data
//     uint32 LE  MaskCrc(Crc32c(the 8 length bytes))
//     data       `length` bytes
//     uint32 LE  MaskCrc(Crc32c(data))
//   Record 0: Event{wall_time, file_version: "brain.Event:2"}.
//   Record 1: Event{wall_time, step: start_step + 1, session_log {status: START}}.
//   Then one Event{step, wall_time, summary {value {tag, simple_value}...}} per AddScalars.
//
// Resume and TensorBoard's "purge orphaned data". A run killed after step K whose last
// checkpoint is step C < K leaves scalars for steps C+1..K in its event file; the resumed run
// retraces those steps into a new file. TensorBoard reads a directory's event files in name
// order, and so that the new file always sorts last the writer names it with a second later
// than every event file already there when needed. Then:
//  - the Python loader (plugin_event_accumulator) treats every SessionLog.START after the
//    FIRST one it sees in a run as a restart and drops every point seen so far with step >=
//    that event's step: our START at C+1 drops the orphaned C+1..K. The first START is ignored,
//    so every writer, fresh runs included, writes one: otherwise the first resume's START would
//    be the first one seen, and nothing would be purged;
//  - the Rust loader (--load_fast) drops, per tag, the points with step >= s when a point of
//    step s arrives after them, so the retraced steps replace the orphaned ones.
//
// Durability: nothing is fsynced (like metrics.jsonl). Flush appends everything buffered with one
// append (O_APPEND), so a kill leaves at most one torn record at the end, which TensorBoard and
// ReadRecords(path, &torn) tolerate.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/file_io.h"

namespace bitbyte::tb {

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as TFRecord uses. Crc32c("123456789")
// is 0xE3069283. Crc32cExtend(Crc32c(a), b) == Crc32c(a + b); Crc32c(x) == Crc32cExtend(0, x).
uint32_t Crc32cExtend(uint32_t crc, std::string_view data);
uint32_t Crc32c(std::string_view data);

// TFRecord's masking of stored CRCs ((crc >> 15 | crc << 17) + 0xa282ead8), so that the CRC of
// data that itself holds CRCs is not degenerate. UnmaskCrc(MaskCrc(c)) == c.
uint32_t MaskCrc(uint32_t crc);
uint32_t UnmaskCrc(uint32_t masked);

// The largest record ReadRecords accepts and FrameRecord frames: an Event is one protobuf
// message, which cannot exceed 2 GiB. A longer length whose CRC checks out was not written by
// a TFRecord writer of protobufs: "impossible".
inline constexpr uint64_t kMaxRecordLength = (uint64_t{1} << 31) - 1;

// One framed record (header, data, footer; 16 bytes + data). Throws bitbyte::Error when data
// is longer than kMaxRecordLength.
std::string FrameRecord(std::string_view data);

// Reads every framed record of a file, checking BOTH CRCs of every record. A record cut off at
// the end of the file (a kill while writing: fewer than 12 header bytes, or a header whose
// length CRC checks out but whose data or footer lies past the end) is skipped when torn is
// given (*torn is set to the number skipped: 0 or 1), else it is a DataError. The length CRC is checked BEFORE deciding
// that a record is cut off, so a damaged length is never mistaken for a torn record. Any CRC
// mismatch or impossible length throws bitbyte::DataError naming the file, the record index
// (0-based) and its byte offset. A file that cannot be read throws bitbyte::Error.
std::vector<std::string> ReadRecords(const std::string& path, int* torn = nullptr);

// "events.out.tfevents.1700000000.host.123" (seconds zero-padded to 10 digits, as TensorFlow
// and TensorBoard's writers do, so that name order is time order).
std::string EventFileName(int64_t unix_seconds, const std::string& hostname, int64_t pid);

// Writes one event file. Not thread-safe (the training job's metrics node is serial).
class EventWriter {
 public:
  // Creates a new event file in `dir` (which must exist) and writes its first two records (file
  // version and SessionLog START at step start_step + 1; see above). start_step is the steps
  // completed at the start of this process: 0 for a fresh run, the checkpoint's step on resume.
  // Throws bitbyte::Error naming the path when the file cannot be created or written.
  EventWriter(const std::string& dir, int64_t start_step, io::FileSystem& fs = io::Default());
  ~EventWriter();  // flushes what is buffered, ignoring errors
  EventWriter(const EventWriter&) = delete;
  EventWriter& operator=(const EventWriter&) = delete;

  // Buffers one Event{step, wall_time} with one Summary.Value{tag, simple_value} per
  // (tag, value), in order. Values are stored as float (TensorBoard's scalar type).
  void AddScalars(int64_t step, double wall_time, const std::vector<std::pair<std::string, double>>& values);

  // Appends everything buffered with one append (io::FileSystem::NewAppendableFile) to the file. On failure throws
  // bitbyte::Error naming the path; the file is cut back to its last whole record and the events stay buffered for the
  // next Flush, so a later success leaves a file without a hole. If even the cut fails, every later Flush throws.
  void Flush();

  const std::string& path() const { return path_; }

 private:
  std::string path_;
  io::FileSystem& fs_;
  std::unique_ptr<io::WritableFile> file_;
  std::string pending_;  // framed records not yet written
  uint64_t size_ = 0;    // bytes of whole records in the file
  std::string broken_;   // why the file can no longer be appended to; empty while it can
};

}  // namespace bitbyte::tb

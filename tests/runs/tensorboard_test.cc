// TensorBoard event files: CRC32C against standard vectors and a bit-by-bit reference, TFRecord
// framing against golden bytes, every single-byte flip and every truncation of an event file
// classified correctly, scalars read back through the generated protos AND through a hand-written
// wire decoder that knows only TensorFlow's field numbers, TensorBoard's purge of orphaned steps
// on resume replayed over the files of a run directory, and write failures that leave no hole.
#include "runs/tensorboard.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "base/error.h"
#include "runs/tensorboard.pb.h"
#include "tests/test_util.h"

namespace bitbyte::tb {
namespace {

using testing::TempDir;

// ---------------------------------------------------------------------------------------------
// Helpers

// CRC-32C one bit at a time, straight from the definition (reflected, init and xor-out ~0).
uint32_t BitwiseCrc32c(std::string_view data) {
  uint32_t c = 0xffffffffu;
  for (const char ch : data) {
    c ^= static_cast<unsigned char>(ch);
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
  }
  return c ^ 0xffffffffu;
}

std::string Unhex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return out;
}

double Now() { return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count(); }

// Where each record of a well-formed file starts, and the file size at the end.
std::vector<uint64_t> RecordStarts(const std::vector<std::string>& records) {
  std::vector<uint64_t> starts;
  uint64_t off = 0;
  for (const std::string& r : records) {
    starts.push_back(off);
    off += 16 + r.size();
  }
  starts.push_back(off);
  return starts;
}

// A small but complete event file: header, START, scalars (one with several values, one empty).
std::string SmallEventFile(const TempDir& t, std::vector<std::string>* records) {
  ::mkdir((t / "small").c_str(), 0755);
  std::string path;
  {
    EventWriter w(t / "small", 0);
    w.AddScalars(1, 1000.5, {{"train/loss", 5.5}, {"train/lr", 1e-4}});
    w.AddScalars(2, 1001.25, {{"train/loss", 5.25}});
    w.AddScalars(2, 1001.5, {});
    w.AddScalars(3, 1002.0, {{"val/bpb", 2.0}});
    w.Flush();
    path = w.path();
  }
  *records = ReadRecords(path);
  EXPECT_EQ(records->size(), 6u);
  return testing::ReadFile(path);
}

pb::Event ParseEvent(const std::string& record) {
  pb::Event e;
  EXPECT_TRUE(e.ParseFromString(record));
  return e;
}

// ---------------------------------------------------------------------------------------------
// An independent decoder of the protobuf wire format (varint, fixed64, length-delimited, fixed32)
// that knows nothing but TensorFlow's field numbers (event.proto / summary.proto).

struct WireField {
  int number = 0, wire_type = 0;
  uint64_t varint = 0;  // wire types 0, 1 (the 8 bytes) and 5 (the 4 bytes)
  std::string bytes;    // wire type 2
};

std::vector<WireField> DecodeWire(std::string_view s) {
  std::vector<WireField> out;
  size_t i = 0;
  auto varint = [&] {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (i >= s.size()) throw std::runtime_error("varint runs past the end");
      const auto b = static_cast<unsigned char>(s[i++]);
      v |= uint64_t{b & 0x7fu} << shift;
      if (!(b & 0x80)) return v;
    }
    throw std::runtime_error("varint too long");
  };
  auto fixed = [&](int n) {
    if (s.size() - i < static_cast<size_t>(n)) throw std::runtime_error("fixed field runs past the end");
    uint64_t v = 0;
    for (int k = n - 1; k >= 0; --k) v = v << 8 | static_cast<unsigned char>(s[i + k]);
    i += n;
    return v;
  };
  while (i < s.size()) {
    const uint64_t key = varint();
    WireField f;
    f.number = static_cast<int>(key >> 3);
    f.wire_type = static_cast<int>(key & 7);
    switch (f.wire_type) {
      case 0: f.varint = varint(); break;
      case 1: f.varint = fixed(8); break;
      case 5: f.varint = fixed(4); break;
      case 2: {
        const uint64_t n = varint();
        if (n > s.size() - i) throw std::runtime_error("length-delimited field runs past the end");
        f.bytes.assign(s.substr(i, n));
        i += n;
        break;
      }
      default: throw std::runtime_error("unexpected wire type " + std::to_string(f.wire_type));
    }
    out.push_back(std::move(f));
  }
  return out;
}

// An Event as TensorFlow's numbering reads it.
struct WireEvent {
  std::optional<double> wall_time;                                                   // 1: double
  int64_t step = 0;                                                                  // 2: int64
  std::optional<std::string> file_version;                                           // 3: string
  std::optional<std::vector<std::pair<std::string, std::optional<float>>>> summary;  // 5: Summary
  std::optional<int64_t> session_status;  // 7: SessionLog, its 1: SessionStatus
};

WireEvent DecodeEvent(const std::string& record) {
  WireEvent e;
  for (const WireField& f : DecodeWire(record)) {
    if (f.number == 1) {
      EXPECT_EQ(f.wire_type, 1) << "Event.wall_time is a double";
      double d;
      std::memcpy(&d, &f.varint, 8);
      e.wall_time = d;
    } else if (f.number == 2) {
      EXPECT_EQ(f.wire_type, 0) << "Event.step is an int64";
      e.step = static_cast<int64_t>(f.varint);
    } else if (f.number == 3) {
      EXPECT_EQ(f.wire_type, 2) << "Event.file_version is a string";
      e.file_version = f.bytes;
    } else if (f.number == 5) {
      EXPECT_EQ(f.wire_type, 2) << "Event.summary is a message";
      e.summary.emplace();
      for (const WireField& v : DecodeWire(f.bytes)) {
        EXPECT_EQ(v.number, 1) << "Summary.value is field 1";
        EXPECT_EQ(v.wire_type, 2);
        std::string tag;
        std::optional<float> value;
        for (const WireField& g : DecodeWire(v.bytes)) {
          if (g.number == 1) {
            EXPECT_EQ(g.wire_type, 2) << "Summary.Value.tag is a string";
            tag = g.bytes;
          } else if (g.number == 2) {
            EXPECT_EQ(g.wire_type, 5) << "Summary.Value.simple_value is a float";
            const uint32_t bits = static_cast<uint32_t>(g.varint);
            float x;
            std::memcpy(&x, &bits, 4);
            value = x;
          } else {
            ADD_FAILURE() << "unexpected Summary.Value field " << g.number;
          }
        }
        e.summary->emplace_back(tag, value);
      }
    } else if (f.number == 7) {
      EXPECT_EQ(f.wire_type, 2) << "Event.session_log is a message";
      e.session_status = 0;
      for (const WireField& g : DecodeWire(f.bytes))
        if (g.number == 1) {
          EXPECT_EQ(g.wire_type, 0) << "SessionLog.status is an enum";
          e.session_status = static_cast<int64_t>(g.varint);
        }
    } else {
      ADD_FAILURE() << "unexpected Event field " << f.number;
    }
  }
  return e;
}

// ---------------------------------------------------------------------------------------------
// CRC32C and masking

TEST(TensorboardCrc, StandardCheckValues) {
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);  // the CRC catalogue's check value
  EXPECT_EQ(Crc32c(""), 0u);
  // RFC 3720 (iSCSI) B.4 test vectors.
  EXPECT_EQ(Crc32c(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(Crc32c(std::string(32, '\xff')), 0x62A8AB43u);
  std::string up, down;
  for (int i = 0; i < 32; ++i) {
    up.push_back(static_cast<char>(i));
    down.push_back(static_cast<char>(31 - i));
  }
  EXPECT_EQ(Crc32c(up), 0x46DD794Eu);
  EXPECT_EQ(Crc32c(down), 0x113FDB5Cu);
}

TEST(TensorboardCrc, MatchesBitwiseReferenceAndExtendsOnRandomInputs) {
  std::mt19937_64 rng(1);
  for (int i = 0; i < 2000; ++i) {
    const size_t n = i < 64 ? static_cast<size_t>(i) : rng() % (i % 50 == 0 ? 20000 : 300);
    const std::string s = testing::RandomBytes(rng, n);
    ASSERT_EQ(Crc32c(s), BitwiseCrc32c(s)) << "length " << n;
    const size_t cut = n ? rng() % (n + 1) : 0;
    ASSERT_EQ(Crc32cExtend(Crc32c(s.substr(0, cut)), s.substr(cut)), Crc32c(s)) << "length " << n << " cut " << cut;
  }
}

TEST(TensorboardCrc, MaskIsTfRecordsAndInvertible) {
  EXPECT_EQ(MaskCrc(0), 0xa282ead8u);
  EXPECT_EQ(MaskCrc(0xE3069283u), 0xc78ab0e5u);  // computed independently (Python)
  std::mt19937 rng(2);
  for (int i = 0; i < 100000; ++i) {
    const uint32_t c = static_cast<uint32_t>(rng());
    // Rotate right by 15, add the delta (mod 2^32).
    uint32_t want = c;
    for (int k = 0; k < 15; ++k) want = (want >> 1) | ((want & 1u) << 31);
    want += 0xa282ead8u;
    ASSERT_EQ(MaskCrc(c), want);
    ASSERT_EQ(UnmaskCrc(MaskCrc(c)), c);
  }
}

// ---------------------------------------------------------------------------------------------
// Record framing

TEST(TensorboardRecord, FramesLikeTfRecordGoldenBytes) {
  // Bytes computed by an independent (Python, bit-by-bit CRC) TFRecord writer.
  EXPECT_EQ(FrameRecord(""), Unhex("000000000000000029039807d8ea82a2"));
  EXPECT_EQ(FrameRecord("hello"), Unhex("0500000000000000eab2043e68656c6c6fbb1f1c19"));
  // Layout on random data: LE length, masked CRC of those 8 bytes, data, masked CRC of the data.
  std::mt19937_64 rng(3);
  for (int i = 0; i < 200; ++i) {
    const std::string d = testing::RandomBytes(rng, rng() % 600);
    const std::string r = FrameRecord(d);
    ASSERT_EQ(r.size(), d.size() + 16);
    uint64_t len = 0;
    for (int k = 7; k >= 0; --k) len = len << 8 | static_cast<unsigned char>(r[k]);
    EXPECT_EQ(len, d.size());
    auto u32 = [&](size_t at) {
      uint32_t v = 0;
      for (int k = 3; k >= 0; --k) v = v << 8 | static_cast<unsigned char>(r[at + k]);
      return v;
    };
    EXPECT_EQ(u32(8), MaskCrc(BitwiseCrc32c(r.substr(0, 8))));
    EXPECT_EQ(r.substr(12, d.size()), d);
    EXPECT_EQ(u32(12 + d.size()), MaskCrc(BitwiseCrc32c(d)));
  }
}

TEST(TensorboardRecord, RoundTripsRandomRecords) {
  std::mt19937_64 rng(4);
  TempDir t;
  for (int iter = 0; iter < 30; ++iter) {
    std::vector<std::string> records;
    const int n = iter == 0 ? 0 : static_cast<int>(rng() % 40);
    for (int i = 0; i < n; ++i) {
      const uint64_t kind = rng() % 10;
      const size_t size = kind == 0 ? 0 : kind == 1 ? 1 : kind < 9 ? rng() % 2000 : 100000 + rng() % 100000;
      records.push_back(testing::RandomBytes(rng, size));
    }
    if (iter == 1) records.push_back(testing::RandomBytes(rng, 3 << 20));  // a large one
    std::string file;
    for (const std::string& r : records) file += FrameRecord(r);
    const std::string path = t / ("r" + std::to_string(iter));
    testing::WriteFile(path, file);
    EXPECT_EQ(ReadRecords(path), records) << "iteration " << iter;
    int torn = -1;
    EXPECT_EQ(ReadRecords(path, &torn), records);
    EXPECT_EQ(torn, 0);
  }
  EXPECT_THROW(ReadRecords(t / "missing"), Error);
}

// A flip anywhere must be an error, with torn counting or without: a flip in a length is caught
// by the length's CRC before the reader could take the record for one cut off by a kill; a flip
// in a CRC or the data by that CRC (CRC32C catches every burst of up to 32 bits).
TEST(TensorboardRecord, EveryByteFlipIsAnError) {
  TempDir t;
  std::vector<std::string> records;
  const std::string file = SmallEventFile(t, &records);
  const std::vector<uint64_t> starts = RecordStarts(records);
  ASSERT_EQ(starts.back(), file.size());
  const std::string path = t / "flipped";
  const unsigned char masks[] = {0x01, 0x80, 0xff, 0x5a};
  for (size_t off = 0; off < file.size(); ++off) {
    const size_t index = static_cast<size_t>(std::upper_bound(starts.begin(), starts.end(), off) - starts.begin()) - 1;
    for (const unsigned char m : masks) {
      std::string bad = file;
      bad[off] = static_cast<char>(bad[off] ^ m);
      testing::WriteFile(path, bad);
      for (const bool count_torn : {false, true}) {
        int torn = 0;
        try {
          ReadRecords(path, count_torn ? &torn : nullptr);
          ADD_FAILURE() << "flip 0x" << std::hex << int{m} << std::dec << " at offset " << off << " accepted";
        } catch (const DataError& e) {
          const std::string msg = e.what();
          const std::string where =
              path + ": record " + std::to_string(index) + " at offset " + std::to_string(starts[index]);
          EXPECT_NE(msg.find(where), std::string::npos) << msg << " (want " << where << ")";
          EXPECT_NE(msg.find("checksum mismatch"), std::string::npos) << msg;
        }
      }
    }
  }
}

// Cut at every offset: the complete records before the cut come back; a cut inside a record is
// one torn record, counted when asked, else an error; a cut on a boundary is a clean file.
TEST(TensorboardRecord, TruncationAtEveryOffset) {
  TempDir t;
  std::vector<std::string> records;
  const std::string file = SmallEventFile(t, &records);
  const std::vector<uint64_t> starts = RecordStarts(records);
  const std::string path = t / "cut";
  for (size_t k = 0; k <= file.size(); ++k) {
    testing::WriteFile(path, file.substr(0, k));
    const size_t whole = static_cast<size_t>(std::upper_bound(starts.begin(), starts.end(), k) - starts.begin()) - 1;
    const bool boundary = starts[whole] == k;
    const std::vector<std::string> want(records.begin(), records.begin() + whole);
    int torn = -1;
    EXPECT_EQ(ReadRecords(path, &torn), want) << "cut at " << k;
    EXPECT_EQ(torn, boundary ? 0 : 1) << "cut at " << k;
    if (boundary) {
      EXPECT_EQ(ReadRecords(path), want) << "cut at " << k;
    } else {
      try {
        ReadRecords(path);
        ADD_FAILURE() << "cut at " << k << " accepted without torn";
      } catch (const DataError& e) {
        const std::string where =
            path + ": record " + std::to_string(whole) + " at offset " + std::to_string(starts[whole]);
        EXPECT_NE(std::string(e.what()).find(where), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("cut off"), std::string::npos) << e.what();
      }
    }
  }
}

// A length whose CRC checks out but that no protobuf writer could produce: an error, never a
// torn record (even though it runs past the end of the file).
TEST(TensorboardRecord, ImpossibleLengthIsAnError) {
  TempDir t;
  const std::string path = t / "huge";
  for (const uint64_t len : {kMaxRecordLength + 1, uint64_t{1} << 40, ~uint64_t{0}}) {
    std::string header;
    for (int k = 0; k < 8; ++k) header.push_back(static_cast<char>((len >> (8 * k)) & 0xff));
    const uint32_t crc = MaskCrc(Crc32c(header));
    for (int k = 0; k < 4; ++k) header.push_back(static_cast<char>((crc >> (8 * k)) & 0xff));
    testing::WriteFile(path, FrameRecord("ok") + header + std::string(100, 'x'));
    for (const bool count_torn : {false, true}) {
      int torn = 0;
      try {
        ReadRecords(path, count_torn ? &torn : nullptr);
        ADD_FAILURE() << "length " << len << " accepted";
      } catch (const DataError& e) {
        EXPECT_NE(std::string(e.what()).find(path + ": record 1 at offset 18: impossible length"), std::string::npos)
            << e.what();
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// EventWriter

TEST(TensorBoardWriter, ScalarsReadBackThroughGeneratedProtos) {
  TempDir t;
  std::mt19937_64 rng(5);
  struct Written {
    int64_t step;
    double wall;
    std::vector<std::pair<std::string, double>> values;
  };
  std::vector<Written> written;
  const double special[] = {0.0,
                            -0.0,
                            1e-45,
                            -3.5,
                            3.4e38,
                            1e39,
                            std::numeric_limits<double>::infinity(),
                            std::numeric_limits<double>::quiet_NaN(),
                            0.1,
                            123456789.123};
  const double before = Now();
  std::string path;
  {
    EventWriter w(t.path(), 0);
    path = w.path();
    for (int64_t step = 1; step <= 300; ++step) {
      Written rec{step, 1.7e9 + static_cast<double>(step) * 0.37 + static_cast<double>(rng() % 1000) / 1024.0, {}};
      const int n = static_cast<int>(rng() % 8);
      for (int i = 0; i < n; ++i) {
        const double v = rng() % 3 == 0 ? special[rng() % 10]
                                        : std::ldexp(static_cast<double>(rng() % 1000000) - 500000.0,
                                                     static_cast<int>(rng() % 80) - 60);
        rec.values.emplace_back(i % 2 ? "train/loss" : "val/bpb_" + std::to_string(i), v);
      }
      w.AddScalars(rec.step, rec.wall, rec.values);
      written.push_back(rec);
      if (rng() % 7 == 0) w.Flush();  // flushes in between and at the end (destructor)
    }
  }
  const double after = Now();

  // The name: RUN_DIR/events.out.tfevents.<10 digits>.<hostname>.<pid>.
  char host[256] = {};
  ASSERT_EQ(::gethostname(host, sizeof host - 1), 0);
  const std::string prefix = t.path() + "/events.out.tfevents.";
  ASSERT_EQ(path.rfind(prefix, 0), 0u) << path;
  const std::string rest = path.substr(prefix.size());
  const std::string suffix = "." + std::string(host) + "." + std::to_string(::getpid());
  ASSERT_EQ(rest.size(), 10 + suffix.size()) << path;
  EXPECT_EQ(rest.substr(10), suffix);
  const long long secs = std::stoll(rest.substr(0, 10));
  EXPECT_GE(secs, static_cast<long long>(before));
  EXPECT_LE(secs, static_cast<long long>(after));

  int torn = -1;
  const std::vector<std::string> records = ReadRecords(path, &torn);
  EXPECT_EQ(torn, 0);
  ASSERT_EQ(records.size(), 2 + written.size());
  const pb::Event version = ParseEvent(records[0]);
  EXPECT_EQ(version.what_case(), pb::Event::kFileVersion);
  EXPECT_EQ(version.file_version(), "brain.Event:2");
  EXPECT_GE(version.wall_time(), before - 1);
  EXPECT_LE(version.wall_time(), after + 1);
  const pb::Event start = ParseEvent(records[1]);
  EXPECT_EQ(start.what_case(), pb::Event::kSessionLog);
  EXPECT_EQ(start.session_log().status(), pb::SessionLog::START);
  EXPECT_EQ(start.step(), 1);  // a fresh run writes its START too (see tensorboard.h)
  for (size_t i = 0; i < written.size(); ++i) {
    const pb::Event e = ParseEvent(records[2 + i]);
    ASSERT_EQ(e.what_case(), pb::Event::kSummary) << i;
    EXPECT_EQ(e.step(), written[i].step);
    EXPECT_EQ(e.wall_time(), written[i].wall);  // exact: a double on disk
    ASSERT_EQ(e.summary().value_size(), static_cast<int>(written[i].values.size()));
    for (int k = 0; k < e.summary().value_size(); ++k) {
      const pb::Summary::Value& v = e.summary().value(k);
      EXPECT_EQ(v.tag(), written[i].values[k].first);
      ASSERT_EQ(v.value_case(), pb::Summary::Value::kSimpleValue) << "step " << written[i].step << " " << v.tag();
      const float want = static_cast<float>(written[i].values[k].second);
      if (std::isnan(want))
        EXPECT_TRUE(std::isnan(v.simple_value()));
      else
        EXPECT_EQ(v.simple_value(), want) << written[i].values[k].second;
    }
  }
}

// The same records through a decoder that knows only TensorFlow's field numbers and wire types:
// catches a field number or type in tensorboard.proto that differs from TensorFlow's, which the
// generated code, reading its own output, never could. Also checks that a 0.0 value is on the
// wire (simple_value is in a oneof; a plain proto3 float would drop it).
TEST(TensorBoardWriter, RecordsDecodeWithTensorFlowFieldNumbers) {
  TempDir t;
  std::string path;
  {
    EventWriter w(t.path(), 41);
    w.AddScalars(42, 1700000000.25, {{"train/loss", 0.0}, {"train/lr", 3e-4}, {"val/bpb", -1.5}});
    w.AddScalars(43, 1700000001.5, {{"train/grad_norm", 7.0}});
    path = w.path();
  }
  const std::vector<std::string> records = ReadRecords(path);
  ASSERT_EQ(records.size(), 4u);
  const WireEvent version = DecodeEvent(records[0]);
  EXPECT_EQ(version.file_version, std::optional<std::string>("brain.Event:2"));
  EXPECT_TRUE(version.wall_time.has_value());
  EXPECT_FALSE(version.summary.has_value());
  const WireEvent start = DecodeEvent(records[1]);
  EXPECT_EQ(start.session_status, std::optional<int64_t>(1));  // SessionLog.START
  EXPECT_EQ(start.step, 42);
  const WireEvent a = DecodeEvent(records[2]);
  EXPECT_EQ(a.wall_time, std::optional<double>(1700000000.25));
  EXPECT_EQ(a.step, 42);
  ASSERT_TRUE(a.summary.has_value());
  ASSERT_EQ(a.summary->size(), 3u);
  EXPECT_EQ((*a.summary)[0].first, "train/loss");
  EXPECT_EQ((*a.summary)[0].second, std::optional<float>(0.0f));
  EXPECT_EQ((*a.summary)[1].first, "train/lr");
  EXPECT_EQ((*a.summary)[1].second, std::optional<float>(3e-4f));
  EXPECT_EQ((*a.summary)[2].second, std::optional<float>(-1.5f));
  const WireEvent b = DecodeEvent(records[3]);
  EXPECT_EQ(b.step, 43);
  ASSERT_TRUE(b.summary.has_value());
  ASSERT_EQ(b.summary->size(), 1u);
  EXPECT_EQ((*b.summary)[0].first, "train/grad_norm");
  EXPECT_EQ((*b.summary)[0].second, std::optional<float>(7.0f));
}

// A run killed and resumed twice from older checkpoints, the resumes started within the same
// second. Reading the directory's event files in name order the way TensorBoard does must show
// each step once, from the last process that wrote it: both the Python loader's rule (every
// SessionLog.START after the run's first purges the points with step >= its step) and the Rust
// loader's (per tag, a point of step s drops the earlier points with step >= s).
TEST(TensorBoardWriter, ResumePurgesOrphanedStepsLikeTensorBoard) {
  TempDir t;
  struct Proc {
    int64_t start, last;
    double base;  // value of step s is base + s
  };
  const Proc procs[] = {{0, 10, 100}, {6, 12, 200}, {9, 15, 300}};
  std::vector<std::string> paths;
  for (const Proc& p : procs) {
    EventWriter w(t.path(), p.start);
    for (int64_t s = p.start + 1; s <= p.last; ++s) {
      w.AddScalars(s, 1.0 * s, {{"train/loss", p.base + s}});
      if (s % 5 == 0) w.AddScalars(s, 1.0 * s, {{"val/bpb", p.base + s}});
    }
    w.Flush();
    paths.push_back(w.path());
  }
  std::vector<std::string> names;
  for (const auto& [name, data] : testing::DirContents(t.path())) names.push_back(t / name);
  ASSERT_EQ(names, paths) << "event files must sort in the order they were written";

  using Series = std::map<std::string, std::vector<std::pair<int64_t, float>>>;
  Series python, rust;
  bool seen_start = false;
  int file_version = 0;
  for (const std::string& path : names) {
    for (const std::string& r : ReadRecords(path)) {
      const pb::Event e = ParseEvent(r);
      if (e.what_case() == pb::Event::kFileVersion) {
        ASSERT_EQ(e.file_version().rfind("brain.Event:", 0), 0u);
        file_version = std::stoi(e.file_version().substr(12));
      }
      ASSERT_GE(file_version, 2) << "TensorBoard purges on SessionLog.START only from file version 2";
      if (e.what_case() == pb::Event::kSessionLog && e.session_log().status() == pb::SessionLog::START) {
        if (seen_start) {
          for (auto& [tag, points] : python)
            points.erase(std::remove_if(points.begin(), points.end(), [&](auto& p) { return p.first >= e.step(); }),
                         points.end());
        }
        seen_start = true;
      }
      if (e.what_case() == pb::Event::kSummary) {
        for (const pb::Summary::Value& v : e.summary().value()) {
          python[v.tag()].emplace_back(e.step(), v.simple_value());
          auto& points = rust[v.tag()];
          points.erase(std::remove_if(points.begin(), points.end(), [&](auto& p) { return p.first >= e.step(); }),
                       points.end());
          points.emplace_back(e.step(), v.simple_value());
        }
      }
    }
  }
  Series want;
  for (int64_t s = 1; s <= 15; ++s) {
    const double base = s <= 6 ? 100 : s <= 9 ? 200 : 300;
    want["train/loss"].emplace_back(s, static_cast<float>(base + s));
    if (s % 5 == 0) want["val/bpb"].emplace_back(s, static_cast<float>(base + s));
  }
  EXPECT_EQ(python, want);
  EXPECT_EQ(rust, want);
}

TEST(TensorBoardWriter, NewFileSortsAfterEveryExistingEventFile) {
  TempDir t;
  const int64_t future = static_cast<int64_t>(Now()) + 100000;
  testing::WriteFile(t / EventFileName(future, "zzz-other-host", 99999), "");
  testing::WriteFile(t / "events.out.tfevents.notatime", "");
  testing::WriteFile(t / "metrics.jsonl", "");
  char host[256] = {};
  ASSERT_EQ(::gethostname(host, sizeof host - 1), 0);
  EventWriter a(t.path(), 0);
  EXPECT_EQ(a.path(), t / EventFileName(future + 1, host, ::getpid()));
  EventWriter b(t.path(), 0);  // the same process, within the same second
  EXPECT_GT(b.path(), a.path());
  EXPECT_NE(b.path(), a.path());
  EXPECT_EQ(EventFileName(1700000000, "h", 7), "events.out.tfevents.1700000000.h.7");
  EXPECT_EQ(EventFileName(5, "h.example.org", 12), "events.out.tfevents.0000000005.h.example.org.12");
}

TEST(TensorBoardWriter, DestructorFlushesAndMissingDirectoryIsNamed) {
  TempDir t;
  std::string path;
  {
    EventWriter w(t.path(), 7);
    w.AddScalars(8, 1.0, {{"train/loss", 2.5}});
    path = w.path();
  }
  const std::vector<std::string> records = ReadRecords(path);
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(ParseEvent(records[1]).step(), 8);
  EXPECT_EQ(ParseEvent(records[2]).summary().value(0).simple_value(), 2.5f);
  try {
    EventWriter w(t / "no/such/dir", 0);
    ADD_FAILURE() << "writer created in a missing directory";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(t / "no/such/dir"), std::string::npos) << e.what();
  }
}

// A write that fails part way (here: the file size limit, which makes write(2) short and then
// fail with EFBIG) throws naming the file, cuts it back to whole records, and keeps the events:
// once writing works again, the file holds every record and no hole.
TEST(TensorBoardWriter, FailedFlushLeavesWholeRecordsAndRetries) {
  TempDir t;
  struct Restore {
    rlimit old;
    void (*old_handler)(int);
    Restore() {
      ::getrlimit(RLIMIT_FSIZE, &old);
      old_handler = ::signal(SIGXFSZ, SIG_IGN);  // EFBIG instead of death
    }
    ~Restore() {
      ::setrlimit(RLIMIT_FSIZE, &old);
      ::signal(SIGXFSZ, old_handler);
    }
  } restore;
  EventWriter w(t.path(), 0);
  const std::string path = w.path();
  const off_t header_size = static_cast<off_t>(testing::ReadFile(path).size());
  ASSERT_GT(header_size, 0);
  for (int64_t s = 1; s <= 5; ++s) w.AddScalars(s, 1.0 * s, {{"train/loss", 1.0 * s}, {"train/lr", 0.5}});

  rlimit small = restore.old;
  small.rlim_cur = static_cast<rlim_t>(header_size + 30);  // room for part of one record
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  for (int attempt = 0; attempt < 2; ++attempt) {  // failing again does not grow the file
    try {
      w.Flush();
      ADD_FAILURE() << "flush past the file size limit succeeded";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
    struct stat st;
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_size, header_size) << "the partial record must be cut off";
    int torn = -1;
    EXPECT_EQ(ReadRecords(path, &torn).size(), 2u);
    EXPECT_EQ(torn, 0);
  }
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &restore.old), 0);
  w.Flush();
  const std::vector<std::string> records = ReadRecords(path);
  ASSERT_EQ(records.size(), 7u);
  for (int64_t s = 1; s <= 5; ++s) {
    const pb::Event e = ParseEvent(records[1 + s]);
    EXPECT_EQ(e.step(), s);
    EXPECT_EQ(e.summary().value(0).simple_value(), static_cast<float>(s));
  }
}

}  // namespace
}  // namespace bitbyte::tb

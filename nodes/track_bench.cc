#include "nodes/track_bench.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>

#include "sharding/error.h"

namespace bitbyte::train {
namespace {

std::string Fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

std::string Bpb(const MeanStd& m) {
  return Fmt("%.4f", m.mean) + (m.n >= 2 ? " ± " + Fmt("%.4f", m.std) : std::string(" (one seed)"));
}

std::string Thousands(int64_t v) {
  std::string s = std::to_string(v < 0 ? -v : v);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<size_t>(i), ",");
  return (v < 0 ? "-" : "") + s;
}

std::vector<double> Field(const TrackResult& t, double TrackRun::*field) {
  std::vector<double> v;
  for (const TrackRun& r : t.runs) v.push_back(r.*field);
  return v;
}

MeanStd BpbOf(const TrackResult& t) { return Summarise(Field(t, &TrackRun::val_bpb)); }

// Mean over seeds of each evaluation (by position: every seed evaluates at the same steps).
struct CurvePoint {
  int64_t step = 0;
  double elapsed_s = 0;
  MeanStd bpb;
};
std::vector<CurvePoint> MeanCurve(const TrackResult& t) {
  std::map<int64_t, std::vector<const EvalRecord*>> by_step;
  for (const TrackRun& r : t.runs)
    for (const EvalRecord& e : r.curve) by_step[e.step].push_back(&e);
  std::vector<CurvePoint> out;
  for (const auto& [step, evals] : by_step) {
    CurvePoint p;
    p.step = step;
    std::vector<double> bpb;
    for (const EvalRecord* e : evals) {
      p.elapsed_s += e->elapsed_s / static_cast<double>(evals.size());
      bpb.push_back(e->val_bpb);
    }
    p.bpb = Summarise(bpb);
    out.push_back(p);
  }
  return out;
}

// Val bpb of the mean curve at elapsed time `t`, linear between evaluations; NaN before the first.
double BpbAtTime(const std::vector<CurvePoint>& curve, double t) {
  if (curve.empty() || t < curve.front().elapsed_s) return std::nan("");
  for (size_t i = 1; i < curve.size(); ++i) {
    const CurvePoint &a = curve[i - 1], &b = curve[i];
    if (t <= b.elapsed_s) {
      const double f = b.elapsed_s > a.elapsed_s ? (t - a.elapsed_s) / (b.elapsed_s - a.elapsed_s) : 1.0;
      return a.bpb.mean + f * (b.bpb.mean - a.bpb.mean);
    }
  }
  return curve.back().bpb.mean;
}

double MeanOf(const TrackResult& t, double TrackRun::*field) { return Summarise(Field(t, field)).mean; }

}  // namespace

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

MeanStd Summarise(const std::vector<double>& v) {
  MeanStd m;
  m.n = v.size();
  if (v.empty()) return m;
  for (double x : v) m.mean += x;
  m.mean /= static_cast<double>(v.size());
  if (v.size() < 2) return m;
  double ss = 0;
  for (double x : v) ss += (x - m.mean) * (x - m.mean);
  m.std = std::sqrt(ss / static_cast<double>(v.size() - 1));
  return m;
}

TrackRun SummariseRun(const RunDirContents& run, int64_t steps, uint64_t bytes_per_step) {
  TrackRun r;
  std::vector<double> walls;
  const int64_t skip = steps / 10;
  for (const StepRecord& s : run.steps)
    if (s.step > skip && std::isfinite(s.step_wall_s) && s.step_wall_s > 0) walls.push_back(s.step_wall_s);
  if (walls.empty()) throw Error(run.dir + "/metrics.jsonl: no timed step records");
  r.bytes_per_s = static_cast<double>(bytes_per_step) / Median(walls);
  r.curve = run.evals;
  std::sort(r.curve.begin(), r.curve.end(), [](const EvalRecord& a, const EvalRecord& b) { return a.step < b.step; });
  if (r.curve.empty() || r.curve.back().step != steps)
    throw Error(run.dir + "/metrics.jsonl: no evaluation at the last step " + std::to_string(steps) +
                " (the run did not finish)");
  r.val_bpb = r.curve.back().val_bpb;
  return r;
}

Gap CompareBpb(const TrackResult& a, const TrackResult& b) {
  const MeanStd ma = BpbOf(a), mb = BpbOf(b);
  Gap g;
  g.delta = mb.mean - ma.mean;
  g.known = ma.n >= 2 && mb.n >= 2;
  if (g.known) {
    g.noise = 2.0 * std::sqrt(ma.std * ma.std / static_cast<double>(ma.n) + mb.std * mb.std / static_cast<double>(mb.n));
    g.clear = std::fabs(g.delta) > g.noise;
  }
  return g;
}

std::string Recommend(const std::vector<TrackResult>& tracks) {
  if (tracks.empty()) return "No track was trained.\n";
  std::vector<const TrackResult*> order;
  for (const TrackResult& t : tracks) order.push_back(&t);
  std::stable_sort(order.begin(), order.end(),
                   [](const TrackResult* a, const TrackResult* b) { return BpbOf(*a).mean < BpbOf(*b).mean; });
  const TrackResult& best = *order.front();
  if (order.size() == 1) return "Only `" + best.name + "` was trained: there is nothing to compare.\n";
  std::ostringstream o;
  std::vector<const TrackResult*> tied;  // within noise of the best (or noise unknown)
  for (size_t i = 1; i < order.size(); ++i) {
    const Gap g = CompareBpb(best, *order[i]);
    if (!g.clear) tied.push_back(order[i]);
  }
  auto speed = [](const TrackResult& a, const TrackResult& b) {
    return Fmt("%.2f×", MeanOf(a, &TrackRun::bytes_per_s) / MeanOf(b, &TrackRun::bytes_per_s));
  };
  auto memory = [](const TrackResult& a, const TrackResult& b) {
    return Fmt("%.2f×", MeanOf(a, &TrackRun::peak_rss_mib) / MeanOf(b, &TrackRun::peak_rss_mib));
  };
  if (tied.empty()) {
    o << "**Recommendation: `" << best.name << "`.** At matched size and budget it reaches the lowest val bpb, "
      << Bpb(BpbOf(best)) << ", and the gap to every other track is beyond noise (more than twice its standard "
      << "error over seeds):\n\n";
    for (size_t i = 1; i < order.size(); ++i) {
      const Gap g = CompareBpb(best, *order[i]);
      o << "- `" << order[i]->name << "`: " << Fmt("%+.4f", g.delta) << " bpb (noise ±" << Fmt("%.4f", g.noise)
        << "); `" << best.name << "` trains at " << speed(best, *order[i]) << " its bytes/s with "
        << memory(best, *order[i]) << " its peak memory.\n";
    }
    return o.str();
  }
  // Within noise of the best: quality does not decide, so say so and let throughput decide.
  std::vector<const TrackResult*> group = {&best};
  group.insert(group.end(), tied.begin(), tied.end());
  const TrackResult* fastest = *std::max_element(group.begin(), group.end(), [](const TrackResult* a, const TrackResult* b) {
    return MeanOf(*a, &TrackRun::bytes_per_s) < MeanOf(*b, &TrackRun::bytes_per_s);
  });
  o << "**No track is better on val bpb at this budget.** ";
  for (const TrackResult* t : tied) {
    const Gap g = CompareBpb(best, *t);
    o << "`" << best.name << "` and `" << t->name << "` differ by " << Fmt("%.4f", g.delta) << " bpb, ";
    if (g.known) o << "within noise (twice the standard error over seeds is " << Fmt("%.4f", g.noise) << "). ";
    else o << "and with a single seed the noise cannot be told. ";
  }
  o << "\n\n**Recommendation: `" << fastest->name << "`**, on throughput at equal quality: ";
  bool first = true;
  for (const TrackResult* t : group) {
    if (t == fastest) continue;
    o << (first ? "" : "; ") << "it trains at " << speed(*fastest, *t) << " the bytes/s of `" << t->name << "` with "
      << memory(*fastest, *t) << " its peak memory";
    first = false;
  }
  o << ". More seeds or a larger budget could still separate them.\n";
  for (size_t i = 1 + tied.size(); i < order.size(); ++i) {
    const Gap g = CompareBpb(best, *order[i]);
    o << "\n`" << order[i]->name << "` is behind beyond noise: " << Fmt("%+.4f", g.delta) << " bpb (noise ±"
      << Fmt("%.4f", g.noise) << ").\n";
  }
  return o.str();
}

std::string TracksMarkdown(const TracksReport& r) {
  std::ostringstream o;
  o << "# Tracks compared at matched size and budget\n\n"
    << "<!-- Written by `bitbyte bench tracks`: run it again rather than editing. -->\n\n"
    << "Generated with:\n\n```\n" << r.command << "\n```\n\n## Setup\n\n";
  for (const std::string& s : r.setup) o << "- " << s << "\n";

  o << "\n## Results\n\n"
    << "Val bpb: after the last step, on the whole validation split. Bytes/s: bytes per step over the median "
       "wall time of a step (the first tenth of the steps left out). Peak memory: the training process's RSS "
       "high-water mark. Mean ± sample standard deviation over seeds.\n\n"
    << "| track | parameters | model | val bpb | bytes/s | peak RSS (MiB) | wall per run (s) |\n"
    << "|---|---:|---|---:|---:|---:|---:|\n";
  for (const TrackResult& t : r.tracks) {
    o << "| `" << t.name << "` | " << Thousands(t.params) << " | " << t.model << " | " << Bpb(BpbOf(t)) << " | "
      << Fmt("%.0f", MeanOf(t, &TrackRun::bytes_per_s)) << " | " << Fmt("%.0f", MeanOf(t, &TrackRun::peak_rss_mib))
      << " | " << Fmt("%.0f", MeanOf(t, &TrackRun::wall_s)) << " |\n";
  }
  o << "\nEach run:\n\n| track | seed | val bpb | bytes/s | peak RSS (MiB) | wall (s) |\n|---|---:|---:|---:|---:|---:|\n";
  for (const TrackResult& t : r.tracks)
    for (const TrackRun& run : t.runs)
      o << "| `" << t.name << "` | " << run.seed << " | " << Fmt("%.4f", run.val_bpb) << " | "
        << Fmt("%.0f", run.bytes_per_s) << " | " << Fmt("%.0f", run.peak_rss_mib) << " | " << Fmt("%.0f", run.wall_s)
        << " |\n";

  o << "\n## Learning curves\n\n"
    << "Val bpb at each evaluation, mean ± std over seeds; elapsed is the mean time into the run when the "
       "evaluation finished.\n\n| track | step | bytes seen | elapsed (s) | val bpb |\n|---|---:|---:|---:|---:|\n";
  std::vector<std::vector<CurvePoint>> curves;
  for (const TrackResult& t : r.tracks) {
    curves.push_back(MeanCurve(t));
    for (const CurvePoint& p : curves.back())
      o << "| `" << t.name << "` | " << p.step << " | " << Thousands(p.step * static_cast<int64_t>(t.bytes_per_step))
        << " | " << Fmt("%.1f", p.elapsed_s) << " | " << Bpb(p.bpb) << " |\n";
  }
  if (r.tracks.size() >= 2) {
    // Equal wall time: where each track stood when the quickest run finished training.
    size_t quick = 0;
    for (size_t i = 0; i < curves.size(); ++i)
      if (!curves[i].empty() && !curves[quick].empty() && curves[i].back().elapsed_s < curves[quick].back().elapsed_s)
        quick = i;
    if (!curves[quick].empty()) {
      const double t_eq = curves[quick].back().elapsed_s;
      o << "\nAt equal wall time, " << Fmt("%.0f", t_eq) << " s (when `" << r.tracks[quick].name
        << "` finished), from the curves above:";
      for (size_t i = 0; i < curves.size(); ++i) {
        const double b = BpbAtTime(curves[i], t_eq);
        o << (i ? ";" : "") << " `" << r.tracks[i].name << "` "
          << (std::isnan(b) ? std::string("had not reached its first evaluation") : Fmt("%.4f", b));
      }
      o << ". A track caught mid-run has not finished its learning-rate decay, so this favours the one that "
           "finished.\n";
    }
  }

  o << "\n## Recommendation\n\n" << Recommend(r.tracks);

  if (!r.scaling.empty()) {
    std::vector<std::string> names;
    std::vector<int64_t> lens;
    for (const ScalingPoint& p : r.scaling) {
      if (std::find(names.begin(), names.end(), p.track) == names.end()) names.push_back(p.track);
      if (std::find(lens.begin(), lens.end(), p.seq_len) == lens.end()) lens.push_back(p.seq_len);
    }
    auto find = [&](const std::string& n, int64_t t) -> const ScalingPoint* {
      for (const ScalingPoint& p : r.scaling)
        if (p.track == n && p.seq_len == t) return &p;
      return nullptr;
    };
    o << "\n## Memory and throughput against sequence length\n\n"
      << "Bytes per step fixed at " << Thousands(static_cast<int64_t>(r.scaling_bytes_per_step))
      << " (batch = bytes / sequence length), so a cost that is linear in the sequence length shows as flat. "
         "Each point is a short training run: the median wall time of its timed steps, and its process's peak RSS "
         "(which includes LibTorch itself and the optimizer state). The model's context is raised to the "
         "sequence length where needed, which adds position embeddings to a transformer.\n\n| sequence | batch |";
    for (const std::string& n : names) o << " `" << n << "` s/step | bytes/s | peak RSS (MiB) |";
    o << "\n|---:|---:|";
    for (size_t i = 0; i < names.size(); ++i) o << "---:|---:|---:|";
    o << "\n";
    for (int64_t t : lens) {
      const ScalingPoint* any = nullptr;
      for (const std::string& n : names)
        if (!any) any = find(n, t);
      o << "| " << t << " | " << (any ? any->batch : 0) << " |";
      for (const std::string& n : names) {
        const ScalingPoint* p = find(n, t);
        if (!p) o << " | | |";
        else if (!p->failure.empty()) o << " " << p->failure << " | | |";
        else o << " " << Fmt("%.3f", p->step_s) << " | " << Fmt("%.0f", p->bytes_per_s) << " | " << Fmt("%.0f", p->peak_rss_mib) << " |";
      }
      o << "\n";
    }
    o << "\nFrom the shortest to the longest sequence that ran:\n\n";
    for (const std::string& n : names) {
      const ScalingPoint *lo = nullptr, *hi = nullptr;
      for (int64_t t : lens) {
        const ScalingPoint* p = find(n, t);
        if (!p || !p->failure.empty()) continue;
        if (!lo) lo = p;
        hi = p;
      }
      if (!lo || lo == hi) {
        o << "- `" << n << "`: too few points.\n";
        continue;
      }
      const double growth = static_cast<double>(hi->seq_len) / static_cast<double>(lo->seq_len);
      const double k = std::log(hi->step_s / lo->step_s) / std::log(growth);
      o << "- `" << n << "`: sequence ×" << Fmt("%.0f", growth) << " (" << lo->seq_len << " → " << hi->seq_len
        << "): time per byte ×" << Fmt("%.2f", hi->step_s / lo->step_s) << " (∝ T^" << Fmt("%.2f", k)
        << "), peak RSS " << Fmt("%.0f", lo->peak_rss_mib) << " → " << Fmt("%.0f", hi->peak_rss_mib) << " MiB.\n";
    }
  }
  return o.str();
}

}  // namespace bitbyte::train

#include "runs/track_bench.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>

#include "base/error.h"
#include "base/numbers.h"

namespace bitbyte::runs {
namespace {

std::string Bpb(const MeanStd& m) {
  return FormatDouble("%.4f", m.mean) + (m.n >= 2 ? " ± " + FormatDouble("%.4f", m.std) : std::string(" (one seed)"));
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
  auto during_eval = [&](const StepRecord& s) {
    for (const EvalRecord& e : run.evals)
      if (s.elapsed_s > e.elapsed_s - e.eval_s && s.elapsed_s - s.step_wall_s < e.elapsed_s) return true;
    return false;
  };
  for (const StepRecord& s : run.steps)
    if (s.step > skip && std::isfinite(s.step_wall_s) && s.step_wall_s > 0 && !during_eval(s))
      walls.push_back(s.step_wall_s);
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

double TwoSided95(size_t df) {
  static const double table[] = {12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
                                 2.201,  2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
                                 2.080,  2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042};
  if (df == 0) return std::nan("");
  if (df <= 30) return table[df - 1];
  return 1.96 + 2.5 / static_cast<double>(df);  // within 0.002 of the exact value beyond 30
}

Gap CompareBpb(const TrackResult& a, const TrackResult& b) {
  std::vector<double> d;
  for (const TrackRun& rb : b.runs)
    for (const TrackRun& ra : a.runs)
      if (ra.seed == rb.seed) d.push_back(rb.val_bpb - ra.val_bpb);
  const MeanStd m = Summarise(d);
  Gap g;
  g.delta = m.mean;
  g.seeds = m.n;
  g.known = m.n >= 2;
  if (g.known) {
    g.noise = TwoSided95(m.n - 1) * m.std / std::sqrt(static_cast<double>(m.n));
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
  std::vector<const TrackResult*> level = {&best}, behind;  // level: not clearly worse than the best
  for (size_t i = 1; i < order.size(); ++i) (CompareBpb(best, *order[i]).clear ? behind : level).push_back(order[i]);
  auto speed = [](const TrackResult& a, const TrackResult& b) {
    return MeanOf(a, &TrackRun::bytes_per_s) / MeanOf(b, &TrackRun::bytes_per_s);
  };
  auto memory = [](const TrackResult& a, const TrackResult& b) {
    return FormatDouble("%.2f×", MeanOf(a, &TrackRun::peak_rss_mib) / MeanOf(b, &TrackRun::peak_rss_mib));
  };
  auto gap_text = [&](const TrackResult& t) {
    const Gap g = CompareBpb(best, t);
    std::string text = "`" + t.name + "` " + FormatDouble("%+.4f", g.delta) + " bpb";
    if (g.known)
      text += " (95% interval ±" + FormatDouble("%.4f", g.noise) + " over " + std::to_string(g.seeds) + " seeds)";
    else
      text += " (one seed: the noise cannot be told)";
    return text;
  };
  std::ostringstream o;
  if (level.size() == 1) {
    o << "**Recommendation: `" << best.name << "`.** At matched size and budget it reaches the lowest val bpb, "
      << Bpb(BpbOf(best)) << ", and its lead over every other track is beyond noise: the 95% confidence "
      << "interval of the per-seed difference excludes zero.\n\n";
    for (const TrackResult* t : behind)
      o << "- " << gap_text(*t) << "; `" << best.name << "` trains at " << FormatDouble("%.2f×", speed(best, *t))
        << " its bytes/s with " << memory(best, *t) << " its peak memory.\n";
    return o.str();
  }
  // Quality does not separate the level tracks: say so, and let throughput decide.
  bool one_seed = false;
  std::string names;
  for (size_t i = 0; i < level.size(); ++i) {
    names += (i == 0 ? "" : i + 1 == level.size() ? " and " : ", ") + ("`" + level[i]->name + "`");
    if (i > 0) one_seed = one_seed || !CompareBpb(best, *level[i]).known;
  }
  o << (one_seed ? "**With one seed the noise cannot be told, so no track can be called better on val bpb.** "
                 : "**" + names + " are level on val bpb: the differences are within noise.** ");
  for (size_t i = 1; i < level.size(); ++i)
    o << (i > 1 ? "; " : "Against `" + best.name + "`: ") << gap_text(*level[i]);
  o << ".\n\n";
  std::vector<const TrackResult*> by_speed = level;
  std::stable_sort(by_speed.begin(), by_speed.end(), [](const TrackResult* a, const TrackResult* b) {
    return MeanOf(*a, &TrackRun::bytes_per_s) > MeanOf(*b, &TrackRun::bytes_per_s);
  });
  const TrackResult& fastest = *by_speed[0];
  if (speed(fastest, *by_speed[1]) < 1.05) {
    o << "Their speeds are within 5% too (" << names << "), so neither quality nor throughput decides at this "
      << "budget. **Recommendation: `" << best.name << "`** by a hair (the lowest mean); more seeds or a larger "
      << "budget could separate them.\n";
  } else {
    o << "**Recommendation: `" << fastest.name << "`**, on throughput at equal quality: ";
    for (size_t i = 1; i < by_speed.size(); ++i)
      o << (i > 1 ? "; " : "") << "it trains at " << FormatDouble("%.2f×", speed(fastest, *by_speed[i]))
        << " the bytes/s of `" << by_speed[i]->name << "` with " << memory(fastest, *by_speed[i]) << " its peak memory";
    o << ". More seeds or a larger budget could still separate them on quality.\n";
  }
  for (const TrackResult* t : behind) o << "\n" << gap_text(*t) << ": behind, beyond noise.\n";
  return o.str();
}

std::string TracksMarkdown(const TracksReport& r) {
  std::ostringstream o;
  o << "# Tracks compared at matched size and budget\n\n"
    << "<!-- Written by `bitbyte bench tracks`: run it again rather than editing. -->\n\n"
    << "Generated with:\n\n```\n"
    << r.command << "\n```\n\n## Setup\n\n";
  for (const std::string& s : r.setup) o << "- " << s << "\n";

  o << "\n## Results\n\n"
    << "Val bpb: after the last step, on the whole validation split. Bytes/s: bytes per step over the median "
       "wall time of a step, leaving out the first tenth of the steps and those that overlapped an evaluation "
       "(it runs beside training, on its own threads). Peak memory: the training process's RSS high-water "
       "mark. Mean ± sample standard deviation over seeds; parameters with their offset from the target.\n\n"
    << "| track | parameters | model | val bpb | bytes/s | peak RSS (MiB) | wall per run (s) |\n"
    << "|---|---:|---|---:|---:|---:|---:|\n";
  for (const TrackResult& t : r.tracks) {
    const std::string off = r.target_params > 0
                                ? FormatDouble(" (%+.1f%%)", 100.0 * static_cast<double>(t.params - r.target_params) /
                                                                 static_cast<double>(r.target_params))
                                : std::string();
    o << "| `" << t.name << "` | " << Thousands(t.params) << off << " | " << t.model << " | " << Bpb(BpbOf(t)) << " | "
      << FormatDouble("%.0f", MeanOf(t, &TrackRun::bytes_per_s)) << " | "
      << FormatDouble("%.0f", MeanOf(t, &TrackRun::peak_rss_mib)) << " | "
      << FormatDouble("%.0f", MeanOf(t, &TrackRun::wall_s)) << " |\n";
  }
  o << "\nEach run:\n\n| track | seed | val bpb | bytes/s | peak RSS (MiB) | wall (s) "
       "|\n|---|---:|---:|---:|---:|---:|\n";
  for (const TrackResult& t : r.tracks)
    for (const TrackRun& run : t.runs)
      o << "| `" << t.name << "` | " << run.seed << " | " << FormatDouble("%.4f", run.val_bpb) << " | "
        << FormatDouble("%.0f", run.bytes_per_s) << " | " << FormatDouble("%.0f", run.peak_rss_mib) << " | "
        << FormatDouble("%.0f", run.wall_s) << " |\n";

  o << "\n## Learning curves\n\n"
    << "Val bpb at each evaluation, mean ± std over seeds; elapsed is the mean time into the run when the "
       "evaluation finished.\n\n| track | step | bytes seen | elapsed (s) | val bpb |\n|---|---:|---:|---:|---:|\n";
  std::vector<std::vector<CurvePoint>> curves;
  for (const TrackResult& t : r.tracks) {
    curves.push_back(MeanCurve(t));
    for (const CurvePoint& p : curves.back())
      o << "| `" << t.name << "` | " << p.step << " | " << Thousands(p.step * static_cast<int64_t>(t.bytes_per_step))
        << " | " << FormatDouble("%.1f", p.elapsed_s) << " | " << Bpb(p.bpb) << " |\n";
  }
  if (r.tracks.size() >= 2) {
    // Equal wall time: where each track stood when the quickest run finished training.
    size_t quick = 0;
    for (size_t i = 0; i < curves.size(); ++i)
      if (!curves[i].empty() && !curves[quick].empty() && curves[i].back().elapsed_s < curves[quick].back().elapsed_s)
        quick = i;
    if (!curves[quick].empty()) {
      const double t_eq = curves[quick].back().elapsed_s;
      o << "\nAt equal wall time, " << FormatDouble("%.0f", t_eq) << " s (when `" << r.tracks[quick].name
        << "` finished), from the curves above:";
      for (size_t i = 0; i < curves.size(); ++i) {
        const double b = BpbAtTime(curves[i], t_eq);
        o << (i ? ";" : "") << " `" << r.tracks[i].name << "` "
          << (std::isnan(b) ? std::string("had not reached its first evaluation") : FormatDouble("%.4f", b));
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
        if (!p)
          o << " | | |";
        else if (!p->failure.empty())
          o << " " << p->failure << " | | |";
        else
          o << " " << FormatDouble("%.3f", p->step_s) << " | " << FormatDouble("%.0f", p->bytes_per_s) << " | "
            << FormatDouble("%.0f", p->peak_rss_mib) << " |";
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
      const double per_byte = lo->bytes_per_s / hi->bytes_per_s;  // time per byte, longest over shortest
      const double k = std::log(per_byte) / std::log(growth);
      o << "- `" << n << "`: sequence ×" << FormatDouble("%.0f", growth) << " (" << lo->seq_len << " → " << hi->seq_len
        << "): time per byte ×" << FormatDouble("%.2f", per_byte) << " (∝ T^" << FormatDouble("%.2f", k)
        << "), peak RSS " << FormatDouble("%.0f", lo->peak_rss_mib) << " → " << FormatDouble("%.0f", hi->peak_rss_mib)
        << " MiB.\n";
    }
  }
  return o.str();
}

}  // namespace bitbyte::runs

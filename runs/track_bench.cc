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
  // The last record of each step: a resumed run replays the steps after its checkpoint.
  std::map<int64_t, const StepRecord*> by_step;
  for (const StepRecord& s : run.steps) by_step[s.step] = &s;
  std::map<int64_t, EvalRecord> evals;
  for (const EvalRecord& e : run.evals) evals[e.step] = e;
  std::vector<double> walls;
  const int64_t skip = steps / 10;
  auto during_eval = [&](const StepRecord& s) {
    for (const EvalRecord& e : run.evals)
      if (s.elapsed_s > e.elapsed_s - e.eval_s && s.elapsed_s - s.step_wall_s < e.elapsed_s) return true;
    return false;
  };
  auto timed = [](const StepRecord& s) { return std::isfinite(s.step_wall_s) && s.step_wall_s > 0; };
  for (const auto& [step, s] : by_step)
    if (step > skip && timed(*s) && !during_eval(*s)) walls.push_back(s->step_wall_s);
  if (walls.empty()) throw Error(run.dir + "/metrics.jsonl: no timed step records");
  r.bytes_per_s = static_cast<double>(bytes_per_step) / Median(walls);
  double training_s = 0;
  auto next = by_step.begin();
  for (auto& [step, e] : evals) {
    for (; next != by_step.end() && next->first <= step; ++next)
      if (timed(*next->second)) training_s += next->second->step_wall_s;
    e.elapsed_s = training_s;
    r.curve.push_back(e);
  }
  if (r.curve.empty() || r.curve.back().step != steps)
    throw Error(run.dir + "/metrics.jsonl: no evaluation at the last step " + std::to_string(steps) +
                " (the run did not finish)");
  r.val_bpb = r.curve.back().val_bpb;
  return r;
}

const SweepPoint* TrackSweep::Best() const {
  const SweepPoint* best = nullptr;
  for (const SweepPoint& p : points)
    if (std::isfinite(p.val_bpb) && (best == nullptr || p.val_bpb < best->val_bpb)) best = &p;
  return best;
}

bool TrackSweep::AtEdge() const {
  const SweepPoint* best = Best();
  return best != nullptr && points.size() >= 2 && (best == &points.front() || best == &points.back());
}

const TrackResult* BestTrack(const std::vector<TrackResult>& tracks) {
  const TrackResult* best = nullptr;
  for (const TrackResult& t : tracks)
    if (best == nullptr || BpbOf(t).mean < BpbOf(*best).mean) best = &t;
  return best;
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
  const TrackResult* best_ptr = BestTrack(tracks);
  if (best_ptr == nullptr) return "No track was trained.\n";
  const TrackResult& best = *best_ptr;
  if (tracks.size() == 1) return "Only `" + best.name + "` was trained: there is nothing to compare.\n";
  std::vector<const TrackResult*> others;
  for (const TrackResult& t : tracks)
    if (&t != &best) others.push_back(&t);
  std::stable_sort(others.begin(), others.end(),
                   [](const TrackResult* a, const TrackResult* b) { return BpbOf(*a).mean < BpbOf(*b).mean; });
  bool all_clear = true, any_unknown = false;
  for (const TrackResult* t : others) {
    const Gap g = CompareBpb(best, *t);
    all_clear = all_clear && g.clear;
    any_unknown = any_unknown || !g.known;
  }
  auto ratio = [&](const TrackResult& t, double TrackRun::*field) {
    return FormatDouble("%.2f×", MeanOf(best, field) / MeanOf(t, field));
  };
  std::ostringstream o;
  o << "**Recommendation: `" << best.name << "`**: the lowest val bpb at this budget, " << Bpb(BpbOf(best)) << ". ";
  if (all_clear)
    o << "Its lead over every other track is beyond noise: the 95% confidence interval of the per-seed "
         "difference excludes zero.";
  else if (any_unknown)
    o << "With one seed the noise cannot be estimated, so whether its lead is significant cannot be judged "
         "(more seeds would settle it); the gaps below are as measured.";
  else
    o << "Its lead over some tracks is within noise: these seeds do not separate them (which does not make "
         "them equal); more seeds or a larger budget could.";
  o << "\n\n";
  for (const TrackResult* t : others) {
    const Gap g = CompareBpb(best, *t);
    o << "- `" << t->name << "` " << FormatDouble("%+.4f", g.delta) << " bpb";
    if (!g.known)
      o << " (one seed: significance not judged)";
    else
      o << " (95% interval ±" << FormatDouble("%.4f", g.noise) << " over " << g.seeds
        << " seeds: " << (g.clear ? "behind, beyond noise" : "within noise, not separated") << ")";
    o << "; `" << best.name << "` trains at " << ratio(*t, &TrackRun::bytes_per_s) << " its bytes/s with "
      << ratio(*t, &TrackRun::peak_rss_mib) << " its peak memory.\n";
  }
  return o.str();
}

namespace {

std::string Offset(const TrackResult& t, int64_t target) {
  if (target <= 0) return "";
  return FormatDouble(" (%+.1f%%)", 100.0 * static_cast<double>(t.params - target) / static_cast<double>(target));
}

std::string Lr(double lr) { return FormatDouble("%.3g", lr); }

void SweepSection(std::ostringstream& o, const TracksReport& r) {
  o << "\n## Learning-rate sweep\n\n"
    << "Each track's peak learning rate is chosen by a sweep on a log grid (factors of 2) at a short budget ("
    << r.sweep_budget
    << ", seed 1): the rate with the lowest val bpb is used for every run below (the minimum rate of the cosine "
       "schedule keeps its ratio to the peak). When the best rate was at the edge of the grid, the grid was "
       "extended past it. A rate chosen at a short budget tends to be higher than the best one for a long run.\n\n"
    << "| track | steps | learning rate | val bpb | |\n|---|---:|---:|---:|---|\n";
  for (const TrackSweep& sw : r.sweeps) {
    const SweepPoint* best = sw.Best();
    for (const SweepPoint& p : sw.points)
      o << "| `" << sw.track << "` | " << sw.steps << " | " << Lr(p.lr) << " | "
        << (std::isfinite(p.val_bpb) ? FormatDouble("%.4f", p.val_bpb) : std::string("—")) << " | "
        << (&p == best          ? std::string(sw.AtEdge() ? "**chosen** (at the grid's edge)" : "**chosen**")
            : p.failure.empty() ? std::string()
                                : "failed: " + p.failure)
        << " |\n";
  }
}

void BudgetSection(std::ostringstream& o, const TracksReport& r, const BudgetResult& b) {
  o << "\n## Budget: " << b.label << "\n\n"
    << "| track | parameters | model | learning rate | steps | val bpb | bytes/s | peak RSS (MiB) | wall per run (s) "
       "|\n|---|---:|---|---:|---:|---:|---:|---:|---:|\n";
  for (const TrackResult& t : b.tracks)
    o << "| `" << t.name << "` | " << Thousands(t.params) << Offset(t, r.target_params) << " | " << t.model << " | "
      << Lr(t.lr) << " | " << t.steps << " | " << Bpb(BpbOf(t)) << " | "
      << FormatDouble("%.0f", MeanOf(t, &TrackRun::bytes_per_s)) << " | "
      << FormatDouble("%.0f", MeanOf(t, &TrackRun::peak_rss_mib)) << " | "
      << FormatDouble("%.0f", MeanOf(t, &TrackRun::wall_s)) << " |\n";
  o << "\nEach run:\n\n| track | seed | val bpb | bytes/s | peak RSS (MiB) | wall (s) "
       "|\n|---|---:|---:|---:|---:|---:|\n";
  for (const TrackResult& t : b.tracks)
    for (const TrackRun& run : t.runs)
      o << "| `" << t.name << "` | " << run.seed << " | " << FormatDouble("%.4f", run.val_bpb) << " | "
        << FormatDouble("%.0f", run.bytes_per_s) << " | " << FormatDouble("%.0f", run.peak_rss_mib) << " | "
        << FormatDouble("%.0f", run.wall_s) << (run.resumed ? " (resumed)" : "") << " |\n";

  o << "\nLearning curves: val bpb at each evaluation, mean ± std over seeds; training time is the sum of the "
       "wall times of the steps before the evaluation (mean over seeds).\n\n"
       "| track | step | bytes seen | training time (s) | val bpb |\n|---|---:|---:|---:|---:|\n";
  std::vector<std::vector<CurvePoint>> curves;
  for (const TrackResult& t : b.tracks) {
    curves.push_back(MeanCurve(t));
    for (const CurvePoint& p : curves.back())
      o << "| `" << t.name << "` | " << p.step << " | " << Thousands(p.step * static_cast<int64_t>(t.bytes_per_step))
        << " | " << FormatDouble("%.1f", p.elapsed_s) << " | " << Bpb(p.bpb) << " |\n";
  }
  if (b.tracks.size() >= 2) {
    // Equal training time: where each track stood when the quickest run finished training.
    size_t quick = 0;
    for (size_t i = 0; i < curves.size(); ++i)
      if (!curves[i].empty() && !curves[quick].empty() && curves[i].back().elapsed_s < curves[quick].back().elapsed_s)
        quick = i;
    if (!curves[quick].empty()) {
      const double t_eq = curves[quick].back().elapsed_s;
      o << "\nAt equal training time, " << FormatDouble("%.0f", t_eq) << " s (when `" << b.tracks[quick].name
        << "` finished), from the curves above:";
      for (size_t i = 0; i < curves.size(); ++i) {
        const double v = BpbAtTime(curves[i], t_eq);
        o << (i ? ";" : "") << " `" << b.tracks[i].name << "` "
          << (std::isnan(v) ? std::string("had not reached its first evaluation") : FormatDouble("%.4f", v));
      }
      o << ". A track caught mid-run has not finished its learning-rate decay, so this favours the one that "
           "finished.\n";
    }
  }
  o << "\n### Recommendation at this budget\n\n" << Recommend(b.tracks);

  const TrackResult* base = nullptr;
  for (const TrackResult& t : b.tracks)
    if (t.name == b.variants_of) base = &t;
  if (base == nullptr || b.variants.empty()) return;
  o << "\n### Quantized variants of `" << base->name << "`\n\n"
    << "int8 PTQ: each checkpoint of its runs evaluated with dynamic int8 Linear layers (`bitbyte eval --quantize "
       "int8`), no retraining. Ternary QAT: the same run with `model.qat.scheme: ternary` switched on at half the "
       "steps (before it the float run's steps in its precision, from it the precision `auto` picks for the ternary "
       "forward: docs/quantization.md §6), the same learning rate; its evaluations always run the "
       "ternary forward, so the points before that step are the float32 weights rounded to ternary. Differences "
       "are paired by seed against the float32 runs.\n\n"
    << "| variant | val bpb | Δ vs float32 | steps | bytes/s |\n|---|---:|---:|---:|---:|\n"
    << "| `" << base->name << "` float32 | " << Bpb(BpbOf(*base)) << " | | " << base->steps << " | "
    << FormatDouble("%.0f", MeanOf(*base, &TrackRun::bytes_per_s)) << " |\n";
  for (const TrackResult& v : b.variants) {
    const Gap g = CompareBpb(*base, v);
    o << "| `" << v.name << "` | " << Bpb(BpbOf(v)) << " | " << FormatDouble("%+.4f", g.delta)
      << (g.known ? " ± " + FormatDouble("%.4f", g.noise) + " (95%)" : std::string(" (one seed)")) << " | " << v.steps
      << " | " << FormatDouble("%.0f", MeanOf(v, &TrackRun::bytes_per_s)) << " |\n";
  }
  o << "\n| variant | step | bytes seen | training time (s) | val bpb |\n|---|---:|---:|---:|---:|\n";
  for (const TrackResult& v : b.variants)
    for (const CurvePoint& p : MeanCurve(v))
      o << "| `" << v.name << "` | " << p.step << " | " << Thousands(p.step * static_cast<int64_t>(v.bytes_per_step))
        << " | " << FormatDouble("%.1f", p.elapsed_s) << " | " << Bpb(p.bpb) << " |\n";
}

}  // namespace

std::string TracksMarkdown(const TracksReport& r) {
  std::ostringstream o;
  o << "# Tracks compared at matched size and budget\n\n"
    << "<!-- Written by `bitbyte bench tracks`: run it again rather than editing. -->\n\n"
    << "Generated with:\n\n```\n"
    << r.command << "\n```\n\n";
  if (!r.budgets.empty()) {
    const BudgetResult& longest = r.budgets.back();
    const TrackResult* best = BestTrack(longest.tracks);
    if (best != nullptr && longest.tracks.size() >= 2)
      o << "**In short:** at the longest budget (" << longest.label << "), `" << best->name
        << "` reaches the lowest val bpb (" << Bpb(BpbOf(*best)) << "); details and how sure that is below.\n\n";
  }
  o << "## Setup\n\n";
  for (const std::string& s : r.setup) o << "- " << s << "\n";
  o << "\nVal bpb: after the last step, on the validation bytes named above. Bytes/s: bytes per step over the "
       "median wall time of a step, leaving out the first tenth of the steps and those that overlapped an "
       "evaluation (it runs beside training, on its own threads). Peak memory: the training process's RSS "
       "high-water mark. Wall: the training process from start to exit, evaluations included; for a run marked "
       "(resumed), the time its records cover, each attempt counted to the last record it kept (work redone "
       "after an interruption counts once). Mean ± sample standard deviation over seeds; parameters with their "
       "offset from the target. Seed s gives every track the same batches, so gaps are compared seed by seed.\n";
  if (!r.sweeps.empty()) SweepSection(o, r);
  for (const BudgetResult& b : r.budgets) BudgetSection(o, r, b);
  if (!r.chart_bytes.empty() || !r.chart_time.empty()) {
    o << "\n## Curves (" << r.budgets.back().label << ")\n\n";
    if (!r.chart_bytes.empty()) o << "![val bpb against bytes seen](" << r.chart_bytes << ")\n\n";
    if (!r.chart_time.empty()) o << "![val bpb against training time](" << r.chart_time << ")\n";
  }
  if (r.budgets.size() >= 2) {
    o << "\n## Recommendation by budget\n\n";
    for (const BudgetResult& b : r.budgets) {
      const TrackResult* best = BestTrack(b.tracks);
      if (best == nullptr) continue;
      o << "- " << b.label << ": `" << best->name << "`, " << Bpb(BpbOf(*best));
      for (const TrackResult& t : b.tracks) {
        if (&t == best) continue;
        const Gap g = CompareBpb(*best, t);
        o << "; `" << t.name << "` " << FormatDouble("%+.4f", g.delta)
          << (!g.known  ? " (one seed)"
              : g.clear ? " (beyond noise)"
                        : " (within noise)");
      }
      o << ".\n";
    }
  }

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

namespace {

// A "nice" tick step (1, 2 or 5 times a power of ten) giving about `n` ticks over `span`.
double TickStep(double span, int n) {
  const double raw = span / n, p = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0})
    if (m * p >= raw) return m * p;
  return 10 * p;
}

std::string SvgEscape(const std::string& s) {
  std::string out;
  for (char c : s)
    out += c == '<'   ? std::string("&lt;")
           : c == '>' ? std::string("&gt;")
           : c == '&' ? std::string("&amp;")
                      : std::string(1, c);
  return out;
}

}  // namespace

std::string CurvesSvg(const BudgetResult& budget, bool by_time) {
  struct Series {
    std::string label;
    bool dashed = false;
    std::vector<std::pair<double, double>> points;
  };
  std::vector<Series> series;
  auto add = [&](const TrackResult& t, bool dashed) {
    Series s{t.name, dashed, {}};
    for (const CurvePoint& p : MeanCurve(t))
      s.points.emplace_back(
          by_time ? p.elapsed_s / 60 : static_cast<double>(p.step * static_cast<int64_t>(t.bytes_per_step)) / 1e6,
          p.bpb.mean);
    if (!s.points.empty()) series.push_back(std::move(s));
  };
  for (const TrackResult& t : budget.tracks) add(t, false);
  for (const TrackResult& t : budget.variants) add(t, true);
  double x1 = 0, y0 = INFINITY, y1 = -INFINITY;
  for (const Series& s : series)
    for (const auto& [x, y] : s.points) {
      x1 = std::max(x1, x);
      y0 = std::min(y0, y);
      y1 = std::max(y1, y);
    }
  if (series.empty() || !(x1 > 0)) return "";
  if (!(y1 > y0)) y1 = y0 + 1;
  const double dy = TickStep(y1 - y0, 6), dx = TickStep(x1, 6);
  y0 = std::floor(y0 / dy) * dy;
  y1 = std::ceil(y1 / dy) * dy;
  x1 = std::ceil(x1 / dx) * dx;
  const double W = 720, H = 420, L = 60, R = 200, T = 30, B = 50;  // size and margins
  auto px = [&](double x) { return L + x / x1 * (W - L - R); };
  auto py = [&](double y) { return T + (y1 - y) / (y1 - y0) * (H - T - B); };
  static const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2"};
  std::ostringstream o;
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
    << "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    << "<text x=\"" << L << "\" y=\"18\" font-size=\"14\">val bpb against "
    << (by_time ? "training time" : "bytes seen") << " (" << SvgEscape(budget.label) << "; mean over seeds)</text>\n";
  for (double y = y0; y <= y1 + dy / 2; y += dy)
    o << "<line x1=\"" << L << "\" x2=\"" << W - R << "\" y1=\"" << py(y) << "\" y2=\"" << py(y)
      << "\" stroke=\"#ddd\"/><text x=\"" << L - 6 << "\" y=\"" << py(y) + 4 << "\" text-anchor=\"end\">"
      << FormatDouble("%g", std::round(y / dy) * dy) << "</text>\n";
  for (double x = 0; x <= x1 + dx / 2; x += dx)
    o << "<line x1=\"" << px(x) << "\" x2=\"" << px(x) << "\" y1=\"" << T << "\" y2=\"" << H - B
      << "\" stroke=\"#eee\"/><text x=\"" << px(x) << "\" y=\"" << H - B + 16 << "\" text-anchor=\"middle\">"
      << FormatDouble("%g", std::round(x / dx) * dx) << "</text>\n";
  o << "<text x=\"" << (L + W - R) / 2 << "\" y=\"" << H - 12 << "\" text-anchor=\"middle\">"
    << (by_time ? "training time (minutes)" : "bytes seen (MB)") << "</text>\n"
    << "<text transform=\"translate(16," << (T + H - B) / 2
    << ") rotate(-90)\" text-anchor=\"middle\">val bpb</text>\n";
  for (size_t i = 0; i < series.size(); ++i) {
    const Series& s = series[i];
    const char* color = colors[i % (sizeof colors / sizeof *colors)];
    o << "<polyline fill=\"none\" stroke=\"" << color << "\" stroke-width=\"2\""
      << (s.dashed ? " stroke-dasharray=\"6 4\"" : "") << " points=\"";
    for (const auto& [x, y] : s.points) o << FormatDouble("%.1f", px(x)) << "," << FormatDouble("%.1f", py(y)) << " ";
    o << "\"/>\n";
    for (const auto& [x, y] : s.points)
      o << "<circle cx=\"" << FormatDouble("%.1f", px(x)) << "\" cy=\"" << FormatDouble("%.1f", py(y))
        << "\" r=\"3\" fill=\"" << color << "\"/>\n";
    const double ly = T + 10 + 20 * static_cast<double>(i);
    o << "<line x1=\"" << W - R + 12 << "\" x2=\"" << W - R + 36 << "\" y1=\"" << ly << "\" y2=\"" << ly
      << "\" stroke=\"" << color << "\" stroke-width=\"2\"" << (s.dashed ? " stroke-dasharray=\"6 4\"" : "")
      << "/><text x=\"" << W - R + 42 << "\" y=\"" << ly + 4 << "\">" << SvgEscape(s.label) << "</text>\n";
  }
  o << "</svg>\n";
  return o.str();
}

}  // namespace bitbyte::runs

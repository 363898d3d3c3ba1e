//! The burst chart, drawn the same way by `meridian simulate --svg` and the status page: two
//! panels over one labelled time axis. Above, requests (or answers) per second per endpoint;
//! below, the primary's utilisation with the `target`, `burst_at` and `release_at` lines, and
//! the spill share. Burst states are shaded bands across both panels; events (outages, load
//! sources going silent, webhooks) are marked where they happen. Every axis ends on a round
//! value and its ticks are round values too.

use std::fmt::Write as _;

/// A burst state as a band colour and a legend name (`None`: no band, as for Idle).
pub type Band = Option<(&'static str, &'static str)>;

/// What to draw. All series are sampled at `times` (seconds since the start).
#[derive(Debug, Default)]
pub struct Chart {
    pub title: String,
    pub times: Vec<f64>,
    /// Label times as UTC wall-clock `hh:mm:ss` counted from this Unix time (the status page),
    /// else as elapsed time.
    pub clock_start: Option<u64>,
    /// The top panel: one line per endpoint.
    pub rates: Vec<(String, Vec<f64>)>,
    pub rate_unit: String,
    /// The bottom panel.
    pub utilisation: Vec<Option<f64>>,
    pub share: Vec<f64>,
    /// `target`, `burst_at`, `release_at`.
    pub thresholds: Option<(f64, f64, f64)>,
    pub bands: Vec<Band>,
    /// (time, label).
    pub events: Vec<(f64, String)>,
}

const COLORS: [&str; 8] =
    ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];

/// The smallest of 1, 2 or 5 times a power of ten that is at least `v`.
pub fn round_up(v: f64) -> f64 {
    if v.is_nan() || v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let m = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|k| k * m).find(|&x| x >= v * (1.0 - 1e-12)).unwrap_or(v)
}

/// A round tick step for a time span in seconds: about 4–8 ticks.
pub fn time_step(span: f64) -> f64 {
    const STEPS: [f64; 17] = [
        1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0,
        10800.0, 21600.0, 43200.0,
    ];
    STEPS.iter().copied().find(|s| span / s <= 8.0).unwrap_or(86400.0)
}

/// Elapsed time as `h:mm:ss` (or `m:ss` under an hour).
pub fn elapsed(t: f64) -> String {
    let s = t.round().max(0.0) as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

impl Chart {
    /// The chart as a standalone SVG document.
    pub fn svg(&self) -> String {
        // Without a utilisation series (no burst rule) only the top panel is drawn.
        let two = !self.utilisation.is_empty();
        let (w, h) = (960.0, if two { 560.0 } else { 350.0 });
        let (l, r) = (70.0, 930.0);
        let (top1, bot1) = (60.0, 290.0);
        let (top2, bot2) = if two { (320.0, 500.0) } else { (bot1, bot1) };
        let t_max = self.times.last().copied().unwrap_or(1.0).max(1.0);
        let x = |t: f64| l + (r - l) * t / t_max;
        let mut s = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{l}\" y=\"20\" font-size=\"15\">{}</text>\n",
            escape(&self.title)
        );
        // State bands, across both panels.
        let mut i = 0;
        while i < self.bands.len() {
            let band = self.bands[i];
            let mut j = i;
            while j + 1 < self.bands.len() && self.bands[j + 1] == band {
                j += 1;
            }
            if let Some((color, _)) = band {
                let start = self.times[i];
                let end = self.times.get(j + 1).copied().unwrap_or(self.times[j]);
                let _ = writeln!(
                    s,
                    "<rect x=\"{:.1}\" y=\"{top1}\" width=\"{:.1}\" height=\"{}\" fill=\"{color}\"/>",
                    x(start),
                    (x(end) - x(start)).max(1.0),
                    bot2 - top1
                );
            }
            i = j + 1;
        }
        // Top panel: rates.
        let peak = self.rates.iter().flat_map(|(_, v)| v.iter().copied()).fold(0.0, f64::max);
        let y_max = round_up(peak * 1.05);
        let y1 = |v: f64| bot1 - (bot1 - top1) * v / y_max;
        grid(&mut s, (l, r), y_max, round_up(y_max / 6.0), y1, trim);
        let _ = writeln!(
            s,
            "<text x=\"16\" y=\"{0}\" transform=\"rotate(-90 16 {0})\" text-anchor=\"middle\">{1}</text>",
            (top1 + bot1) / 2.0,
            escape(&self.rate_unit)
        );
        for (k, (_, values)) in self.rates.iter().enumerate() {
            let pts: Vec<(f64, f64)> =
                self.times.iter().zip(values).map(|(&t, &v)| (x(t), y1(v))).collect();
            s += &polyline(&pts, COLORS[k % COLORS.len()], "");
        }
        if two {
            s += &self.bottom(x, l, r, top2, bot2);
        }
        // Axes and the time axis, with round ticks.
        let axes: &[(f64, f64)] = if two { &[(top1, bot1), (top2, bot2)] } else { &[(top1, bot1)] };
        for &(top, bot) in axes {
            let _ = writeln!(
                s,
                "<line x1=\"{l}\" x2=\"{r}\" y1=\"{bot}\" y2=\"{bot}\" stroke=\"#333\"/><line x1=\"{l}\" x2=\"{l}\" y1=\"{top}\" y2=\"{bot}\" stroke=\"#333\"/>"
            );
        }
        self.finish(s, x, (t_max, l, top1, bot2))
    }

    /// The bottom panel: utilisation, thresholds and the share on one 0..u_max axis.
    fn bottom(&self, x: impl Fn(f64) -> f64, l: f64, r: f64, top2: f64, bot2: f64) -> String {
        let mut s = String::new();
        let u_peak = self.utilisation.iter().flatten().copied().fold(1.0, f64::max);
        let u_max = (u_peak * 1.05 * 4.0).ceil() / 4.0;
        let y2 = |v: f64| bot2 - (bot2 - top2) * v.min(u_max) / u_max;
        let u_step = if u_max <= 1.5 { 0.25 } else { round_up(u_max / 6.0) };
        grid(&mut s, (l, r), u_max, u_step, y2, |v| format!("{} %", trim(v * 100.0)));
        let _ = writeln!(
            s,
            "<text x=\"16\" y=\"{0}\" transform=\"rotate(-90 16 {0})\" text-anchor=\"middle\">utilisation, share</text>",
            (top2 + bot2) / 2.0
        );
        if let Some((target, burst_at, release_at)) = self.thresholds {
            for (v, name, color) in [
                (burst_at, "burst_at", "#d62728"),
                (target, "target", "#2ca02c"),
                (release_at, "release_at", "#1f77b4"),
            ] {
                let _ = writeln!(
                    s,
                    "<line x1=\"{l}\" x2=\"{r}\" y1=\"{0:.1}\" y2=\"{0:.1}\" stroke=\"{color}\" stroke-dasharray=\"4,3\"/><text x=\"{1}\" y=\"{2:.1}\" fill=\"{color}\" text-anchor=\"end\" font-size=\"10\">{name} {3} %</text>",
                    y2(v),
                    r - 2.0,
                    y2(v) - 3.0,
                    trim(v * 100.0)
                );
            }
        }
        let segments = |values: &[Option<f64>]| {
            // A gap where the value is unknown: unknown is not zero.
            let mut out = String::new();
            let mut run: Vec<(f64, f64)> = Vec::new();
            for (&t, v) in self.times.iter().zip(values) {
                match v {
                    Some(v) => run.push((x(t), y2(*v))),
                    None if !run.is_empty() => {
                        out += &polyline(&run, "#000", "");
                        run.clear();
                    }
                    None => {}
                }
            }
            if !run.is_empty() {
                out += &polyline(&run, "#000", "");
            }
            out
        };
        s += &segments(&self.utilisation);
        let share: Vec<(f64, f64)> =
            self.times.iter().zip(&self.share).map(|(&t, &v)| (x(t), y2(v))).collect();
        s += &polyline(&share, "#9467bd", "stroke-dasharray=\"6,3\"");
        s
    }

    /// The time axis, events and legend, below and over the panels (`top1` to `bot2`).
    fn finish(&self, mut s: String, x: impl Fn(f64) -> f64, span: (f64, f64, f64, f64)) -> String {
        let (t_max, l, top1, bot2) = span;
        let label = |t: f64| match self.clock_start {
            Some(start) => {
                let s = start + t.round().max(0.0) as u64;
                format!("{:02}:{:02}:{:02}", s / 3600 % 24, s / 60 % 60, s % 60)
            }
            None => elapsed(t),
        };
        let step = time_step(t_max);
        let first = self.times.first().copied().unwrap_or(0.0);
        // Ticks on round values of what is labelled: elapsed time, or the wall clock.
        let origin = self.clock_start.unwrap_or(0) as f64;
        let mut t = ((origin + first) / step).ceil() * step - origin;
        while t <= t_max + 1e-9 {
            let _ = writeln!(
                s,
                "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"{bot2}\" y2=\"{1}\" stroke=\"#333\"/><text x=\"{0:.1}\" y=\"{2}\" text-anchor=\"middle\">{3}</text>",
                x(t),
                bot2 + 5.0,
                bot2 + 19.0,
                label(t)
            );
            t += step;
        }
        // Events: a line and a label, staggered so that close ones stay readable.
        for (k, (t, what)) in self.events.iter().enumerate() {
            let ly = top1 + 12.0 + 12.0 * (k % 3) as f64;
            let _ = writeln!(
                s,
                "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"{top1}\" y2=\"{bot2}\" stroke=\"#555\" stroke-dasharray=\"1,3\"/><text x=\"{1:.1}\" y=\"{ly}\" font-size=\"10\" fill=\"#333\">{2}</text>",
                x(*t),
                x(*t) + 3.0,
                escape(what)
            );
        }
        // Legend.
        let mut lx = l;
        let mut legend: Vec<(String, &str, bool)> = self
            .rates
            .iter()
            .enumerate()
            .map(|(k, (n, _))| (n.clone(), COLORS[k % COLORS.len()], false))
            .collect();
        if !self.utilisation.is_empty() {
            legend.push(("utilisation".into(), "#000", false));
            legend.push(("share".into(), "#9467bd", false));
        }
        let mut seen = Vec::new();
        for (color, name) in self.bands.iter().flatten() {
            if !seen.contains(name) {
                seen.push(*name);
                legend.push((name.to_string(), color, true));
            }
        }
        for (name, color, band) in legend {
            let (hgt, yy) = if band { (12.0, 30.0) } else { (4.0, 34.0) };
            let _ = writeln!(
                s,
                "<rect x=\"{lx}\" y=\"{yy}\" width=\"14\" height=\"{hgt}\" fill=\"{color}\"/><text x=\"{}\" y=\"40\">{}</text>",
                lx + 18.0,
                escape(&name)
            );
            lx += 30.0 + 7.0 * name.len() as f64;
        }
        s += "</svg>\n";
        s
    }
}

/// Horizontal grid lines from 0 to `max` every `step`, labelled on the left.
fn grid(
    s: &mut String,
    (l, r): (f64, f64),
    max: f64,
    step: f64,
    y: impl Fn(f64) -> f64,
    label: impl Fn(f64) -> String,
) {
    let mut v = 0.0;
    while v <= max * (1.0 + 1e-9) {
        let _ = writeln!(
            s,
            "<line x1=\"{l}\" x2=\"{r}\" y1=\"{0:.1}\" y2=\"{0:.1}\" stroke=\"#ddd\"/><text x=\"{1}\" y=\"{2:.1}\" text-anchor=\"end\">{3}</text>",
            y(v),
            l - 6.0,
            y(v) + 4.0,
            label(v)
        );
        v += step;
    }
}

/// A number without a needless fraction: 20, 2.5, 0.25.
fn trim(v: f64) -> String {
    let r = (v * 1000.0).round() / 1000.0;
    if r.fract() == 0.0 { format!("{r:.0}") } else { format!("{r}") }
}

fn polyline(points: &[(f64, f64)], color: &str, extra: &str) -> String {
    let d: Vec<String> = points.iter().map(|(a, b)| format!("{a:.1},{b:.1}")).collect();
    format!(
        "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" {extra} points=\"{}\"/>\n",
        d.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_values() {
        assert_eq!(round_up(87.0), 100.0);
        assert_eq!(round_up(101.0), 200.0);
        assert_eq!(round_up(0.3), 0.5);
        assert_eq!(round_up(50.0), 50.0);
        assert_eq!(time_step(2400.0), 300.0);
        assert_eq!(time_step(86_400.0), 10800.0);
        assert_eq!(time_step(60.0), 10.0);
        assert_eq!(elapsed(3725.0), "1:02:05");
        assert_eq!(elapsed(125.0), "2:05");
        assert_eq!(trim(25.0), "25");
        assert_eq!(trim(2.5), "2.5");
    }
}

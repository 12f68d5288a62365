//! The report of a chaos run, in `--out`: `report.txt` (what the command prints),
//! `report.json`, the history (`history.jsonl`, exact; `history.edn`, the porcupine key/value
//! log `raftlab lincheck` reads), `linearizability.html` (lincheck's visualizer) and
//! `timeline.html`: every operation on a wall-clock timeline, one row per client, with the
//! nemesis's fault intervals shaded, per-second p50/p99 latency under it, and lincheck's page
//! embedded below.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use super::nemesis::{FaultKind, NemesisEvent};
use super::outage::{LeaderOutage, OUTAGE_GOAL_S, SETTLE_S, Tail};
use super::workload::{Op, OpRecord};

/// Latency and throughput of one second of the run (operations that completed in it).
#[derive(Debug, Clone, Serialize)]
pub struct Second {
    pub second: u64,
    pub ok: usize,
    pub unknown: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    pub ok: usize,
    pub unknown: usize,
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub verdict: String,
    pub passed: bool,
    pub seed: u64,
    pub nodes: usize,
    pub faults: Vec<String>,
    pub clients: usize,
    pub keys: usize,
    pub seconds: f64,
    pub operations: usize,
    pub ops_per_sec: f64,
    pub gets: Counts,
    pub puts: Counts,
    pub appends: Counts,
    pub linearizability: String,
    pub check_seconds: f64,
    pub acknowledged_writes: usize,
    pub lost_writes: Vec<String>,
    pub phantom_writes: Vec<String>,
    pub unread_keys: Vec<String>,
    pub converged_at_index: Option<u64>,
    pub nemesis: Vec<NemesisEvent>,
    /// The faults that hit the leader, and how long service was out after each.
    pub leader_outages: Vec<LeaderOutage>,
    /// Latency with no fault near, before the first leader fault and after it.
    pub tail: Vec<Tail>,
    pub per_second: Vec<Second>,
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let k = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[k.min(sorted.len() - 1)]
}

pub fn counts(history: &[OpRecord], op: Op) -> Counts {
    let mut c = Counts::default();
    for r in history.iter().filter(|r| r.op == op && !r.final_read) {
        if r.ok {
            c.ok += 1;
        } else {
            c.unknown += 1;
        }
    }
    c
}

pub fn per_second(history: &[OpRecord]) -> Vec<Second> {
    let last = history
        .iter()
        .filter(|r| !r.final_read)
        .map(|r| r.complete)
        .fold(0.0f64, f64::max);
    let n = last.ceil() as usize;
    let mut lat: Vec<Vec<f64>> = vec![Vec::new(); n + 1];
    let mut unknown = vec![0usize; n + 1];
    for r in history.iter().filter(|r| !r.final_read) {
        let s = (r.complete.max(0.0) as usize).min(n);
        if r.ok {
            lat[s].push((r.complete - r.invoke) * 1000.0);
        } else {
            unknown[s] += 1;
        }
    }
    lat.into_iter()
        .enumerate()
        .map(|(s, mut l)| {
            l.sort_by(f64::total_cmp);
            Second {
                second: s as u64,
                ok: l.len(),
                unknown: unknown[s],
                p50_ms: percentile(&l, 0.5),
                p99_ms: percentile(&l, 0.99),
            }
        })
        .collect()
}

pub fn text(s: &Summary) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "verdict: {}", s.verdict);
    let _ = writeln!(
        t,
        "run: seed {}, {} nodes, faults {}, {} clients, {} keys, {:.1} s",
        s.seed,
        s.nodes,
        if s.faults.is_empty() {
            "none".to_owned()
        } else {
            s.faults.join(",")
        },
        s.clients,
        s.keys,
        s.seconds
    );
    let _ = writeln!(
        t,
        "operations: {} ({:.1} ops/s acknowledged); get {} ok / {} unknown, put {} ok / {} \
         unknown, append {} ok / {} unknown",
        s.operations,
        s.ops_per_sec,
        s.gets.ok,
        s.gets.unknown,
        s.puts.ok,
        s.puts.unknown,
        s.appends.ok,
        s.appends.unknown
    );
    let _ = writeln!(
        t,
        "linearizability: {} (checked in {:.2} s)",
        s.linearizability, s.check_seconds
    );
    let _ = writeln!(
        t,
        "acknowledged writes: {}, lost: {}, phantom: {}, keys not read back: {}",
        s.acknowledged_writes,
        s.lost_writes.len(),
        s.phantom_writes.len(),
        s.unread_keys.len()
    );
    for l in s
        .lost_writes
        .iter()
        .chain(&s.phantom_writes)
        .chain(&s.unread_keys)
        .take(20)
    {
        let _ = writeln!(t, "  {l}");
    }
    match s.converged_at_index {
        Some(i) => {
            let _ = writeln!(t, "converged: every node committed and applied index {i}");
        }
        None => {
            let _ = writeln!(t, "converged: NO (nodes disagree on commit/applied)");
        }
    }
    let _ = writeln!(t, "nemesis ({} faults):", s.nemesis.len());
    for e in &s.nemesis {
        let _ = writeln!(
            t,
            "  {:>7.2}-{:>7} s  {}{}",
            e.start,
            e.end.map_or("-".to_owned(), |x| format!("{x:.2}")),
            e.what,
            e.trouble
                .as_deref()
                .map_or(String::new(), |x| format!("  [{x}]"))
        );
    }
    if !s.leader_outages.is_empty() {
        let within = s
            .leader_outages
            .iter()
            .filter(|o| o.back_after.is_some_and(|b| b <= OUTAGE_GOAL_S))
            .count();
        let _ = writeln!(
            t,
            "leader faults: service back within {OUTAGE_GOAL_S} s after {within} of {} (first acknowledged operation invoked after the fault):",
            s.leader_outages.len()
        );
        for o in &s.leader_outages {
            let _ = writeln!(
                t,
                "  {:>7.2} s  {}: {}",
                o.start,
                o.what,
                o.back_after
                    .map_or("not back before the end".to_owned(), |b| format!(
                        "back after {b:.2} s{}",
                        if b > OUTAGE_GOAL_S {
                            "  [over the goal]"
                        } else {
                            ""
                        }
                    ))
            );
        }
    }
    if !s.tail.is_empty() {
        let _ = writeln!(
            t,
            "tail away from faults (p99, none active or healed in the last {SETTLE_S} s), before and after the first leader fault:"
        );
        for x in &s.tail {
            let _ = writeln!(
                t,
                "  {:<6} {:>7.2} ms ({} ops) -> {:>7.2} ms ({} ops){}",
                x.ops,
                x.before_p99_ms,
                x.before_n,
                x.after_p99_ms,
                x.after_n,
                if x.before_n > 0 && x.after_p99_ms > 1.5 * x.before_p99_ms {
                    "  [over 1.5x]"
                } else {
                    ""
                }
            );
        }
    }
    let _ = writeln!(t, "latency per second (ok ops, p50/p99 ms, unknown):");
    for sec in &s.per_second {
        let _ = writeln!(
            t,
            "  {:>4}s {:>6} ops  p50 {:>8.2}  p99 {:>8.2}  unknown {}",
            sec.second, sec.ok, sec.p50_ms, sec.p99_ms, sec.unknown
        );
    }
    t
}

fn color(kind: FaultKind) -> &'static str {
    match kind {
        FaultKind::Kill => "#f4b4b4",
        FaultKind::Pause => "#f7dc9c",
        FaultKind::Partition => "#b8d4f4",
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The timeline page (an SVG drawn here; lincheck's page in an iframe below).
pub fn timeline_html(s: &Summary, history: &[OpRecord]) -> String {
    let end = s
        .seconds
        .max(history.iter().map(|r| r.complete).fold(0.0, f64::max))
        .max(1.0);
    let (left, width) = (70.0, 1300.0);
    let x = |t: f64| left + t / end * width;
    let row = 12.0;
    let top = 40.0;
    let rows = s.clients + 1;
    let ops_h = rows as f64 * row;
    let chart_top = top + ops_h + 40.0;
    let chart_h = 160.0;
    let total_h = chart_top + chart_h + 40.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg xmlns='http://www.w3.org/2000/svg' width='{}' height='{total_h}' \
         font-family='sans-serif' font-size='11'>",
        left + width + 20.0
    );
    for (k, e) in s.nemesis.iter().enumerate() {
        let x0 = x(e.start);
        let x1 = x(e.end.unwrap_or(end));
        let _ = write!(
            svg,
            "<rect x='{x0:.1}' y='{}' width='{:.1}' height='{:.1}' fill='{}' opacity='0.7'>\
             <title>{:.2}-{:.2} s: {}</title></rect>\
             <text x='{x0:.1}' y='{}' font-size='9'>{}</text>",
            top - 14.0,
            (x1 - x0).max(1.0),
            chart_top + chart_h - top + 14.0,
            color(e.kind),
            e.start,
            e.end.unwrap_or(end),
            esc(&e.what),
            top - 16.0 - (k % 2) as f64 * 10.0,
            esc(&e.what)
        );
    }
    for c in 0..rows {
        let y = top + c as f64 * row;
        let label = if c < s.clients {
            format!("client {c}")
        } else {
            "final reads".to_owned()
        };
        let _ = write!(svg, "<text x='2' y='{:.1}'>{label}</text>", y + 9.0);
    }
    for r in history {
        let lane = if r.final_read { s.clients } else { r.client };
        let y = top + lane as f64 * row + 1.0;
        let fill = match (r.ok, r.op) {
            (false, _) => "#d9534f",
            (true, Op::Get) => "#5cb85c",
            (true, _) => "#337ab7",
        };
        let _ = write!(
            svg,
            "<rect x='{:.2}' y='{y:.1}' width='{:.2}' height='{}' fill='{fill}'><title>{:?} {} \
             {}{} {:.3}-{:.3} s{}</title></rect>",
            x(r.invoke),
            (x(r.complete) - x(r.invoke)).max(0.6),
            row - 3.0,
            r.op,
            esc(&r.key),
            esc(&r.value),
            r.read
                .as_deref()
                .map_or(String::new(), |v| format!(" -> {}", esc(v))),
            r.invoke,
            r.complete,
            if r.ok { "" } else { " (unknown outcome)" }
        );
    }
    // Latency chart.
    let max_ms = s.per_second.iter().map(|p| p.p99_ms).fold(1.0f64, f64::max);
    let y = |ms: f64| chart_top + chart_h - ms / max_ms * chart_h;
    let _ = write!(
        svg,
        "<line x1='{left}' y1='{:.1}' x2='{:.1}' y2='{:.1}' stroke='#888'/>\
         <text x='2' y='{:.1}'>{max_ms:.0} ms</text><text x='2' y='{:.1}'>0 ms</text>",
        chart_top + chart_h,
        left + width,
        chart_top + chart_h,
        chart_top + 8.0,
        chart_top + chart_h
    );
    for (name, color, pick) in [("p99", "#c9302c", 0usize), ("p50", "#2b6cb0", 1usize)] {
        let pts: Vec<String> = s
            .per_second
            .iter()
            .map(|p| {
                let v = if pick == 0 { p.p99_ms } else { p.p50_ms };
                format!("{:.1},{:.1}", x(p.second as f64 + 0.5), y(v))
            })
            .collect();
        let _ = write!(
            svg,
            "<polyline fill='none' stroke='{color}' stroke-width='1.5' points='{}'/>\
             <text x='{:.1}' y='{:.1}' fill='{color}'>{name}</text>",
            pts.join(" "),
            left + width - 30.0,
            chart_top + if pick == 0 { 10.0 } else { 22.0 }
        );
    }
    let mut tick = 0.0;
    let step = (end / 15.0).ceil().max(1.0);
    while tick <= end {
        let _ = write!(
            svg,
            "<text x='{:.1}' y='{:.1}'>{tick:.0}s</text>",
            x(tick),
            chart_top + chart_h + 14.0
        );
        tick += step;
    }
    svg.push_str("</svg>");
    let verdict_color = if s.passed { "#2f7d32" } else { "#b71c1c" };
    format!(
        "<!doctype html>\n<html><head><meta charset='utf-8'><title>raftlab chaos: {}</title>\
         <style>body{{font-family:sans-serif;margin:16px}} .v{{color:{verdict_color};\
         font-weight:bold}} .k{{display:inline-block;width:12px;height:10px;margin:0 4px 0 12px}}\
         iframe{{width:100%;height:900px;border:1px solid #ccc}}</style></head><body>\
         <h2>raftlab chaos: <span class='v'>{}</span></h2>\
         <p>seed {} &middot; {} nodes &middot; faults {} &middot; {} clients &middot; {} keys \
         &middot; {:.1} s &middot; {} operations, {:.1} ops/s &middot; linearizability: {} \
         &middot; lost writes: {}</p>\
         <p><span class='k' style='background:#337ab7'></span>write ok\
         <span class='k' style='background:#5cb85c'></span>get ok\
         <span class='k' style='background:#d9534f'></span>unknown outcome\
         <span class='k' style='background:{}'></span>kill\
         <span class='k' style='background:{}'></span>pause\
         <span class='k' style='background:{}'></span>partition</p>\n{svg}\n\
         <h3>Linearizability (lincheck)</h3>\
         <iframe src='linearizability.html'></iframe></body></html>\n",
        esc(&s.verdict),
        esc(&s.verdict),
        s.seed,
        s.nodes,
        esc(&s.faults.join(",")),
        s.clients,
        s.keys,
        s.seconds,
        s.operations,
        s.ops_per_sec,
        esc(&s.linearizability),
        s.lost_writes.len(),
        color(FaultKind::Kill),
        color(FaultKind::Pause),
        color(FaultKind::Partition),
    )
}

pub fn write(out: &Path, name: &str, contents: &[u8]) -> anyhow::Result<()> {
    let path = out.join(name);
    std::fs::write(&path, contents).with_context(|| format!("cannot write {}", path.display()))
}

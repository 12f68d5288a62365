//! A self-contained HTML page (inline CSS and JavaScript, nothing fetched) showing a checked history: per
//! partition, one row per client with each operation as a bar from call to return, and the partial
//! linearizations the search found. Clicking an operation shows the longest partial linearization that
//! contains it, in order, with the model state after each step.

use std::fmt::Write as _;
use std::io::{self, Write};

use crate::checker::{CheckResult, LinearizationInfo};
use crate::model::Model;

/// Writes the HTML page for `info` (from [`crate::check_with_info`]) to `out`.
pub fn visualize<M: Model, W: Write>(
    model: &M,
    info: &LinearizationInfo<M::Input, M::Output>,
    mut out: W,
) -> io::Result<()> {
    let data = data_json(model, info);
    let mut page = String::with_capacity(data.len() + PAGE_HEAD.len() + PAGE_SCRIPT.len() + 256);
    page.push_str(PAGE_HEAD);
    page.push_str("<script>\nconst DATA = ");
    page.push_str(&data);
    page.push_str(";\n");
    page.push_str(PAGE_SCRIPT);
    page.push_str("</script>\n</body>\n</html>\n");
    out.write_all(page.as_bytes())?;
    out.flush()
}

/// The history and search results as a JSON object for the page's script.
fn data_json<M: Model>(model: &M, info: &LinearizationInfo<M::Input, M::Output>) -> String {
    let mut s = String::new();
    s.push_str("{\"result\":");
    push_str(&mut s, &info.result.to_string());
    s.push_str(",\"partitions\":[");
    // Bad partitions first: they are what the reader is looking for.
    let mut order: Vec<usize> = (0..info.partitions.len()).collect();
    order.sort_by_key(|&i| match info.partitions[i].result {
        CheckResult::NotLinearizable => 0,
        CheckResult::Unknown => 1,
        CheckResult::Linearizable => 2,
    });
    for (n, &pi) in order.iter().enumerate() {
        let part = &info.partitions[pi];
        if n > 0 {
            s.push(',');
        }
        s.push_str("{\"name\":");
        push_str(&mut s, &part.name);
        s.push_str(",\"result\":");
        push_str(&mut s, &part.result.to_string());
        s.push_str(",\"bad\":");
        s.push_str(if part.result == CheckResult::Linearizable {
            "false"
        } else {
            "true"
        });

        // Draw with time ranks, not raw times, so that the timeline stays compact.
        let ops: Vec<_> = part
            .ops
            .iter()
            .filter_map(|&i| info.history.get(i))
            .collect();
        let mut times: Vec<u64> = ops
            .iter()
            .flat_map(|op| [Some(op.call), (!op.is_pending()).then_some(op.ret)])
            .flatten()
            .collect();
        times.sort_unstable();
        times.dedup();
        let rank = |t: u64| times.partition_point(|&x| x < t);
        s.push_str(",\"width\":");
        let _ = write!(s, "{}", times.len());
        s.push_str(",\"ops\":[");
        for (k, op) in ops.iter().enumerate() {
            if k > 0 {
                s.push(',');
            }
            let _ = write!(
                s,
                "{{\"client\":{},\"call\":{},\"ret\":{},\"callTime\":{},\"retTime\":{},\"desc\":",
                op.client_id,
                rank(op.call),
                if op.is_pending() {
                    -1
                } else {
                    rank(op.ret.max(op.call)) as i64
                },
                op.call,
                if op.is_pending() {
                    "null".to_string()
                } else {
                    op.ret.to_string()
                },
            );
            push_str(&mut s, &model.describe_operation(&op.input, &op.output));
            s.push('}');
        }
        s.push_str("],\"init\":");
        let init = model.init();
        push_str(&mut s, &model.describe_state(&init));

        // Partial linearizations as positions in `ops`, with the state after each step.
        let local = |global: usize| part.ops.iter().position(|&g| g == global);
        s.push_str(",\"partials\":[");
        for (k, seq) in part.partial_linearizations.iter().enumerate() {
            if k > 0 {
                s.push(',');
            }
            s.push('[');
            let mut state = model.init();
            for (j, &g) in seq.iter().enumerate() {
                let (Some(op), Some(pos)) = (info.history.get(g), local(g)) else {
                    continue;
                };
                let after = model.step(&state, &op.input, &op.output);
                if j > 0 {
                    s.push(',');
                }
                let _ = write!(s, "{{\"op\":{pos},\"state\":");
                match after {
                    Some(next) => {
                        push_str(&mut s, &model.describe_state(&next));
                        state = next;
                    }
                    // Cannot happen for a sequence the checker accepted, unless the model is not a function.
                    None => push_str(&mut s, "(model rejected this step on replay)"),
                }
                s.push('}');
            }
            s.push(']');
        }
        s.push_str("],\"longest\":[");
        for (k, l) in part.longest_containing.iter().enumerate() {
            if k > 0 {
                s.push(',');
            }
            match l {
                Some(i) => {
                    let _ = write!(s, "{i}");
                }
                None => s.push_str("-1"),
            }
        }
        s.push_str("]}");
    }
    s.push_str("]}");
    s
}

/// Appends `text` as a JSON string literal that is also safe inside a `<script>` element.
fn push_str(s: &mut String, text: &str) {
    s.push('"');
    for c in text.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            // `<`, `>` and `&` escaped so that no `</script>` or HTML entity can appear in the page.
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(s, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(s, "\\u{:04x}", c as u32);
            }
            c => s.push(c),
        }
    }
    s.push('"');
}

const PAGE_HEAD: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>lincheck: history</title>
<style>
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; margin-bottom: 0.2em; }
.summary { margin-bottom: 1em; }
.bad { color: #b00020; font-weight: bold; }
.good { color: #1b7a2e; font-weight: bold; }
details { border: 1px solid #ccc; border-radius: 4px; margin: 0.8em 0; padding: 0.4em 0.8em; }
summary { cursor: pointer; font-weight: bold; }
.timeline { position: relative; overflow-x: auto; overflow-y: hidden; border: 1px solid #eee; margin: 0.6em 0; background: #fcfcfc; }
.canvas { position: relative; }
.label { position: absolute; left: 0; width: 70px; font-size: 12px; color: #555; text-align: right; padding-right: 6px; box-sizing: border-box; }
.rowline { position: absolute; left: 76px; right: 0; border-top: 1px dashed #e4e4e4; }
.op { position: absolute; height: 22px; font-size: 11px; line-height: 22px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis;
      border: 1px solid #8a8a8a; border-radius: 3px; background: #e8e8e8; color: #333; padding: 0 3px; box-sizing: border-box; cursor: pointer; }
.op.pending { border-style: dashed; background: repeating-linear-gradient(45deg, #f3f3f3, #f3f3f3 5px, #e6e6e6 5px, #e6e6e6 10px); }
.op.lin { background: #bfe6c6; border-color: #2e8b47; color: #113; }
.op.selected { outline: 2px solid #000; }
.op .num { display: inline-block; background: #2e8b47; color: #fff; border-radius: 7px; padding: 0 4px; margin-right: 3px; font-size: 10px; line-height: 14px; }
table { border-collapse: collapse; font-size: 13px; margin-top: 0.4em; }
td, th { border: 1px solid #ddd; padding: 2px 8px; text-align: left; }
th { background: #f2f2f2; }
.note { font-size: 13px; color: #444; max-width: 60em; }
code { background: #f2f2f2; padding: 0 3px; }
</style>
</head>
<body>
<h1>Linearizability check</h1>
<div id="app"></div>
"#;

const PAGE_SCRIPT: &str = r#"
(function () {
  const app = document.getElementById('app');
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  const summary = el('div', 'summary');
  summary.appendChild(document.createTextNode('Result: '));
  const bad = DATA.result !== 'linearizable';
  summary.appendChild(el('span', bad ? 'bad' : 'good', DATA.result));
  summary.appendChild(document.createTextNode(' (' + DATA.partitions.length + ' partition' + (DATA.partitions.length === 1 ? '' : 's') + ')'));
  app.appendChild(summary);
  app.appendChild(el('p', 'note',
    'Each row is a client; each bar an operation from its call to its return (dashed: outcome unknown, it never returned and may or may not have taken effect). ' +
    'Green bars numbered #1, #2, ... form the selected partial linearization: an order in which those operations can take effect, consistent with real time and the model. ' +
    'For a history that is not linearizable it is the longest prefix the checker found; no operation left over can come next. ' +
    'Click an operation to show the longest partial linearization containing it; the table lists the steps with the state after each.'));

  const UNIT = 26, ROW = 28, LEFT = 80;
  DATA.partitions.forEach(function (p) {
    const box = el('details');
    if (p.bad) box.open = true;
    const title = el('summary');
    title.appendChild(document.createTextNode((p.name || 'history') + ': '));
    title.appendChild(el('span', p.bad ? 'bad' : 'good', p.result));
    title.appendChild(document.createTextNode(' \u2014 ' + p.ops.length + ' operations'));
    box.appendChild(title);

    const clients = Array.from(new Set(p.ops.map(function (o) { return o.client; }))).sort(function (a, b) { return a - b; });
    const row = new Map(clients.map(function (c, i) { return [c, i]; }));
    const timeline = el('div', 'timeline');
    const canvas = el('div', 'canvas');
    const end = p.width + 1;
    canvas.style.width = (LEFT + (end + 1) * UNIT) + 'px';
    canvas.style.height = (clients.length * ROW + 8) + 'px';
    clients.forEach(function (c, i) {
      const l = el('div', 'label', 'client ' + c);
      l.style.top = (i * ROW + 8) + 'px';
      canvas.appendChild(l);
      const line = el('div', 'rowline');
      line.style.top = (i * ROW + 15) + 'px';
      canvas.appendChild(line);
    });
    const bars = p.ops.map(function (o, k) {
      const b = el('div', 'op' + (o.ret < 0 ? ' pending' : ''));
      const right = o.ret < 0 ? end : o.ret;
      b.style.left = (LEFT + o.call * UNIT) + 'px';
      b.style.width = Math.max((right - o.call) * UNIT + UNIT * 0.8, 18) + 'px';
      b.style.top = (row.get(o.client) * ROW + 4) + 'px';
      b.dataset.k = k;
      canvas.appendChild(b);
      return b;
    });
    timeline.appendChild(canvas);
    box.appendChild(timeline);
    const info = el('div');
    box.appendChild(info);

    function show(partialIndex, selectedOp) {
      const seq = partialIndex >= 0 ? p.partials[partialIndex] : [];
      const pos = new Map(seq.map(function (s, i) { return [s.op, i]; }));
      bars.forEach(function (b, k) {
        const o = p.ops[k];
        b.className = 'op' + (o.ret < 0 ? ' pending' : '') + (pos.has(k) ? ' lin' : '') + (k === selectedOp ? ' selected' : '');
        b.textContent = '';
        if (pos.has(k)) b.appendChild(el('span', 'num', '#' + (pos.get(k) + 1)));
        b.appendChild(document.createTextNode(o.desc));
        let tip = 'client ' + o.client + ': ' + o.desc + '\ncalled at ' + o.callTime + ', ' + (o.retTime === null ? 'never returned (outcome unknown)' : 'returned at ' + o.retTime);
        if (pos.has(k)) {
          const i = pos.get(k);
          tip += '\nlinearized #' + (i + 1) + ': state ' + (i === 0 ? p.init : seq[i - 1].state) + ' \u2192 ' + seq[i].state;
        } else {
          tip += '\nnot in the selected linearization';
        }
        b.title = tip;
      });
      info.textContent = '';
      const done = seq.length, total = p.ops.length;
      const pendingLeft = p.ops.filter(function (o, k) { return o.ret < 0 && !pos.has(k); }).length;
      let text;
      if (partialIndex < 0) {
        text = 'The checker found no operation that can take effect first.';
      } else if (!p.bad && partialIndex === 0) {
        text = 'A complete linearization (' + done + ' steps' + (pendingLeft ? '; ' + pendingLeft + ' operation(s) of unknown outcome never took effect' : '') + ').';
      } else {
        text = (partialIndex === 0 ? 'Longest linearizable prefix found: ' : 'Partial linearization: ') + done + ' of ' + total + ' operations.';
        if (p.bad && partialIndex === 0) text += ' After it, no remaining operation can take effect next: the next forced return (the leftmost unlinearized bar that ends) cannot be explained.';
      }
      info.appendChild(el('p', 'note', text));
      const table = el('table');
      const head = el('tr');
      ['#', 'client', 'operation', 'state after'].forEach(function (h) { head.appendChild(el('th', null, h)); });
      table.appendChild(head);
      const first = el('tr');
      first.appendChild(el('td', null, '0'));
      first.appendChild(el('td', null, ''));
      first.appendChild(el('td', null, '(initial state)'));
      first.appendChild(el('td', null, p.init));
      table.appendChild(first);
      seq.forEach(function (s, i) {
        const tr = el('tr');
        tr.appendChild(el('td', null, String(i + 1)));
        tr.appendChild(el('td', null, String(p.ops[s.op].client)));
        tr.appendChild(el('td', null, p.ops[s.op].desc));
        tr.appendChild(el('td', null, s.state));
        table.appendChild(tr);
      });
      info.appendChild(table);
    }
    canvas.addEventListener('click', function (ev) {
      const t = ev.target.closest('.op');
      if (!t) { show(p.partials.length ? 0 : -1, -1); return; }
      const k = Number(t.dataset.k);
      const l = p.longest[k];
      show(l >= 0 ? l : (p.partials.length ? 0 : -1), k);
    });
    show(p.partials.length ? 0 : -1, -1);
    app.appendChild(box);
  });
})();
"#;

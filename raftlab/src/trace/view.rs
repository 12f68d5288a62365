//! `raftlab view TRACE -o run.html`: one self-contained page (inline JS and CSS, nothing
//! fetched) that replays a run: the cluster at the chosen event, messages in flight, the log
//! matrix, a timeline per node, the event list, and jumps to the next election, fault, commit,
//! the failure and the first safety violation (the one `raftlab check-trace` reports).
//!
//! The page writes what it shows at the current event into `<pre id="selfcheck">` (JSON), so a
//! headless browser's `--dump-dom` lets a test check what it drew. `#ev=N` in the address
//! selects event N (the numbers of `raftlab log`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use super::check::first_violation;
use super::{Event, load};

#[derive(Debug, clap::Args)]
pub struct ViewArgs {
    /// The trace (RAFTLAB_TRACE).
    trace: PathBuf,
    /// The page to write [default: the trace's name with .html].
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
}

/// The page for `events`, titled `title`.
pub fn page(events: &[Event], title: &str) -> String {
    let compact: Vec<Value> = events
        .iter()
        .map(|e| {
            let mut v = e.v.clone();
            if let Some(o) = v.as_object_mut() {
                o.retain(|k, v| !v.is_null() && k != "target" && k != "level");
            }
            v
        })
        .collect();
    let violation = first_violation(events).map(|v| {
        json!({ "event": v.event, "property": v.property, "message": v.message, "nodes": v.nodes })
    });
    let data = json!({ "title": title, "events": compact, "violation": violation });
    // Inside <script>, "</" would end the element.
    let data = data.to_string().replace("</", "<\\/");
    TEMPLATE
        .replace("__TITLE__", &html_escape(title))
        .replace("__DATA__", &data)
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Writes the page for the trace at `trace` to `out`.
pub fn write_page(trace: &Path, out: &Path) -> Result<usize> {
    let events = load(trace)?;
    let title = trace
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let html = page(&events, &title);
    std::fs::write(out, &html).with_context(|| format!("cannot write {}", out.display()))?;
    Ok(html.len())
}

pub fn run(args: ViewArgs) -> Result<ExitCode> {
    let out = args
        .output
        .clone()
        .unwrap_or_else(|| args.trace.with_extension("html"));
    let bytes = write_page(&args.trace, &out)?;
    println!(
        "wrote {} ({} KB); open it in a browser (add #ev=N to start at event N)",
        out.display(),
        bytes / 1024
    );
    Ok(ExitCode::SUCCESS)
}

const TEMPLATE: &str = r##"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>raftlab: __TITLE__</title>
<style>
body{font:13px/1.35 system-ui,sans-serif;margin:0;background:#fafafa;color:#222}
header{padding:6px 10px;background:#263238;color:#eee;display:flex;gap:8px;align-items:center;flex-wrap:wrap}
header b{font-size:14px} button,select,input{font:inherit}
#scrub{flex:1;min-width:200px}
main{display:grid;grid-template-columns:360px 1fr;gap:8px;padding:8px}
section{background:#fff;border:1px solid #ddd;border-radius:4px;padding:6px;overflow:auto}
h2{font-size:12px;margin:0 0 4px;text-transform:uppercase;color:#555}
table{border-collapse:collapse} td,th{padding:1px 5px;border-bottom:1px solid #eee;text-align:left}
.leader{color:#c62828;font-weight:bold}.candidate{color:#ef6c00}.precandidate{color:#f9a825}.down{color:#999}
#matrix td{width:18px;height:16px;padding:0;text-align:center;font-size:10px;border:1px solid #fff}
#matrix td.c{outline:2px solid #333;outline-offset:-2px}
#matrix td.over{background-image:repeating-linear-gradient(45deg,transparent 0 3px,rgba(0,0,0,.35) 3px 4px)}
#events div{white-space:pre;font-family:ui-monospace,monospace;font-size:12px;cursor:pointer}
#events div.cur{background:#fff59d}
.k-test{color:#000;font-weight:bold}.k-fail{color:#c62828;font-weight:bold}.k-node{color:#795548}.k-rpc{color:#1565c0}.k-kv{color:#6a1b9a}
#violation{color:#c62828;font-weight:bold}
#selfcheck{display:none}
</style></head><body>
<header><b>__TITLE__</b>
<button id="prev" title="previous event (←)">◀</button><button id="play">▶ play</button><button id="next" title="next event (→)">▶|</button>
<select id="speed"><option value="1">1 ev/frame</option><option value="10">10</option><option value="100">100</option></select>
<input id="scrub" type="range" min="0" value="0"><span id="pos"></span>
<button data-jump="election">next election</button><button data-jump="fault">next fault</button><button data-jump="commit">next commit</button><button data-jump="fail">failure</button><button data-jump="violation">first violation</button>
<select id="group"></select>
</header>
<div id="violation" style="padding:0 10px"></div>
<main>
<div>
<section><h2>Cluster</h2><svg id="ring" width="340" height="260"></svg></section>
<section><h2>Nodes</h2><table id="nodes"></table></section>
</div>
<div>
<section><h2>Log matrix (cell: term; outlined: committed; hatched: overwritten later)</h2><table id="matrix"></table></section>
<section><h2>Timeline (one lane per node: leader red, candidate orange, pre-candidate yellow, follower grey, down white; faults below)</h2><canvas id="timeline" width="900" height="120"></canvas></section>
<section><h2>Events <input id="filter" placeholder="filter: kind or text" size="24"> <select id="nodefilter"><option value="">all nodes</option></select></h2><div id="events"></div></section>
<section id="kvsec" style="display:none"><h2>Client operations (kv.op: get blue, put/append green) <span id="kvcheck"></span></h2><canvas id="kv" width="900" height="80"></canvas></section>
</div></main>
<pre id="selfcheck"></pre>
<script id="data" type="application/json">__DATA__</script>
<script>
"use strict";
const D=JSON.parse(document.getElementById("data").textContent);
const E=D.events, N=E.length;
const $=id=>document.getElementById(id);
const groups=[];for(const e of E){if(e.kind&&e.kind.startsWith("node.")){const g=e.group??null;if(!groups.includes(g))groups.push(g);}}
if(!groups.length)groups.push(null);
let group=groups[0];
for(const g of groups){const o=document.createElement("option");o.value=g??"";o.textContent=g===null?"group: -":"group "+g;$("group").appendChild(o);}
const inGroup=e=>(e.group??null)===group;
function fresh(){return {nodes:{},inflight:{},reliable:true};}
function node(s,id){return s.nodes[id]??=(s.nodes[id]={role:"follower",term:0,vote:null,leader:null,commit:0,applied:0,snap:0,terms:[],up:true,connected:true});}
function clone(s){const c={nodes:{},inflight:Object.assign({},s.inflight),reliable:s.reliable};for(const k in s.nodes){c.nodes[k]=Object.assign({},s.nodes[k],{terms:s.nodes[k].terms.slice()});}return c;}
function apply(s,e){
  const k=e.kind;
  if(k.startsWith("node.")){if(!inGroup(e))return;const n=node(s,e.id);
    if(k==="node.state"){for(const f of ["role","term","commit","applied","snap"])n[f]=e[f]??0;n.vote=e.vote??null;n.leader=e.leader??null;n.up=true;}
    else if(k==="node.log"){n.terms.length=Math.max(0,(e.from||1)-1);for(let i=n.terms.length;i<(e.from||1)-1;i++)n.terms[i]=0;n.terms.push(...(e.terms||[]));}
    else if(k==="node.boot"){const sn=e.snap||0;n.up=true;n.role="follower";n.term=e.term||0;n.commit=sn;n.applied=sn;n.snap=sn;if(n.terms.length<sn||(sn>0&&n.terms[sn-1]!==e.snap_term)){n.terms=new Array(sn).fill(0);if(sn>0)n.terms[sn-1]=e.snap_term;}else n.terms.length=sn;n.terms.push(...(e.terms||[]));}
    else if(k==="node.snapshot"){const i=e.index||0;if(i>0&&n.terms[i-1]!==e.term){n.terms=new Array(i).fill(0);n.terms[i-1]=e.term;}n.snap=Math.max(n.snap,i);}
  }else if(k.startsWith("test.")&&group===null&&e.server!==undefined){const n=node(s,e.server);
    if(k==="test.crash"){n.up=false;n.role="down";}else if(k==="test.start"){n.up=true;}else if(k==="test.connect")n.connected=true;else if(k==="test.disconnect")n.connected=false;
  }else if(k==="rpc.call"&&e.msg){s.inflight[e.id]={from:e.msg.from,to:e.msg.to,type:e.msg.type,dropped:false,at:e.t_us};}
  else if(k==="rpc.return"||k==="rpc.fail"){delete s.inflight[e.id];}
  else if((k==="rpc.drop_request"||k==="rpc.drop_reply"||k==="rpc.rule_drop"||k==="rpc.no_route")&&s.inflight[e.id]){s.inflight[e.id].dropped=true;}
  else if(k==="net.reliable"){s.reliable=!!e.on;}
}
// Checkpoints every 1000 events make any position a short replay.
// `final` is the last state: the log matrix marks entries that are overwritten by then.
const STEP=1000, cps=[];let final;
function rebuild(){cps.length=0;let s=fresh();for(let i=0;i<N;i++){if(i%STEP===0)cps.push(clone(s));apply(s,E[i]);}final=s;}
function stateAt(i){if(N===0)return fresh();i=Math.max(0,Math.min(N-1,i));const s=clone(cps[Math.floor(i/STEP)]);for(let j=Math.floor(i/STEP)*STEP;j<=i;j++)apply(s,E[j]);return s;}
rebuild();
let cur=0;
const hashEv=/#ev=(\d+)/.exec(location.hash);if(hashEv)cur=Math.min(N-1,+hashEv[1]);
$("scrub").max=Math.max(0,N-1);
const termColour=t=>t===0?"#eee":`hsl(${(t*67)%360} 60% 72%)`;
function leaderOf(s){let best=null;for(const id in s.nodes){const n=s.nodes[id];if(n.up&&n.role==="leader"&&(best===null||n.term>s.nodes[best].term))best=id;}return best===null?null:+best;}
function draw(){
  const s=stateAt(cur), e=E[cur]||{t_us:0,kind:""};
  $("scrub").value=cur;$("pos").textContent=`#${cur} / ${N-1}  t=${(e.t_us/1e6).toFixed(3)}s  ${s.reliable?"":"UNRELIABLE"}`;
  const ids=Object.keys(s.nodes).map(Number).sort((a,b)=>a-b);
  // ring
  const svg=$("ring"), cx=170, cy=130, r=95;let h="";
  const pos={};ids.forEach((id,i)=>{const a=2*Math.PI*i/ids.length-Math.PI/2;pos[id]=[cx+r*Math.cos(a),cy+r*Math.sin(a)];});
  const col={RequestVote:"#ef6c00",RequestVoteReply:"#ffb74d",PreVote:"#f9a825",PreVoteReply:"#fff176",AppendEntries:"#1565c0",AppendEntriesReply:"#64b5f6",InstallSnapshot:"#6a1b9a",InstallSnapshotReply:"#ba68c8",TimeoutNow:"#2e7d32",TimeoutNowReply:"#81c784"};
  for(const id in s.inflight){const m=s.inflight[id];const a=pos[m.from],b=pos[m.to];if(!a||!b)continue;
    h+=`<line x1="${a[0]}" y1="${a[1]}" x2="${(a[0]+b[0])/2}" y2="${(a[1]+b[1])/2}" stroke="${col[m.type]||"#999"}" stroke-width="2" ${m.dropped?'stroke-dasharray="4 3" opacity=".5"':""}/>`;}
  for(const id of ids){const n=s.nodes[id],[x,y]=pos[id];const fill=!n.up?"#fff":n.role==="leader"?"#ef5350":n.role==="candidate"?"#ffa726":n.role==="precandidate"?"#fff176":"#b0bec5";
    h+=`<circle cx="${x}" cy="${y}" r="22" fill="${fill}" stroke="${n.connected?"#333":"#c62828"}" stroke-width="${n.connected?1:3}" ${n.connected?"":'stroke-dasharray="3 3"'}/><text x="${x}" y="${y-3}" text-anchor="middle" font-weight="bold">${id}</text><text x="${x}" y="${y+11}" text-anchor="middle" font-size="10">t${n.term}</text>`;}
  svg.innerHTML=h;
  // nodes table
  let t="<tr><th>node</th><th>role</th><th>term</th><th>vote</th><th>leader</th><th>commit</th><th>applied</th><th>last</th><th>net</th></tr>";
  for(const id of ids){const n=s.nodes[id];t+=`<tr><td>${id}</td><td class="${n.up?n.role:"down"}">${n.up?n.role:"down"}</td><td>${n.term}</td><td>${n.vote??"-"}</td><td>${n.leader??"-"}</td><td>${n.commit}</td><td>${n.applied}</td><td>${n.terms.length}</td><td>${n.connected?"":"cut off"}</td></tr>`;}
  $("nodes").innerHTML=t;
  // log matrix
  const maxLen=Math.max(0,...ids.map(id=>s.nodes[id].terms.length));const from=Math.max(1,maxLen-59);
  let m="<tr><th></th>";for(let i=from;i<=maxLen;i++)m+=`<th style="font-size:9px">${i}</th>`;m+="</tr>";
  for(const id of ids){const n=s.nodes[id],f=final.nodes[id];m+=`<tr><th>${id}</th>`;
    for(let i=from;i<=maxLen;i++){const term=n.terms[i-1];if(term===undefined){m+="<td></td>";continue;}
      const over=f&&f.terms[i-1]!==undefined&&f.terms[i-1]!==0&&term!==0&&f.terms[i-1]!==term;
      m+=`<td data-node="${id}" data-index="${i}" class="${i<=n.commit?"c":""} ${over?"over":""}" style="background:${i<=n.snap?"#ddd":termColour(term)}">${term||""}</td>`;}
    m+="</tr>";}
  $("matrix").innerHTML=m;
  drawTimeline(ids);
  // events
  const filter=$("filter").value.trim(), nf=$("nodefilter").value;let shown=[],j=cur;
  const ok=ev=>(!filter||JSON.stringify(ev).includes(filter))&&(!nf||String(ev.id??ev.server??(ev.msg&&ev.msg.from))===nf);
  for(let k=cur;k>=0&&shown.length<12;k--)if(ok(E[k]))shown.unshift(k);
  for(let k=cur+1;k<N&&shown.length<30;k++)if(ok(E[k]))shown.push(k);
  $("events").innerHTML=shown.map(k=>{const ev=E[k];const cls=ev.kind==="test.fail"||ev.kind==="test.violation"?"k-fail":"k-"+ev.kind.split(".")[0];
    return `<div data-ev="${k}" class="${k===cur?"cur":""} ${cls}">#${String(k).padEnd(6)} ${(ev.t_us/1e6).toFixed(3).padStart(8)}s  ${describe(ev)}</div>`;}).join("");
  const L=leaderOf(s);
  const logs={},commits={};for(const id of ids){logs[id]=s.nodes[id].terms;commits[id]=s.nodes[id].commit;}
  $("selfcheck").textContent=JSON.stringify({events:N,event:cur,group,nodes:ids,leader:L,term:L===null?null:s.nodes[L].term,logs,commit:commits,inflight:Object.keys(s.inflight).length,violation:D.violation?D.violation.event:null});
  if(location.hash!=="#ev="+cur)history.replaceState(null,"","#ev="+cur);
}
function describe(e){const m=e.msg;const f=m?`${m.from}->${m.to} ${m.type} term=${m.term}${m.type==="AppendEntries"?` prev=(${m.prev_index},${m.prev_term}) entries=[${m.terms}] commit=${m.commit}`:""}${m.granted!==undefined?" granted="+m.granted:""}${m.success!==undefined?" success="+m.success+" match="+m.match:""}`:"";
  switch(e.kind){case "node.state":return `node ${e.id}: ${e.role} term=${e.term} vote=${e.vote??"-"} commit=${e.commit} applied=${e.applied}`;
  case "node.log":return `node ${e.id}: log from ${e.from}: [${e.terms}]`;case "node.snapshot":return `node ${e.id}: snapshot (${e.index},${e.term})`;
  case "rpc.call":return "send "+f;case "rpc.return":return m?"reply "+f:"reply (none)";case "log":return e.message||"";
  default:{const c=Object.assign({},e);delete c.t_us;delete c.kind;return e.kind+" "+JSON.stringify(c);}}}
// Timeline: role bands per node; faults (unreliable network, cut-off and down nodes) below.
const bands={};{let s=fresh();const last={};for(let i=0;i<N;i++){apply(s,E[i]);for(const id in s.nodes){const n=s.nodes[id];const key=(n.up?n.role:"down")+(n.connected?"":"/cut");const b=(bands[id]??=[]);if(!b.length||b[b.length-1].key!==key)b.push({key,t:E[i].t_us});}}}
const tEnd=N?E[N-1].t_us||1:1;
function drawTimeline(ids){const c=$("timeline"),g=c.getContext("2d");c.height=20*ids.length+30;g.clearRect(0,0,c.width,c.height);
  const x=t=>40+(c.width-50)*t/tEnd;
  ids.forEach((id,row)=>{g.fillStyle="#333";g.fillText("node "+id,2,row*20+13);const b=bands[id]||[];
    b.forEach((band,k)=>{const t1=k+1<b.length?b[k+1].t:tEnd;const role=band.key.split("/")[0];g.fillStyle=role==="leader"?"#ef5350":role==="candidate"?"#ffa726":role==="precandidate"?"#fff176":role==="down"?"#fff":"#cfd8dc";g.fillRect(x(band.t),row*20+2,Math.max(1,x(t1)-x(band.t)),14);if(band.key.includes("/cut")){g.fillStyle="rgba(198,40,40,.6)";g.fillRect(x(band.t),row*20+14,Math.max(1,x(t1)-x(band.t)),3);}});});
  let rel=true,from=0;g.fillStyle="rgba(106,27,154,.4)";for(const e of E){if(e.kind==="net.reliable"){if(!e.on&&rel){rel=false;from=e.t_us;}else if(e.on&&!rel){rel=true;g.fillRect(x(from),ids.length*20+4,x(e.t_us)-x(from),8);}}}if(!rel)g.fillRect(x(from),ids.length*20+4,x(tEnd)-x(from),8);
  g.fillStyle="#333";g.fillText("unreliable",2,ids.length*20+12);
  const tc=(E[cur]||{t_us:0}).t_us;g.strokeStyle="#000";g.beginPath();g.moveTo(x(tc),0);g.lineTo(x(tc),c.height);g.stroke();}
$("timeline").onclick=ev=>{const c=$("timeline"),r=c.getBoundingClientRect();const t=(ev.clientX-r.left-40)/(c.width-50)*tEnd;let k=0;while(k<N-1&&E[k].t_us<t)k++;go(k);};
// client operations
const ops=E.filter(e=>e.kind==="kv.op");if(ops.length){$("kvsec").style.display="";const c=$("kv"),g=c.getContext("2d");const clients=[...new Set(ops.map(o=>o.client??-1))];c.height=14*clients.length+10;
  for(const o of ops){const row=clients.indexOf(o.client??-1);const x=t=>40+(c.width-50)*t/tEnd;g.fillStyle=o.op==="get"?"#42a5f5":"#66bb6a";g.fillRect(x(o.start_us||0),row*14+2,Math.max(2,x(o.t_us)-x(o.start_us||0)),10);}
  clients.forEach((cl,row)=>{g.fillStyle="#333";g.fillText("c"+cl,2,row*14+11);});
  const chk=E.find(e=>e.kind==="kv.check"),vis=E.find(e=>e.kind==="kv.visualization");
  if(chk){$("kvcheck").textContent=`linearizability check: ${chk.result} (${chk.operations} operations)`+(vis?`; the failing history, step by step: ${vis.path}`:"");if(chk.result!=="linearizable")$("kvcheck").style.color="#c62828";}}
function go(i){cur=Math.max(0,Math.min(N-1,i));draw();}
function find(pred){for(let i=cur+1;i<N;i++)if(pred(E[i],i))return i;return -1;}
const jumps={election:e=>e.kind==="node.state"&&e.role==="candidate"&&inGroup(e),
  fault:e=>e.kind==="test.disconnect"||e.kind==="test.crash"||(e.kind==="net.reliable"&&!e.on)||e.kind.startsWith("rpc.rule"),
  commit:(e,i)=>{if(e.kind!=="node.state"||!inGroup(e))return false;const p=stateAt(i-1).nodes[e.id];return !p||e.commit>p.commit;},
  fail:e=>e.kind==="test.fail"||e.kind==="test.violation"};
document.querySelectorAll("[data-jump]").forEach(b=>b.onclick=()=>{const k=b.dataset.jump;
  if(k==="violation"){if(D.violation)go(D.violation.event);return;}if(k==="fail"){for(let i=0;i<N;i++)if(jumps.fail(E[i])){go(i);return;}return;}
  const i=find(jumps[k]);if(i>=0)go(i);});
$("prev").onclick=()=>go(cur-1);$("next").onclick=()=>go(cur+1);
$("scrub").oninput=()=>go(+$("scrub").value);
$("filter").oninput=draw;$("nodefilter").onchange=draw;
$("group").onchange=()=>{group=$("group").value===""?null:$("group").value;rebuild();draw();};
$("events").onclick=ev=>{const d=ev.target.closest("[data-ev]");if(d)go(+d.dataset.ev);};
let timer=null;$("play").onclick=()=>{if(timer){clearInterval(timer);timer=null;$("play").textContent="▶ play";return;}$("play").textContent="❚❚ pause";timer=setInterval(()=>{if(cur>=N-1){clearInterval(timer);timer=null;$("play").textContent="▶ play";return;}go(cur+(+$("speed").value));},60);};
document.addEventListener("keydown",ev=>{if(ev.target.tagName==="INPUT")return;if(ev.key==="ArrowLeft")go(cur-1);if(ev.key==="ArrowRight")go(cur+1);});
window.addEventListener("hashchange",()=>{const h=/#ev=(\d+)/.exec(location.hash);if(h&&+h[1]!==cur)go(+h[1]);});
{const ids=new Set();for(const e of E)if(e.kind.startsWith("node.")&&e.id!==undefined)ids.add(e.id);for(const id of [...ids].sort((a,b)=>a-b)){const o=document.createElement("option");o.value=id;o.textContent="node "+id;$("nodefilter").appendChild(o);}}
if(D.violation)$("violation").textContent=`first safety violation: ${D.violation.property} at event #${D.violation.event}: ${D.violation.message}`;
draw();
</script></body></html>
"##;

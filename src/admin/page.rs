//! The status page: server-rendered HTML (every value escaped here, once), refreshed in
//! place by a small script that fetches `/status/fragment` every two seconds, and an id
//! lookup box served by `/status/lookup`. No external assets.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use super::AdminState;
use super::history::{Series, unix_now};
use super::lookup::Lookup;

/// Escapes text for HTML content and attribute values.
#[must_use]
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}\
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.4em}\
table{border-collapse:collapse;margin:.3em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right;white-space:nowrap}\
th{background:#eee}td:first-child,th:first-child{text-align:left}.l{text-align:left}\
.bad{color:#b00}.ok{color:#070}.muted{color:#777}svg{vertical-align:middle}\
.bar{display:inline-block;width:80px;height:8px;background:#eee;vertical-align:middle}\
.bar i{display:block;height:8px;background:#48c}#lookup input{width:36em}";

const SCRIPT: &str = "(function(){\
var live=document.getElementById('live');\
function refresh(){fetch('/status/fragment',{cache:'no-store'}).then(function(r){return r.ok?r.text():Promise.reject(r.status)})\
.then(function(h){live.innerHTML=h;document.getElementById('conn').textContent='live'})\
.catch(function(){document.getElementById('conn').textContent='disconnected'})}\
setInterval(refresh,2000);\
document.getElementById('lookup').addEventListener('submit',function(e){e.preventDefault();\
var q=document.getElementById('q').value;\
fetch('/status/lookup?id='+encodeURIComponent(q),{cache:'no-store'}).then(function(r){return r.text()})\
.then(function(h){document.getElementById('answer').innerHTML=h})});\
})();";

/// The whole page.
#[must_use]
pub fn page(s: &AdminState) -> String {
    let mut h = String::with_capacity(16 * 1024);
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>otel-pinpoint-bridge</title>\
         <style>{STYLE}</style></head><body><h1>otel-pinpoint-bridge {}</h1>\
         <p><a href=\"/metrics\">metrics</a> · <a href=\"/healthz\">healthz</a> · \
         <a href=\"/readyz\">readyz</a> · page <span id=\"conn\">live</span></p>\
         <h2>Look up an id</h2><form id=\"lookup\"><input id=\"q\" name=\"id\" \
         placeholder=\"trace id, transaction id (agent^start^seq) or traceparent\" autocomplete=\"off\"> \
         <button type=\"submit\">Look up</button></form><div id=\"answer\"></div>\
         <div id=\"live\">",
        env!("CARGO_PKG_VERSION")
    );
    fragment(s, &mut h);
    let _ = writeln!(h, "</div><script>{SCRIPT}</script></body></html>");
    h
}

/// The live part of the page.
pub fn fragment(s: &AdminState, h: &mut String) {
    let now = unix_now();
    let current = s.current();
    s.history.observe(now, &current);
    let series = s.history.series();
    let ready = s.readiness();
    let _ = write!(
        h,
        "<p>Status: <b class=\"{}\">{}</b> · up {} · rates over the last {} s, sparklines over 15 min</p>",
        if ready.is_ok() { "ok" } else { "bad" },
        escape(&ready.err().unwrap_or_else(|| "ready".to_owned())),
        duration(s.started.elapsed().as_secs_f64()),
        series.interval_s
    );
    receivers(s, &series, &current, h);
    exporters(s, &series, &current, now, h);
    prefixed(
        "Pinpoint",
        "pp:",
        "held spans, virtual agents, link outcomes",
        &series,
        &current,
        h,
    );
    id_cache(&current, h);
    prefixed("Shared id store", "store:", "", &series, &current, h);
    routes(&series, &current, h);
}

fn receivers(s: &AdminState, series: &Series, cur: &HashMap<String, f64>, h: &mut String) {
    h.push_str(
        "<h2>Receivers</h2><table><tr><th>receiver</th><th>address</th><th>accepted/s</th>\
         <th>refused/s</th><th>rejected/s</th><th>accepted</th><th>refused</th><th>rejected</th>\
         <th>failed requests</th><th>accepted, 15 min</th></tr>",
    );
    for (name, addr) in &s.receivers {
        let k = |w: &str| format!("rx:{name}:{w}");
        let _ = write!(
            h,
            "<tr id=\"rx-{0}\"><td>{0}</td><td class=\"l\">{1}</td><td class=\"rate\">{2}</td><td>{3}</td><td>{4}</td>\
             <td class=\"accepted\">{5}</td><td>{6}</td><td>{7}</td><td>{8}</td><td>{9}</td></tr>",
            escape(name),
            escape(&addr.to_string()),
            rate(series, &k("accepted")),
            rate(series, &k("refused")),
            rate(series, &k("rejected")),
            total(cur, &k("accepted")),
            total(cur, &k("refused")),
            total(cur, &k("rejected")),
            total(cur, &k("failed_requests")),
            sparkline(series, &k("accepted"), true),
        );
    }
    h.push_str("</table>");
}

fn exporters(
    s: &AdminState,
    series: &Series,
    cur: &HashMap<String, f64>,
    now: f64,
    h: &mut String,
) {
    h.push_str(
        "<h2>Exporters</h2><table><tr><th>exporter</th><th>type</th><th class=\"l\">target</th>\
         <th>queue</th><th>sent/s</th><th>sent</th><th>failed</th><th>dropped</th><th>retries</th>\
         <th>last success</th><th class=\"l\">last error</th><th>sent, 15 min</th></tr>",
    );
    for (e, info) in s.exporters.iter().zip(&s.exporter_info) {
        let k = |w: &str| format!("ex:{}:{w}", e.name);
        let queued = e.queued();
        let fill = if e.capacity == 0 {
            0.0
        } else {
            queued as f64 * 100.0 / e.capacity as f64
        };
        let last_error = e
            .last_error
            .lock()
            .ok()
            .and_then(|g| g.clone())
            .unwrap_or_default();
        let error_at = [k("failed"), k("retries")]
            .iter()
            .filter_map(|key| series.changed_at.get(key).copied())
            .fold(f64::NAN, f64::max);
        let _ = write!(
            h,
            "<tr id=\"ex-{}\"><td>{}</td><td>{}</td><td class=\"l\">{}</td>\
             <td><span class=\"bar\" title=\"{queued} of {} spans\"><i style=\"width:{:.0}%\"></i></span> {queued}</td>\
             <td>{}</td><td class=\"sent\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td class=\"l\">{}</td><td>{}</td></tr>",
            escape(&e.name),
            escape(&e.name),
            escape(e.kind),
            escape(&info.target),
            e.capacity,
            fill.min(100.0),
            rate(series, &k("sent")),
            e.sent.load(Ordering::Relaxed),
            e.failed.load(Ordering::Relaxed),
            e.dropped.load(Ordering::Relaxed),
            total(cur, &k("retries")),
            ago(series.changed_at.get(&k("sent")).copied(), now),
            if last_error.is_empty() {
                "<span class=\"muted\">none</span>".to_owned()
            } else {
                format!(
                    "<span class=\"bad\">{}</span> ({})",
                    escape(&last_error),
                    ago(error_at.is_finite().then_some(error_at), now)
                )
            },
            sparkline(series, &k("sent"), true),
        );
    }
    h.push_str("</table>");
}

/// Every series under a prefix, as name, value, and a sparkline (of the rate for
/// counters, of the value for gauges).
fn prefixed(
    title: &str,
    prefix: &str,
    what: &str,
    series: &Series,
    cur: &HashMap<String, f64>,
    h: &mut String,
) {
    let mut keys: Vec<&String> = cur.keys().filter(|k| k.starts_with(prefix)).collect();
    if keys.is_empty() {
        return;
    }
    keys.sort();
    let _ = write!(
        h,
        "<h2>{}</h2><p class=\"muted\">{}</p><table><tr><th>exporter</th><th class=\"l\">series</th>\
         <th>value</th><th>per s</th><th>15 min</th></tr>",
        escape(title),
        escape(what)
    );
    for k in keys {
        let mut parts = k.splitn(3, ':');
        let (_, owner, name) = (
            parts.next(),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
        );
        let counter = name.contains("_total");
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(owner),
            escape(name),
            total(cur, k),
            if counter {
                rate(series, k)
            } else {
                String::new()
            },
            sparkline(series, k, counter)
        );
    }
    h.push_str("</table>");
}

fn id_cache(cur: &HashMap<String, f64>, h: &mut String) {
    let mut maps: Vec<&str> = cur
        .keys()
        .filter_map(|k| k.strip_prefix("ids:"))
        .filter_map(|k| k.rsplit_once(':').map(|(m, _)| m))
        .collect();
    maps.sort_unstable();
    maps.dedup();
    if maps.is_empty() {
        return;
    }
    h.push_str("<h2>Id mapping cache</h2><table><tr><th>map</th><th>hits</th><th>misses</th><th>hit rate</th></tr>");
    for m in maps {
        let hits = cur.get(&format!("ids:{m}:hits")).copied().unwrap_or(0.0);
        let misses = cur.get(&format!("ids:{m}:misses")).copied().unwrap_or(0.0);
        let rate = if hits + misses > 0.0 {
            format!("{:.1} %", hits * 100.0 / (hits + misses))
        } else {
            "–".to_owned()
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{hits}</td><td>{misses}</td><td>{rate}</td></tr>",
            escape(m)
        );
    }
    h.push_str("</table>");
}

fn routes(series: &Series, cur: &HashMap<String, f64>, h: &mut String) {
    let mut keys: Vec<&String> = cur.keys().filter(|k| k.starts_with("route:")).collect();
    if keys.is_empty() {
        return;
    }
    keys.sort();
    h.push_str("<h2>Routes</h2><table><tr><th>route</th><th>action</th><th>spans</th><th>per s</th><th>15 min</th></tr>");
    for k in keys {
        let mut parts = k.splitn(3, ':').skip(1);
        let (route, action) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(route),
            escape(action),
            total(cur, k),
            rate(series, k),
            sparkline(series, k, true)
        );
    }
    h.push_str("</table>");
}

/// The answer of the lookup box.
#[must_use]
pub fn lookup_answer(r: &Result<Lookup, String>) -> String {
    match r {
        Err(e) => format!("<p class=\"bad\" id=\"lookup-error\">{}</p>", escape(e)),
        Ok(l) => {
            let mut h = format!(
                "<table id=\"lookup-result\"><tr><th>read as</th><td class=\"l\">{}</td></tr>\
                 <tr><th>trace id</th><td class=\"l\" id=\"lookup-trace\">{}</td></tr>\
                 <tr><th>transaction id</th><td class=\"l\" id=\"lookup-txid\">{}</td></tr>\
                 <tr><th>born in</th><td class=\"l\">{}</td></tr>",
                escape(l.input),
                escape(&l.trace_id),
                escape(&l.txid),
                escape(l.origin)
            );
            if let Some(n) = &l.note {
                let _ = write!(
                    h,
                    "<tr><th>note</th><td class=\"l\">{}</td></tr>",
                    escape(n)
                );
            }
            for (name, url) in &l.links {
                let _ = write!(
                    h,
                    "<tr><th>{}</th><td class=\"l\"><a href=\"{}\" rel=\"noreferrer\">open</a></td></tr>",
                    escape(name),
                    escape(url)
                );
            }
            h.push_str("</table>");
            h
        }
    }
}

fn total(cur: &HashMap<String, f64>, key: &str) -> String {
    cur.get(key)
        .map_or_else(|| "0".to_owned(), |v| format!("{v}"))
}

/// Per-second rate over the last two samples.
fn rate(series: &Series, key: &str) -> String {
    let Some(values) = series.values.get(key) else {
        return "0".to_owned();
    };
    let n = values.len();
    if n < 2 {
        return "–".to_owned();
    }
    match (values[n - 2], values[n - 1]) {
        (Some(a), Some(b)) => {
            let dt = series.times[n - 1] - series.times[n - 2];
            if dt > 0.0 {
                format!("{:.1}", ((b - a) / dt).max(0.0))
            } else {
                "–".to_owned()
            }
        }
        _ => "–".to_owned(),
    }
}

/// An inline SVG of the series (its per-second rate when `counter`).
fn sparkline(series: &Series, key: &str, counter: bool) -> String {
    const W: f64 = 120.0;
    const H: f64 = 22.0;
    let Some(values) = series.values.get(key) else {
        return String::new();
    };
    let points: Vec<f64> = if counter {
        values
            .windows(2)
            .zip(series.times.windows(2))
            .map(|(v, t)| match (v[0], v[1]) {
                (Some(a), Some(b)) if t[1] > t[0] => ((b - a) / (t[1] - t[0])).max(0.0),
                _ => 0.0,
            })
            .collect()
    } else {
        values.iter().map(|v| v.unwrap_or(0.0)).collect()
    };
    if points.len() < 2 {
        return "<svg class=\"spark\" width=\"120\" height=\"22\"></svg>".to_owned();
    }
    let max = points.iter().copied().fold(0.0_f64, f64::max).max(1e-9);
    let step = W / (points.len() - 1) as f64;
    let mut d = String::new();
    for (i, p) in points.iter().enumerate() {
        let _ = write!(
            d,
            "{:.1},{:.1} ",
            i as f64 * step,
            H - 1.0 - p / max * (H - 2.0)
        );
    }
    format!(
        "<svg class=\"spark\" width=\"120\" height=\"22\" viewBox=\"0 0 120 22\"><title>max {max:.1}</title>\
         <polyline fill=\"none\" stroke=\"#48c\" stroke-width=\"1.5\" points=\"{}\"/></svg>",
        d.trim_end()
    )
}

fn duration(secs: f64) -> String {
    let s = secs as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

fn ago(when: Option<f64>, now: f64) -> String {
    match when {
        Some(t) if t.is_finite() => format!("{} ago", duration((now - t).max(0.0))),
        _ => "<span class=\"muted\">–</span>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_that_could_break_out() {
        assert_eq!(
            escape("<a href='x'>\"&</a>"),
            "&lt;a href=&#39;x&#39;&gt;&quot;&amp;&lt;/a&gt;"
        );
    }

    #[test]
    fn lookup_errors_are_escaped() {
        let h = lookup_answer(&Err("`<script>` is not".to_owned()));
        assert!(
            h.contains("&lt;script&gt;") && !h.contains("<script>"),
            "{h}"
        );
    }

    #[test]
    fn sparkline_draws_rates_of_counters() {
        let mut values = HashMap::new();
        values.insert(
            "k".to_owned(),
            vec![Some(0.0), Some(10.0), Some(30.0), None],
        );
        let s = Series {
            interval_s: 5.0,
            times: vec![0.0, 5.0, 10.0, 15.0],
            values,
            changed_at: HashMap::new(),
        };
        let svg = sparkline(&s, "k", true);
        assert!(
            svg.contains("points=\"0.0,11.0 60.0,1.0 120.0,21.0\""),
            "{svg}"
        );
        assert_eq!(rate(&s, "k"), "–");
    }
}

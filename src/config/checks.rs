//! Checks across sections: listeners that would collide at start, and the log filter.

use super::{ConfigError, err};

/// Every listening address the config asks for, with its path. A new listener
/// (a proxy, another receiver) is added here, so that `check-config` catches its
/// conflicts before `run` fails with "Address already in use".
pub(super) fn listeners(c: &PartialListeners<'_>) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Some(g) = c.grpc {
        out.push(("receivers.otlp.grpc.endpoint", g.to_owned()));
    }
    if let Some(h) = c.http {
        out.push(("receivers.otlp.http.endpoint", h.to_owned()));
    }
    if let Some(a) = c.admin {
        out.push(("admin.endpoint", a.to_owned()));
    }
    if let Some(i) = c.proxy_ingress {
        out.push(("proxy.ingress.listen", i.to_owned()));
    }
    if let Some(e) = c.proxy_egress {
        out.push(("proxy.egress.listen", e.to_owned()));
    }
    out
}

/// The listener addresses of a config that may be only partly valid.
#[derive(Debug, Default)]
pub(super) struct PartialListeners<'a> {
    pub grpc: Option<&'a str>,
    pub http: Option<&'a str>,
    pub admin: Option<&'a str>,
    pub proxy_ingress: Option<&'a str>,
    pub proxy_egress: Option<&'a str>,
}

/// Reports each listener whose address collides with an earlier one: the same port on
/// the same host, or on a wildcard host (`0.0.0.0`, `::`), which takes every address.
/// Port 0 (any free port) never collides.
pub(super) fn listener_conflicts(list: &[(&'static str, String)], errors: &mut Vec<ConfigError>) {
    let parsed: Vec<(&str, Option<(String, u16)>)> = list
        .iter()
        .map(|(path, endpoint)| (*path, split(endpoint)))
        .collect();
    for (i, (path, addr)) in parsed.iter().enumerate() {
        let Some((host, port)) = addr else { continue };
        if *port == 0 {
            continue;
        }
        let clash = parsed[..i].iter().find(|(_, other)| {
            other
                .as_ref()
                .is_some_and(|(h, p)| p == port && (h == host || wildcard(h) || wildcard(host)))
        });
        if let Some((other, _)) = clash {
            errors.push(err(
                path,
                format!(
                    "port {port} is already taken by {other} (each listener needs its own address)"
                ),
            ));
        }
    }
}

fn split(endpoint: &str) -> Option<(String, u16)> {
    let (host, port) = endpoint.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = if host.eq_ignore_ascii_case("localhost") {
        "127.0.0.1"
    } else {
        host
    };
    Some((host.to_owned(), port.parse().ok()?))
}

fn wildcard(host: &str) -> bool {
    matches!(host, "0.0.0.0" | "::" | "")
}

const LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error", "off"];

/// Checks a `log.level` filter strictly: each comma-separated directive is a level
/// (`info`) or `target=level` (`otel_pinpoint_bridge::pipeline=debug`). `tracing`
/// itself would read a bare unknown word such as `loud` as a target name and so turn
/// logging silently off; here it is an error.
pub(super) fn log_level(filter: &str) -> Result<(), String> {
    let mut any = false;
    for directive in filter.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        any = true;
        let level = match directive.rsplit_once('=') {
            Some((target, level)) if !target.is_empty() => level,
            Some(_) => return Err(format!("`{directive}`: a target is needed before `=`")),
            None => directive,
        };
        if !LEVELS.iter().any(|l| l.eq_ignore_ascii_case(level)) {
            let what = if level == directive {
                format!("`{level}` is not a level")
            } else {
                format!("`{directive}`: `{level}` is not a level")
            };
            return Err(format!(
                "{what} (one of {}; or target=level)",
                LEVELS.join(", ")
            ));
        }
    }
    if !any {
        return Err("empty filter (use a level such as `info`)".to_owned());
    }
    tracing_subscriber::EnvFilter::try_new(filter)
        .map(drop)
        .map_err(|e| format!("invalid filter: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_levels() {
        for ok in [
            "info",
            "INFO",
            "warn,otel_pinpoint_bridge=debug",
            "h2=off, info",
        ] {
            assert!(log_level(ok).is_ok(), "{ok}");
        }
        for bad in ["loud", "", "info,loud", "=debug", "tower=shouty"] {
            assert!(log_level(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn listener_conflict_table() {
        let check = |list: &[(&'static str, &str)]| -> Vec<&'static str> {
            let list: Vec<_> = list.iter().map(|(p, e)| (*p, (*e).to_owned())).collect();
            let mut errors = Vec::new();
            listener_conflicts(&list, &mut errors);
            errors
                .iter()
                .map(|e| {
                    list.iter()
                        .find(|(p, _)| *p == e.path)
                        .map_or("?", |(p, _)| *p)
                })
                .collect()
        };
        let (g, h, a) = (
            "receivers.otlp.grpc.endpoint",
            "receivers.otlp.http.endpoint",
            "admin.endpoint",
        );
        assert!(
            check(&[
                (g, "127.0.0.1:4317"),
                (h, "127.0.0.1:4318"),
                (a, "127.0.0.1:8888")
            ])
            .is_empty()
        );
        assert_eq!(
            check(&[(g, "127.0.0.1:4317"), (a, "127.0.0.1:4317")]),
            vec![a]
        );
        assert_eq!(
            check(&[(g, "0.0.0.0:4317"), (a, "127.0.0.1:4317")]),
            vec![a]
        );
        assert_eq!(
            check(&[(g, "localhost:4317"), (h, "127.0.0.1:4317")]),
            vec![h]
        );
        assert_eq!(check(&[(g, "[::]:9000"), (h, "10.0.0.1:9000")]), vec![h]);
        assert!(check(&[(g, "127.0.0.1:0"), (h, "127.0.0.1:0")]).is_empty());
        assert!(check(&[(g, "127.0.0.1:4317"), (h, "127.0.0.2:4317")]).is_empty());
    }
}

//! A real `redis-server` for the tests: the shared one `.ci/run` / `scripts/test.sh`
//! started (`BRIDGE_TEST_REDIS_URL`), or a private process on a free loopback port for
//! tests that must kill or restart it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The URL of the shared test server. Tests that need Redis fail with this message
/// rather than pass without it.
pub fn shared_url() -> String {
    std::env::var("BRIDGE_TEST_REDIS_URL").unwrap_or_else(|_| {
        panic!(
            "BRIDGE_TEST_REDIS_URL is not set: run scripts/test.sh, which starts a redis-server \
             (apt-get install redis-server), or set it to redis://127.0.0.1:<port>/0"
        )
    })
}

/// A key prefix no other test (or run) uses.
pub fn unique_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("test:{test}:{}:{nanos}:", std::process::id())
}

/// A private redis-server process; killed on drop.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    extra: Vec<String>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl RedisServer {
    /// Starts one with no persistence; `extra` are more `redis-server` arguments
    /// (e.g. `["--maxmemory", "1mb"]`).
    pub fn start(extra: &[&str]) -> Self {
        let mut s = Self {
            port: free_port(),
            child: None,
            extra: extra.iter().map(|a| (*a).to_owned()).collect(),
        };
        s.spawn();
        s
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("redis-server is not installed (apt-get install redis-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self
                .command(&["PING"])
                .is_some_and(|r| r.starts_with("+PONG"))
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server on port {} did not answer PING", self.port);
    }

    /// Kills the process (as a crash would: no shutdown, data gone).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port (empty).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Sends one inline command; the raw reply, or `None` when it is not reachable.
    pub fn command(&self, args: &[&str]) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        s.write_all(req.as_bytes()).ok()?;
        let mut buf = vec![0u8; 64 * 1024];
        let n = s.read(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One command against the server at `url` (`redis://127.0.0.1:<port>/...`).
pub fn command_at(url: &str, args: &[&str]) -> Option<String> {
    let port: u16 = url
        .trim_start_matches("redis://")
        .split(['/', '@'])
        .find_map(|p| p.strip_prefix("127.0.0.1:"))
        .and_then(|p| p.parse().ok())?;
    let s = RedisServer {
        port,
        child: None,
        extra: Vec::new(),
    };
    s.command(args)
}

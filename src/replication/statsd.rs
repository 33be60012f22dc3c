//! Swift's statsd metrics (`StatsdClient` in `swift/common/utils`): UDP
//! datagrams `<prefix><name>:<value>|<type>[|@<rate>]`, the prefix being
//! `[<log_statsd_metric_prefix>.]<kind>-replicator.`, so dashboards built
//! on Swift's replicators keep working. Fire and forget: a send that fails
//! is dropped (as Swift's).

use std::net::{ToSocketAddrs, UdpSocket};
use std::time::Instant;

use crate::config::StatsdConf;
use crate::swift::pyjson::float_repr;

#[derive(Debug)]
pub struct Statsd {
    socket: UdpSocket,
    target: std::net::SocketAddr,
    prefix: String,
    sample_rate: f64,
}

impl Statsd {
    /// A client for the logger `name` (e.g. `container-replicator`);
    /// `None` (logged) when the host does not resolve or no socket opens.
    pub fn new(conf: &StatsdConf, name: &str) -> Option<Statsd> {
        let target = match (conf.host.as_str(), conf.port).to_socket_addrs() {
            Ok(mut a) => a.next()?,
            Err(e) => {
                tracing::warn!(host = %conf.host, "statsd host does not resolve: {e}");
                return None;
            }
        };
        let bind = if target.is_ipv6() {
            "[::]:0"
        } else {
            "0.0.0.0:0"
        };
        let socket = match UdpSocket::bind(bind) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("no statsd socket: {e}");
                return None;
            }
        };
        let _ = socket.set_nonblocking(true);
        let mut prefix = String::new();
        if !conf.metric_prefix.is_empty() {
            prefix.push_str(&conf.metric_prefix);
            prefix.push('.');
        }
        prefix.push_str(name);
        prefix.push('.');
        Some(Statsd {
            socket,
            target,
            prefix,
            sample_rate: conf.sample_rate,
        })
    }

    fn send(&self, name: &str, value: &str, kind: &str) {
        if self.sample_rate < 1.0 && rand::random::<f64>() >= self.sample_rate {
            return;
        }
        let mut payload = format!("{}{name}:{value}|{kind}", self.prefix);
        if self.sample_rate < 1.0 {
            payload.push_str(&format!("|@{}", float_repr(self.sample_rate)));
        }
        let _ = self.socket.send_to(payload.as_bytes(), self.target);
    }

    /// `increment(name)`: `<name>:1|c`.
    pub fn increment(&self, name: &str) {
        self.send(name, "1", "c");
    }

    /// `timing_since(name, start)`: milliseconds as Python writes a float.
    pub fn timing_since(&self, name: &str, start: Instant) {
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        self.send(name, &float_repr(ms), "ms");
    }
}

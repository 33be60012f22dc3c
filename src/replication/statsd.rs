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
    default_sample_rate: f64,
    sample_rate_factor: f64,
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
            default_sample_rate: conf.default_sample_rate,
            sample_rate_factor: conf.sample_rate_factor,
        })
    }

    /// Swift's `_send`: the call's sample rate (else the default) times
    /// the factor; below 1 a random share is sent, marked `|@<rate>`.
    fn send(&self, name: &str, value: &str, kind: &str, rate: Option<f64>) {
        let rate = rate.unwrap_or(self.default_sample_rate) * self.sample_rate_factor;
        if rate < 1.0 && rand::random::<f64>() >= rate {
            return;
        }
        let mut payload = format!("{}{name}:{value}|{kind}", self.prefix);
        if rate < 1.0 {
            payload.push_str(&format!("|@{}", float_repr(rate)));
        }
        let _ = self.socket.send_to(payload.as_bytes(), self.target);
    }

    /// `increment(name)`: `<name>:1|c`.
    pub fn increment(&self, name: &str) {
        self.send(name, "1", "c", None);
    }

    /// `timing_since(name, start)`: milliseconds as Python writes a float.
    pub fn timing_since(&self, name: &str, start: Instant) {
        self.timing_since_rate(name, start, None);
    }

    /// `timing_since(name, start, sample_rate=rate)`, as Swift's
    /// `timing_stats(sample_rate=...)` sends it.
    pub fn timing_since_rate(&self, name: &str, start: Instant, rate: Option<f64>) {
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        self.send(name, &float_repr(ms), "ms", rate);
    }
}

//! The reading side of the metrics endpoint: fetch `/metrics` over plain HTTP and parse the
//! exposition text. Used by the load generator (server tick statistics over its measured
//! window) and by the end-to-end tests that check the counters. Not part of the server:
//! only std.
#![warn(missing_docs, unreachable_pub)]

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// One parsed sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name (with `_bucket`, `_sum`, `_count` suffixes as written).
    pub name: String,
    /// Label pairs in order.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
}

/// A whole scrape.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    /// Every sample, in order.
    pub samples: Vec<Sample>,
}

/// Fetches `path` from an HTTP server on `addr` and returns the body of a 200 answer.
pub fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> io::Result<String> {
    match http_status(addr, path, timeout)? {
        (200, body) => Ok(body),
        (status, _) => Err(io::Error::other(format!("GET {path}: status {status}"))),
    }
}

/// Fetches `path` and returns the status code and body, whatever the status.
pub fn http_status(addr: SocketAddr, path: &str, timeout: Duration) -> io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no HTTP head"))?;
    let status = head
        .lines()
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no HTTP status"))?;
    Ok((status, body.to_owned()))
}

/// Fetches and parses `http://addr/metrics`.
pub fn scrape(addr: SocketAddr, timeout: Duration) -> io::Result<Scrape> {
    Ok(Scrape::parse(&http_get(addr, "/metrics", timeout)?))
}

impl Scrape {
    /// Parses exposition text, Prometheus 0.0.4 or OpenMetrics 1.0 (the server sends the
    /// latter to a scraper whose `Accept` names it); comment lines (`# HELP`, `# TYPE`,
    /// `# UNIT`, `# EOF`) and lines that do not parse are skipped.
    pub fn parse(text: &str) -> Scrape {
        Scrape {
            samples: text
                .lines()
                .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
                .filter_map(parse_sample)
                .collect(),
        }
    }

    /// The value of the unlabelled sample `name`.
    pub fn value(&self, name: &str) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels.is_empty())
            .map(|s| s.value)
    }

    /// The value of sample `name` whose label `key` equals `value`.
    pub fn labelled(&self, name: &str, key: &str, value: &str) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels.iter().any(|(k, v)| k == key && v == value))
            .map(|s| s.value)
    }

    /// Cumulative buckets `(upper bound, count)` of histogram `name`, `+Inf` last.
    pub fn buckets(&self, name: &str) -> Vec<(f64, f64)> {
        let bucket = format!("{name}_bucket");
        self.samples
            .iter()
            .filter(|s| s.name == bucket)
            .filter_map(|s| {
                let (_, le) = s.labels.iter().find(|(k, _)| k == "le")?;
                let bound = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().ok()?
                };
                Some((bound, s.value))
            })
            .collect()
    }
}

fn parse_sample(line: &str) -> Option<Sample> {
    let (series, value) = line.rsplit_once(' ')?;
    let value = value.parse().ok()?;
    let (name, labels) = match series.split_once('{') {
        None => (series, Vec::new()),
        Some((name, rest)) => {
            let inner = rest.strip_suffix('}')?;
            let labels = inner
                .split(',')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=')?;
                    Some((k.to_owned(), v.trim_matches('"').to_owned()))
                })
                .collect::<Option<_>>()?;
            (name, labels)
        }
    };
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Cumulative bucket counts gained between two readings of one histogram, `+Inf` last.
fn window(before: &[(f64, f64)], after: &[(f64, f64)]) -> Vec<(f64, f64)> {
    after
        .iter()
        .map(|&(bound, count)| {
            let earlier = before
                .iter()
                .find(|(b, _)| *b == bound)
                .map_or(0.0, |&(_, c)| c);
            (bound, count - earlier)
        })
        .collect()
}

/// Quantile `q` (0..=1) of the observations between two cumulative bucket readings of the
/// same histogram, interpolated linearly inside the bucket that holds it (as Prometheus's
/// `histogram_quantile` does). `None` if nothing was observed in between.
pub fn quantile_between(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> Option<f64> {
    let deltas = window(before, after);
    let total = deltas.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(bound, cumulative) in &deltas {
        if cumulative >= rank {
            if bound.is_infinite() {
                return Some(lower.0); // beyond the last finite bound: report that bound
            }
            let in_bucket = cumulative - lower.1;
            let fraction = if in_bucket > 0.0 {
                (rank - lower.1) / in_bucket
            } else {
                1.0
            };
            return Some(lower.0 + (bound - lower.0) * fraction);
        }
        lower = (bound, cumulative);
    }
    None
}

/// Upper bound of the highest bucket that gained observations between two readings: the
/// largest observation, to the bucket's resolution (the last finite bound for `+Inf`).
/// `None` if nothing was observed.
pub fn max_between(before: &[(f64, f64)], after: &[(f64, f64)]) -> Option<f64> {
    let deltas = window(before, after);
    let (mut max, mut previous, mut last_finite) = (None, 0.0, 0.0);
    for &(bound, cumulative) in &deltas {
        if cumulative > previous {
            max = Some(if bound.is_finite() {
                bound
            } else {
                last_finite
            });
        }
        if bound.is_finite() {
            last_finite = bound;
        }
        previous = cumulative;
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP t_seconds x\n# TYPE t_seconds histogram\n\
        t_seconds_bucket{le=\"0.01\"} 10\nt_seconds_bucket{le=\"0.02\"} 30\n\
        t_seconds_bucket{le=\"+Inf\"} 30\nt_seconds_sum 0.4\nt_seconds_count 30\n\
        closes_total{reason=\"server_full\"} 2\nplain 7\n";

    #[test]
    fn parses_plain_labelled_and_histogram_samples() {
        let scrape = Scrape::parse(TEXT);
        assert_eq!(scrape.value("plain"), Some(7.0));
        assert_eq!(
            scrape.labelled("closes_total", "reason", "server_full"),
            Some(2.0)
        );
        assert_eq!(
            scrape.buckets("t_seconds"),
            vec![(0.01, 10.0), (0.02, 30.0), (f64::INFINITY, 30.0)]
        );
    }

    #[test]
    fn quantiles_and_max_come_from_the_window_only() {
        let before = vec![(0.01, 10.0), (0.02, 10.0), (f64::INFINITY, 10.0)];
        let after = Scrape::parse(TEXT).buckets("t_seconds");
        // The window saw 20 observations, all in (0.01, 0.02].
        let p50 = quantile_between(&before, &after, 0.5).unwrap();
        assert!((p50 - 0.015).abs() < 1e-9);
        assert_eq!(max_between(&before, &after), Some(0.02));
        assert_eq!(quantile_between(&after, &after, 0.5), None);
    }

    #[test]
    fn parses_openmetrics_text() {
        let text = "# HELP throng_ticks Ticks completed.\n# TYPE throng_ticks counter\n\
            # UNIT t_seconds seconds\nthrong_ticks_total 7\n\
            t_seconds_bucket{le=\"0.01\"} 10\nt_seconds_bucket{le=\"+Inf\"} 12\n\
            t_seconds_sum 0.5\nt_seconds_count 12\nlag_seconds 1.5e-3\n# EOF\n";
        let scrape = Scrape::parse(text);
        assert_eq!(scrape.value("throng_ticks_total"), Some(7.0));
        assert_eq!(
            scrape.buckets("t_seconds"),
            vec![(0.01, 10.0), (f64::INFINITY, 12.0)]
        );
        assert_eq!(scrape.value("lag_seconds"), Some(0.0015));
        assert_eq!(
            scrape.samples.len(),
            6,
            "the comment and EOF lines are skipped"
        );
    }
}

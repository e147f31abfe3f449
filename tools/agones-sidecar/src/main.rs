//! The stand-in Agones SDK sidecar as a program, to watch a game server's SDK calls by hand:
//!
//! ```text
//! cargo run -p throng-agones-sidecar --features grpc -- [PORT] [--counter NAME=CAPACITY]...
//! AGONES_SDK_GRPC_PORT=PORT cargo run --features agones -- --agones true
//! ```
//!
//! PORT defaults to the real sidecar's 9357; `players` is declared with capacity 1000 unless
//! other Counters are given. Each call received is printed on a line of its own (Health pings
//! as a running count, so that one a second does not scroll everything else away).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use throng_agones_sidecar::{Call, Counter, StandIn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let (port, counters) = match parse(std::env::args().skip(1)) {
        Ok(parsed) => parsed,
        Err(why) => {
            eprintln!(
                "agones-sidecar: {why}\nusage: agones-sidecar [PORT] [--counter NAME=CAPACITY]..."
            );
            return ExitCode::from(2);
        }
    };
    let declared: Vec<(&str, Counter)> = counters.iter().map(|(n, c)| (n.as_str(), *c)).collect();
    let stand_in =
        match StandIn::start_on(SocketAddr::from(([127, 0, 0, 1], port)), &declared).await {
            Ok(stand_in) => stand_in,
            Err(error) => {
                eprintln!("agones-sidecar: cannot listen on 127.0.0.1:{port}: {error}");
                return ExitCode::from(1);
            }
        };
    println!(
        "agones stand-in sidecar on {} (AGONES_SDK_GRPC_PORT={})",
        stand_in.addr(),
        stand_in.port()
    );
    let mut shown = 0;
    loop {
        let Some(seen) = stand_in
            .until(Duration::from_secs(3600), |s| s.calls.len() > shown)
            .await
        else {
            continue;
        };
        for call in &seen.calls[shown..] {
            match call {
                Call::Health => {}
                other => println!("{other:?}"),
            }
        }
        if seen.calls[shown..].contains(&Call::Health) {
            println!("Health pings so far: {}", seen.health_pings());
        }
        shown = seen.calls.len();
    }
}

/// The port and the declared Counters from the command line.
fn parse(args: impl Iterator<Item = String>) -> Result<(u16, Vec<(String, Counter)>), String> {
    let mut port = 9357;
    let mut counters = Vec::new();
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        if arg == "--counter" {
            let spec = args.next().ok_or("--counter needs NAME=CAPACITY")?;
            let (name, capacity) = spec
                .split_once('=')
                .ok_or("--counter needs NAME=CAPACITY")?;
            let capacity = capacity
                .parse()
                .map_err(|_| format!("bad capacity in {spec:?}"))?;
            counters.push((name.to_owned(), Counter { count: 0, capacity }));
        } else {
            port = arg.parse().map_err(|_| format!("not a port: {arg:?}"))?;
        }
    }
    if counters.is_empty() {
        counters.push((
            "players".to_owned(),
            Counter {
                count: 0,
                capacity: 1000,
            },
        ));
    }
    Ok((port, counters))
}

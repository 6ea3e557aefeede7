//! The real server under load, bounded in count and time: a thousand
//! clients at once lose nothing, and a SIGTERM in the middle of the load
//! loses no message a client was told had arrived. An honest client is
//! served during and after, and memory returns close to where it started.

mod common;

use common::*;
use rust_tcp::{Client, ClientConfig, ClientError};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// 1,000 concurrent clients × 100 messages: all 100,000 printed, once each.
#[test]
fn a_thousand_clients_lose_nothing() {
    let server = ServerProcess::start_measured(&[]);
    let before = server.rss_kib();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let addr = server.addr_arg();
    let clients: Vec<_> = (0..1000)
        .map(|c| {
            let addr = addr.clone();
            rt.spawn(async move {
                let config = ClientConfig::default().name(format!("c{c}"));
                let client = Client::connect_with(&addr, config).await?;
                for m in 0..100 {
                    client.send_text(format!("c{c} m{m}")).await?;
                }
                client.close().await
            })
        })
        .collect();
    // An honest client, during the load.
    let during = rt.block_on(async {
        let client = Client::connect(&addr).await?;
        let answer = client.request("during").await?;
        client.close().await?;
        Ok::<_, ClientError>(answer)
    });
    assert_eq!(during.unwrap(), "during");
    for c in clients {
        rt.block_on(c).unwrap().unwrap();
    }
    // Every client's close was acknowledged, so everything was handed to
    // the printer; collect it all.
    let lines = server.output_lines(100_000);
    let distinct: HashSet<&String> = lines.iter().collect();
    assert_eq!(distinct.len(), 100_000, "each message printed exactly once");
    for c in [0, 499, 999] {
        for m in [0, 99] {
            assert!(distinct.contains(&printed(&format!("c{c} m{m}"))));
        }
    }
    let after = rt.block_on(async {
        let client = Client::connect(&addr).await.unwrap();
        let answer = client.request("after").await.unwrap();
        client.close().await.unwrap();
        answer
    });
    assert_eq!(after, "after");
    let rss = server.rss_kib();
    eprintln!("RSS {before} KiB before 1,000 clients, {rss} KiB after they left");
    assert!(
        rss < before + 32 * 1024,
        "memory did not come back: {rss} KiB"
    );
}

/// SIGTERM while 20 clients stream: every message a client saw
/// acknowledged (a later request answered, or its close confirmed) is
/// printed before the server exits.
#[test]
fn a_sigterm_under_load_loses_no_acknowledged_message() {
    let server = ServerProcess::start(&["--shutdown-grace-secs", "4"]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let addr = server.addr_arg();
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..20)
        .map(|c| {
            let addr = addr.clone();
            let stop = stop.clone();
            rt.spawn(async move {
                let client =
                    Client::connect_with(&addr, ClientConfig::default().name(format!("s{c}")))
                        .await
                        .unwrap();
                let mut sent = 0u64;
                let mut acknowledged = 0u64;
                // Bounded: at most 5,000 messages each.
                while sent < 5_000 && !stop.load(Ordering::Relaxed) {
                    let mut ok = true;
                    for _ in 0..10 {
                        ok &= client.send_text(format!("s{c} m{sent}")).await.is_ok();
                        sent += 1;
                    }
                    // The answer to a request comes after everything sent
                    // before it was handed over.
                    if ok && client.request("ack").await.is_ok() {
                        acknowledged = sent;
                    } else {
                        break;
                    }
                }
                if client.close().await.is_ok() {
                    acknowledged = sent;
                }
                acknowledged
            })
        })
        .collect();
    // Signal: the load is running once a few thousand lines are out.
    let mut printed_lines: Vec<String> = server.output_lines(2_000);
    let (status, rest) = server.stop_and_collect_output("TERM");
    stop.store(true, Ordering::Relaxed);
    assert!(status.success(), "{status:?}");
    printed_lines.extend(rest);
    let printed_set: HashSet<String> = printed_lines.into_iter().collect();
    let mut total_acknowledged = 0;
    for (c, client) in clients.into_iter().enumerate() {
        let acknowledged = rt.block_on(client).unwrap();
        total_acknowledged += acknowledged;
        for m in 0..acknowledged {
            assert!(
                printed_set.contains(&printed(&format!("s{c} m{m}"))),
                "s{c} m{m} was acknowledged but not printed"
            );
        }
    }
    assert!(
        total_acknowledged >= 2_000,
        "only {total_acknowledged} acknowledged"
    );
}

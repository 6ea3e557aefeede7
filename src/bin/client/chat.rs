//! `client chat`: send standard input, print what others send.

use anyhow::bail;
use rust_tcp::{Client, Pushed, Reconnect};
use std::io::Write;
use std::time::Duration;

use crate::display::printable;
use crate::stdin::spawn_stdin_lines;
use crate::{ConnArgs, client_config};

/// With `reconnect`, a lost connection or a server going away is followed
/// by a new connection (backoff with jitter), said on stderr; lines typed
/// meanwhile wait for it (up to the connect timeout).
pub(crate) async fn run_chat(conn: &ConnArgs, reconnect: bool) -> anyhow::Result<()> {
    if conn.v1 {
        bail!("chat needs protocol v2 (v1 servers send nothing back)");
    }
    let mut config = client_config(conn)?;
    if reconnect {
        config = config.reconnect(Some(Reconnect::default().max_delay(Duration::from_secs(2))));
    }
    let client = Client::connect_with(&conn.addr, config).await?;
    let mut incoming = client.incoming().expect("first use of the stream");
    let printer = {
        let client = client.clone();
        tokio::spawn(async move {
            let mut out = std::io::stdout();
            while let Some(pushed) = incoming.recv().await {
                let going_away = matches!(pushed, Pushed::GoAway(_)) && !reconnect;
                let line = match pushed {
                    Pushed::Text(m) => printable(m.as_str()),
                    Pushed::Binary(b) => format!("<{} bytes of binary>", b.len()),
                    Pushed::Error(e) => format!("* server error: {e}"),
                    Pushed::GoAway(g) if !reconnect => {
                        format!("* server is going away ({g}); leaving")
                    }
                    // Said by the reconnect notices below, on stderr.
                    Pushed::GoAway(_) => continue,
                    Pushed::Disconnected(why) => {
                        eprintln!("* {}; reconnecting", printable(&why));
                        continue;
                    }
                    Pushed::Reconnected { server_name } => {
                        eprintln!("* reconnected to {}", printable(&server_name));
                        continue;
                    }
                    other => format!("* {other:?}"),
                };
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
                if going_away {
                    // Going away: finish politely instead of being cut off.
                    return client.close().await;
                }
            }
            Ok(())
        })
    };
    tokio::pin!(printer);
    let mut lines = spawn_stdin_lines();
    loop {
        tokio::select! {
            line = lines.recv() => match line {
                Some(line) => client.send_text(line?).await?,
                None => break,
            },
            // The connection ended (the server left): stop reading stdin.
            ended = &mut printer => return Ok(ended??),
        }
    }
    client.close().await?;
    printer.await??;
    Ok(())
}

//! `client chat`: send standard input, print what others send.

use anyhow::bail;
use rust_tcp::Pushed;
use std::io::Write;

use crate::display::printable;
use crate::stdin::spawn_stdin_lines;
use crate::{ConnArgs, connect};

pub(crate) async fn run_chat(conn: &ConnArgs) -> anyhow::Result<()> {
    if conn.v1 {
        bail!("chat needs protocol v2 (v1 servers send nothing back)");
    }
    let client = connect(conn).await?;
    let mut incoming = client.incoming().expect("first use of the stream");
    let printer = {
        let client = client.clone();
        tokio::spawn(async move {
            let mut out = std::io::stdout();
            while let Some(pushed) = incoming.recv().await {
                let going_away = matches!(pushed, Pushed::GoAway(_));
                let line = match pushed {
                    Pushed::Text(m) => printable(m.as_str()),
                    Pushed::Binary(b) => format!("<{} bytes of binary>", b.len()),
                    Pushed::Error(e) => format!("* server error: {e}"),
                    Pushed::GoAway(g) => format!("* server is going away ({g}); leaving"),
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

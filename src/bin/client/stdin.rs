//! Sending standard input line by line, and the stdin reader thread that
//! chat shares.

use anyhow::Context;
use std::io::{BufRead, IsTerminal, Write};

use crate::{ConnArgs, connect};

pub(crate) async fn send_stdin(conn: &ConnArgs) -> anyhow::Result<()> {
    let interactive = std::io::stdin().is_terminal();
    let client = connect(conn).await?;
    let mut lines = spawn_stdin_lines();
    prompt(interactive);
    while let Some(line) = lines.recv().await {
        if let Err(e) = client.send_text(line?).await {
            client.close().await?;
            return Err(e).context("message not sent; earlier lines were delivered");
        }
        if lines.is_empty() {
            prompt(interactive);
        }
    }
    client.close().await?;
    Ok(())
}

fn prompt(interactive: bool) {
    if interactive {
        print!("> ");
        let _ = std::io::stdout().flush();
    }
}

/// Reads stdin on a plain thread (reading a terminal blocks) and hands over
/// lines without their line ending.
pub(crate) fn spawn_stdin_lines() -> tokio::sync::mpsc::Receiver<anyhow::Result<String>> {
    let (tx, rx) = tokio::sync::mpsc::channel(1024);
    std::thread::spawn(move || {
        for (n, line) in std::io::stdin().lock().lines().enumerate() {
            let line = line.with_context(|| format!("reading line {} of stdin", n + 1));
            let failed = line.is_err();
            let line = line.map(|mut l| {
                if l.ends_with('\r') {
                    l.pop();
                }
                l
            });
            if tx.blocking_send(line).is_err() || failed {
                break;
            }
        }
    });
    rx
}

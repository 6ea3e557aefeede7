//! `client chat`: send standard input, print what others send.

use anyhow::bail;
use rust_tcp::{Client, Pushed, Reconnect};
use std::io::Write;
use std::time::Duration;

use crate::display::printable;

/// Reconnection failures shown at most once per this.
const NOTICE_EVERY: Duration = Duration::from_secs(2);

/// A rate limit for the failed-attempt notices: a server down for an hour
/// is said every few seconds, not on every retry.
#[derive(Default)]
struct Notices {
    last: Option<std::time::Instant>,
    skipped: u32,
}

impl Notices {
    /// `Some(skipped since the last shown)` if a notice may be shown now.
    fn admit(&mut self) -> Option<u32> {
        let now = std::time::Instant::now();
        if self.last.is_some_and(|last| now - last < NOTICE_EVERY) {
            self.skipped += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.skipped))
    }

    fn reset(&mut self) {
        *self = Notices::default();
    }
}
use crate::stdin::spawn_stdin_lines;
use crate::{ConnArgs, client_config};

/// With `reconnect`, a lost connection or a server going away is followed
/// by a new connection (backoff with jitter), said on stderr; lines typed
/// meanwhile wait for it (up to the connect timeout).
/// With `max_attempts`, it gives up (exit status 1) after that many failed
/// reconnection attempts in a row; each failure is shown, at most one line
/// every two seconds.
pub(crate) async fn run_chat(
    conn: &ConnArgs,
    reconnect: bool,
    max_attempts: Option<u32>,
) -> anyhow::Result<()> {
    if conn.v1 {
        bail!("chat needs protocol v2 (v1 servers send nothing back)");
    }
    let mut config = client_config(conn)?;
    if reconnect {
        // Reconnecting resumes the session: lines sent to the room while
        // we were away are printed once we are back, and ours are not lost.
        config = config
            .reconnect(Some(
                Reconnect::default()
                    .max_delay(Duration::from_secs(2))
                    .max_attempts(max_attempts),
            ))
            .resume(Some(rust_tcp::protocol::v2::ResumeSettings::default()));
    }
    let client = Client::connect_with(&conn.addr, config).await?;
    // Said once the handshake is done, so a person (or a script) knows
    // that what they type from now on goes to the room.
    eprintln!("* connected to {}", printable(&client.server_name()));
    let mut incoming = client.incoming().expect("first use of the stream");
    let printer = {
        let client = client.clone();
        tokio::spawn(async move {
            let mut out = std::io::stdout();
            let mut notices = Notices::default();
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
                        notices.reset();
                        continue;
                    }
                    Pushed::Resumed { replayed, resent } => {
                        eprintln!(
                            "* resumed: {replayed} missed lines follow, {resent} of ours sent again"
                        );
                        notices.reset();
                        continue;
                    }
                    Pushed::ResumeRefused {
                        reason,
                        unacknowledged,
                    } => {
                        eprintln!(
                            "* could not resume ({}): lines sent while we were away are lost, \
                             and {unacknowledged} of ours may be",
                            printable(&reason)
                        );
                        continue;
                    }
                    Pushed::ReconnectFailed {
                        attempt,
                        error,
                        gave_up: true,
                    } => {
                        anyhow::bail!("could not reconnect after {attempt} attempts: {error}");
                    }
                    Pushed::ReconnectFailed { attempt, error, .. } => {
                        if let Some(skipped) = notices.admit() {
                            let skipped = if skipped > 0 {
                                format!(" ({skipped} more failed since the last notice)")
                            } else {
                                String::new()
                            };
                            eprintln!("* reconnect attempt {attempt} failed: {error}{skipped}");
                        }
                        continue;
                    }
                    other => format!("* {other:?}"),
                };
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
                if going_away {
                    // Going away: finish politely instead of being cut off.
                    return Ok(client.close().await?);
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
            ended = &mut printer => return ended?,
        }
    }
    client.close().await?;
    printer.await??;
    Ok(())
}

//! `client schema check` and `client schema stamp`: two schema files
//! compared (what a change breaks, for whom) or the last release's
//! versions carried into the next. No connection is made; the rules are
//! the library's (`Schema::changes_since`, `Schema::carry_versions`).

use anyhow::Context;
use rust_tcp::typed::{Peers, Schema};
use std::io::Write;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum SchemaCommand {
    /// Compare two schemas of a protocol (`describe --json` or an
    /// example's `--schema`) and list each change with the peers it breaks
    /// (old client → new server, new client → old server) in each
    /// encoding both speak; exit status 1 if anything breaks, as
    /// `buf breaking` does for protobuf. No connection is made.
    Check {
        /// The schema deployed now.
        old: std::path::PathBuf,
        /// The schema about to be deployed.
        new: std::path::PathBuf,
    },
    /// Print NEW with the versions of OLD carried into it: what OLD has
    /// keeps its version, what is new (a field added to an existing type,
    /// say) appeared in NEW's highest version. Keep each release's stamped
    /// schema, and every field says when it came.
    Stamp {
        /// The schema of the last release (stamped itself, if it was).
        old: std::path::PathBuf,
        /// The schema of this one, as `describe --json` or `--schema` wrote it.
        new: std::path::PathBuf,
    },
}

/// Whether `schema check` found a breaking change.
pub(crate) fn run_schema(command: &SchemaCommand) -> anyhow::Result<bool> {
    let read = |path: &std::path::Path| -> anyhow::Result<Schema> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Schema::from_json(&text).with_context(|| format!("{}", path.display()))
    };
    let (old, new) = match command {
        SchemaCommand::Check { old, new } => (read(old)?, read(new)?),
        SchemaCommand::Stamp { old, new } => {
            let (old, mut new) = (read(old)?, read(new)?);
            new.carry_versions(&old);
            writeln!(std::io::stdout().lock(), "{}", new.to_json())?;
            return Ok(false);
        }
    };
    let changes = new.changes_since(&old);
    let mut out = std::io::stdout().lock();
    let breaking = changes.iter().filter(|c| c.is_breaking()).count();
    for change in &changes {
        if !change.is_breaking() {
            writeln!(out, "ok        {}", change.what)?;
            continue;
        }
        writeln!(out, "BREAKING  {}", change.what)?;
        for peers in [Peers::OldClientNewServer, Peers::NewClientOldServer] {
            let encodings: Vec<_> = change
                .breaks
                .iter()
                .filter(|(p, _)| *p == peers)
                .map(|(_, e)| e.as_str())
                .collect();
            if !encodings.is_empty() {
                writeln!(out, "          breaks {peers} ({})", encodings.join(", "))?;
            }
        }
    }
    match (changes.len(), breaking) {
        (0, _) => writeln!(out, "no changes")?,
        (n, 0) => writeln!(out, "{n} changes, none breaking")?,
        (n, b) => writeln!(out, "{n} changes, {b} breaking")?,
    }
    Ok(breaking > 0)
}

//! A `client chat` process: lines in on stdin, lines out on stdout.

use std::io::Write;

use super::{PATIENCE, ServerProcess};

pub struct ChatProcess {
    pub child: std::process::Child,
    pub stdin: Option<std::process::ChildStdin>,
    lines: std::sync::mpsc::Receiver<String>,
    notices: std::sync::mpsc::Receiver<String>,
}

fn forward_lines(from: impl std::io::Read + Send + 'static, to: std::sync::mpsc::Sender<String>) {
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(from).lines() {
            let Ok(line) = line else { break };
            let _ = to.send(line);
        }
    });
}

fn wait_for(lines: &std::sync::mpsc::Receiver<String>, needle: &str, what: &str) -> Vec<String> {
    let mut seen = Vec::new();
    match super::wait_for_line(lines, PATIENCE, &mut seen, |line| line.contains(needle)) {
        Some(_) => seen,
        None => panic!("no {what} containing {needle:?} in time; saw {seen:?}"),
    }
}

impl ChatProcess {
    /// Starts `client chat --name NAME` against `server` and waits until
    /// both ends have finished the handshake: the server has opened its
    /// session (so it is in the room) and the client has said it is
    /// connected (so a server stopped now is a *lost* connection to it).
    pub fn start(server: &ServerProcess, name: &str) -> Self {
        Self::start_with(server, name, &[])
    }

    /// Like `start`, with more arguments for `chat` (`--no-reconnect`).
    pub fn start_with(server: &ServerProcess, name: &str, chat_args: &[&str]) -> Self {
        let chat = Self::start_via(&server.addr_arg(), name, chat_args);
        server.wait_for_log(&format!("name={name}"));
        chat.wait_for_notice("* connected to");
        chat
    }

    /// `client --addr ADDR --name NAME chat CHAT_ARGS…`, without waiting
    /// for anything (behind a balancer the test does not know which server
    /// it reaches).
    pub fn start_via(addr: &str, name: &str, chat_args: &[&str]) -> Self {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_client"))
            .args(["--addr", addr, "--name", name, "chat"])
            .args(chat_args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let (tx, lines) = std::sync::mpsc::channel();
        let (notice_tx, notices) = std::sync::mpsc::channel();
        forward_lines(child.stdout.take().unwrap(), tx);
        forward_lines(child.stderr.take().unwrap(), notice_tx);
        ChatProcess {
            child,
            stdin,
            lines,
            notices,
        }
    }

    /// Reads chat lines until one contains `needle`; the lines before it
    /// are returned too (in order), for a failure message or more checks.
    pub fn wait_for_line(&self, needle: &str) -> Vec<String> {
        wait_for(&self.lines, needle, "chat line")
    }

    /// Whether a chat line containing `needle` arrives within `limit`.
    pub fn try_wait_for_line(&self, needle: &str, limit: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
        {
            if line.contains(needle) {
                return true;
            }
        }
        false
    }

    /// Reads stderr lines (the client's notices) until one contains
    /// `needle`.
    pub fn wait_for_notice(&self, needle: &str) -> Vec<String> {
        wait_for(&self.notices, needle, "notice")
    }

    pub fn say(&self, text: &str) {
        let mut stdin = self.stdin.as_ref().unwrap();
        writeln!(stdin, "{text}").unwrap();
        stdin.flush().unwrap();
    }

    pub fn next_line(&self) -> String {
        self.lines
            .recv_timeout(PATIENCE)
            .expect("a chat line in time")
    }

    /// Waits (within PATIENCE) for the process to exit by itself, stdin
    /// still open.
    pub fn wait_for_exit(mut self) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(std::time::Instant::now() < deadline, "chat did not exit");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Closes stdin and waits for the process to exit.
    pub fn finish(mut self) -> std::process::ExitStatus {
        drop(self.stdin.take());
        self.child.wait().unwrap()
    }
}

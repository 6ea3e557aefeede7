//! A `client chat` process: lines in on stdin, lines out on stdout.

use std::io::Write;

use super::{PATIENCE, ServerProcess};

pub struct ChatProcess {
    pub child: std::process::Child,
    pub stdin: Option<std::process::ChildStdin>,
    lines: std::sync::mpsc::Receiver<String>,
}

impl ChatProcess {
    /// Starts `client chat --name NAME` against `server` and waits until
    /// the server has opened its session (so it is in the room).
    pub fn start(server: &ServerProcess, name: &str) -> Self {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_client"))
            .args(["--addr", &server.addr_arg(), "--name", name, "chat"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        server.wait_for_log(&format!("name={name}"));
        ChatProcess {
            child,
            stdin,
            lines,
        }
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

    /// Closes stdin and waits for the process to exit.
    pub fn finish(mut self) -> std::process::ExitStatus {
        drop(self.stdin.take());
        self.child.wait().unwrap()
    }
}

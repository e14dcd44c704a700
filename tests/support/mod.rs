//! Drives the real `projector` binary: write stdin, compare stdout and stderr in full.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

pub const BIN: &str = env!("CARGO_BIN_EXE_projector");

/// The repository root, where the bundled `projections.toml` lives.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "projector-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The binary started in the repository with piped stdin, stdout and stderr,
/// for tests that talk to it while it runs.
pub fn spawn() -> std::process::Child {
    Command::new(BIN)
        .current_dir(repo())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the projector binary starts")
}

#[derive(Debug)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
    pub code: Option<i32>,
}

/// One run of the binary, built fluently:
/// `Run::new().config(toml).stdin(lines).go().stdout_is(expected)`.
pub struct Run {
    args: Vec<String>,
    stdin: Vec<u8>,
    cwd: PathBuf,
    dir: TempDir,
}

impl Run {
    pub fn new() -> Run {
        Run {
            args: Vec::new(),
            stdin: Vec::new(),
            cwd: repo(),
            dir: TempDir::new(),
        }
    }

    pub fn arg(mut self, arg: &str) -> Run {
        self.args.push(arg.to_owned());
        self
    }

    pub fn args(mut self, args: &[&str]) -> Run {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// Writes `toml` to a temporary file and passes `--config` with it.
    pub fn config(self, toml: &str) -> Run {
        let path = self.dir.write("projections.toml", toml);
        self.args(&["--config", path.to_str().unwrap()])
    }

    /// Keeps the state in a fresh SQLite file (`--state`).
    pub fn with_state(self) -> Run {
        let path = self.dir.path().join("state.db");
        self.args(&["--state", path.to_str().unwrap()])
    }

    /// Runs in an empty temporary directory instead of the repository.
    pub fn in_empty_dir(mut self) -> Run {
        self.cwd = self.dir.path().to_owned();
        self
    }

    pub fn stdin(mut self, lines: &[&str]) -> Run {
        for line in lines {
            self.stdin.extend_from_slice(line.as_bytes());
            self.stdin.push(b'\n');
        }
        self
    }

    pub fn stdin_bytes(mut self, bytes: &[u8]) -> Run {
        self.stdin.extend_from_slice(bytes);
        self
    }

    pub fn go(self) -> Output {
        let mut child = Command::new(BIN)
            .args(&self.args)
            .current_dir(&self.cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the projector binary starts");
        let mut stdin = child.stdin.take().unwrap();
        let input = self.stdin.clone();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        Output {
            stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            code: out.status.code(),
        }
    }
}

impl Output {
    pub fn stdout_is(&self, expected: &[&str]) -> &Output {
        let want: String = expected.iter().map(|l| format!("{l}\n")).collect();
        assert_eq!(
            self.stdout, want,
            "stdout differs; stderr was:\n{}",
            self.stderr
        );
        self
    }

    pub fn stderr_is(&self, expected: &str) -> &Output {
        assert_eq!(self.stderr, expected, "stderr differs");
        self
    }

    pub fn code_is(&self, code: i32) -> &Output {
        assert_eq!(
            self.code,
            Some(code),
            "exit code; stderr was:\n{}",
            self.stderr
        );
        self
    }

    pub fn success(&self) -> &Output {
        self.code_is(0)
    }

    pub fn stdout_lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }
}

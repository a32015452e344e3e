//! Local processes of the process agent (SPEC §9): `sh -c COMMAND` in its own process
//! group, in `<work-dir>/<session_id>/`, with `SESSIOND_SESSION_ID` and
//! `SESSIOND_SESSION_NAME` set and stdout/stderr written to `stdout.log` / `stderr.log`
//! there; stopping a group (SIGTERM, SIGKILL after a grace period); the mapping of an
//! exit status to a kernel report; the last 16 KiB of each log; and the state file
//! (`kernel.json`: the process group and the boot it belongs to) that lets a restarted
//! agent find and kill what a previous run of it left behind.

use rustix::process::{kill_process_group, test_kill_process_group, Pid, Signal};
use serde::{Deserialize, Serialize};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::process::{Child, Command};

/// The most bytes of each log sent with a final report.
pub const TAIL_BYTES: usize = store::session_logs::LOG_TAIL_BYTES;

/// The state file in a session's directory while its process group may be alive.
const STATE_FILE: &str = "kernel.json";

/// What the state file records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct KernelState {
    /// The process group (the id of `sh`, its leader).
    pgid: i32,
    /// `/proc/sys/kernel/random/boot_id` when it was started: a group id from another
    /// boot means nothing.
    boot_id: String,
}

/// The id of this boot (empty where the kernel does not say).
fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// A running session process: its group and its `sh`.
#[derive(Debug)]
pub struct Kernel {
    child: Child,
    pgid: Pid,
    dir: PathBuf,
}

/// How a session's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this code.
    Code(i32),
    /// A signal killed it (its number).
    Signal(i32),
}

impl Exit {
    fn of(status: ExitStatus) -> Self {
        match (status.code(), status.signal()) {
            (Some(code), _) => Self::Code(code),
            (None, Some(sig)) => Self::Signal(sig),
            (None, None) => Self::Code(-1),
        }
    }
}

/// The `signal-<NAME>` reason of a signal number (`signal-SIGTERM`, `signal-SIGKILL`;
/// `signal-N` for a number without a standard name).
pub fn signal_reason(sig: i32) -> String {
    const NAMES: [&str; 31] = [
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    let name = usize::try_from(sig)
        .ok()
        .and_then(|n| n.checked_sub(1))
        .and_then(|i| NAMES.get(i));
    match name {
        Some(n) => format!("signal-{n}"),
        None => format!("signal-{sig}"),
    }
}

/// The directory of a session under the work directory.
pub fn session_dir(work_dir: &Path, session_id: &str) -> PathBuf {
    work_dir.join(session_id)
}

impl Kernel {
    /// Starts `command` with `sh -c` for session `session_id` (named `name`) in its own
    /// process group, in `<work_dir>/<session_id>/`.
    pub fn spawn(
        work_dir: &Path,
        session_id: &str,
        name: &str,
        command: &str,
    ) -> std::io::Result<Self> {
        let dir = session_dir(work_dir, session_id);
        std::fs::create_dir_all(&dir)?;
        let stdout = std::fs::File::create(dir.join("stdout.log"))?;
        let stderr = std::fs::File::create(dir.join("stderr.log"))?;
        let child = Command::new("sh")
            .arg("-c")
            .arg(command)
            .current_dir(&dir)
            .env("SESSIOND_SESSION_ID", session_id)
            .env("SESSIOND_SESSION_NAME", name)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0)
            .spawn()?;
        let raw = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .and_then(Pid::from_raw)
            .ok_or_else(|| std::io::Error::other("the process has no id"))?;
        let state = KernelState {
            pgid: raw.as_raw_nonzero().get(),
            boot_id: boot_id(),
        };
        let text = serde_json::to_vec(&state).map_err(std::io::Error::other)?;
        std::fs::write(dir.join(STATE_FILE), text)?;
        Ok(Self {
            child,
            pgid: raw,
            dir,
        })
    }

    /// Waits for `sh` to exit, then kills whatever it left in its group.
    pub async fn wait(&mut self) -> std::io::Result<Exit> {
        let status = self.child.wait().await?;
        self.reap_group();
        Ok(Exit::of(status))
    }

    /// Stops the group: SIGTERM, then SIGKILL if `sh` is still there after `grace`.
    /// Returns how it ended.
    pub async fn stop(&mut self, grace: Duration) -> std::io::Result<Exit> {
        let _ = kill_process_group(self.pgid, Signal::TERM);
        let status = match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(status) => status?,
            Err(_) => {
                let _ = kill_process_group(self.pgid, Signal::KILL);
                self.child.wait().await?
            }
        };
        self.reap_group();
        Ok(Exit::of(status))
    }

    /// SIGKILL to whatever is left in the group (a background job of the command), and
    /// the state file goes: nothing of the session runs any more.
    fn reap_group(&mut self) {
        let _ = kill_process_group(self.pgid, Signal::KILL);
        let _ = std::fs::remove_file(self.dir.join(STATE_FILE));
    }

    /// The last [`TAIL_BYTES`] of stdout and stderr.
    pub fn tails(&self) -> (String, String) {
        (
            tail(&self.dir.join("stdout.log")),
            tail(&self.dir.join("stderr.log")),
        )
    }
}

/// The last [`TAIL_BYTES`] of a file as UTF-8 (invalid bytes replaced, cut at a
/// character boundary so the result never exceeds the limit); empty if unreadable.
pub fn tail(path: &Path) -> String {
    let read = || -> std::io::Result<Vec<u8>> {
        let mut f = std::fs::File::open(path)?;
        let len = f.metadata()?.len();
        let start = len.saturating_sub(TAIL_BYTES as u64);
        f.seek(SeekFrom::Start(start))?;
        let mut buf = Vec::new();
        f.take(TAIL_BYTES as u64).read_to_end(&mut buf)?;
        Ok(buf)
    };
    let bytes = read().unwrap_or_default();
    let mut text = String::from_utf8_lossy(&bytes).into_owned();
    while text.len() > TAIL_BYTES {
        let cut = text
            .char_indices()
            .nth(1)
            .map(|(i, _)| i)
            .unwrap_or(text.len());
        text.drain(..cut);
    }
    text
}

/// What a previous run of this agent left behind: the sessions whose process group was
/// still alive (now killed), and those whose state file named a group already gone.
/// Either way each session listed had been started by this agent id before.
pub fn reconcile_leftovers(work_dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(work_dir) else {
        return vec![];
    };
    let this_boot = boot_id();
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path().join(STATE_FILE);
        let Ok(text) = std::fs::read(&path) else {
            continue;
        };
        let Some(session_id) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if let Ok(state) = serde_json::from_slice::<KernelState>(&text) {
            if state.boot_id == this_boot {
                if let Some(pgid) = Pid::from_raw(state.pgid) {
                    if test_kill_process_group(pgid).is_ok() {
                        tracing::warn!(%session_id, pgid = state.pgid, "killing a process group a previous run of this agent left behind");
                        let _ = kill_process_group(pgid, Signal::KILL);
                    }
                }
            }
        }
        let _ = std::fs::remove_file(&path);
        found.push(session_id);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_are_named_like_kill_l_with_the_sig_prefix() {
        assert_eq!(signal_reason(15), "signal-SIGTERM");
        assert_eq!(signal_reason(9), "signal-SIGKILL");
        assert_eq!(signal_reason(64), "signal-64");
        assert_eq!(signal_reason(0), "signal-0");
    }

    #[test]
    fn a_tail_keeps_the_end_of_a_file_and_never_more_than_the_limit() {
        let dir = std::env::temp_dir().join(format!("tail-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out.log");
        // Multi-byte characters straddling the cut, then a known end.
        let mut text = "é".repeat(TAIL_BYTES);
        text.push_str("THE END");
        std::fs::write(&path, &text).unwrap();
        let t = tail(&path);
        assert!(t.len() <= TAIL_BYTES);
        assert!(t.ends_with("THE END"));
        assert_eq!(tail(&dir.join("missing.log")), "");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

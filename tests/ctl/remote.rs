//! The user CLI over HTTP (SPEC §11): `sessionctl vfolder ...` and `sessionctl bgtask
//! watch` against a real `sessiond serve` process (SQLite), with a user key made by
//! `sessionctl keys create`. Clones are throttled (`SESSIOND_CLONE_MAX_BYTES_PER_SEC`)
//! so that one lasts long enough to be watched, cancelled or interrupted; every wait is
//! for a condition (a line of output, a status), never a fixed sleep.

use serde_json::Value;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt};

/// 4 MiB/s: a 5 MiB clone takes about 1-2 s, a 24 MiB one about 6 s.
const CLONE_BYTES_PER_SEC: &str = "4194304";

pub(crate) use testkit::serve::Server;

pub(crate) const BINS: testkit::serve::Bins = testkit::serve::Bins {
    sessiond: env!("CARGO_BIN_EXE_sessiond"),
    sessionctl: env!("CARGO_BIN_EXE_sessionctl"),
};

/// A `sessiond serve` on its own SQLite file (its volume `local` in its directory,
/// the default), clones throttled; killed and its directory removed on drop.
pub(crate) fn start_server() -> Server {
    Server::start(
        BINS,
        &[("SESSIOND_CLONE_MAX_BYTES_PER_SEC", CLONE_BYTES_PER_SEC)],
    )
}

/// Exit code, stdout, stderr.
pub(crate) type Ran = (i32, String, String);

/// Runs `sessionctl ARGS` with a clean environment (no `SESSIOND_*` from outside).
pub(crate) async fn sessionctl(args: &[&str]) -> Ran {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sessionctl"))
        .args(args)
        .env_remove("SESSIOND_SERVER")
        .env_remove("SESSIOND_KEY")
        .env_remove("SESSIOND_DATABASE_URL")
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `sessionctl ARGS --server BASE --key KEY`.
pub(crate) async fn remote(server: &Server, key: &str, args: &[&str]) -> Ran {
    let mut all = args.to_vec();
    all.extend(["--server", &server.base, "--key", key]);
    sessionctl(&all).await
}

/// A user key for `owner`, made with `sessionctl keys create` on the server's store,
/// returned once the server accepts it (it polls the keys table).
pub(crate) async fn user_key(server: &Server, owner: &str) -> String {
    server.key(&["--role", "user", "--owner", owner]).await
}

/// `n` bytes that do not repeat in any short period.
fn payload(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The folder `name` of `vfolder list --json`, if listed.
async fn listed(server: &Server, key: &str, name: &str) -> Option<Value> {
    let (code, out, err) = remote(server, key, &["vfolder", "list", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    let list: Value = serde_json::from_str(&out).unwrap();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .cloned()
}

/// Waits until `vfolder list` shows `name` with `status` (`None`: not listed at all).
async fn wait_listed(server: &Server, key: &str, name: &str, status: Option<&str>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = listed(server, key, name).await;
        let now = found
            .as_ref()
            .map(|f| f["status"].as_str().unwrap().to_string());
        if now.as_deref() == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name}: {now:?}, never {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) fn one_line(err: &str) -> &str {
    assert_eq!(err.trim().lines().count(), 1, "not one line: {err:?}");
    assert!(!err.contains("panicked"), "{err}");
    err.trim()
}

/// The UUID in a line of human output.
fn uuid_in(text: &str) -> String {
    text.split(|c: char| !(c.is_ascii_hexdigit() || c == '-'))
        .find(|w| uuid::Uuid::parse_str(w).is_ok())
        .unwrap_or_else(|| panic!("no id in {text:?}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vfolder_commands_create_upload_list_clone_download_and_remove_over_http() {
    let server = start_server();
    let key = user_key(&server, "alice").await;
    let work = server.dir.join("work");
    std::fs::create_dir_all(&work).unwrap();

    // create, and the same name again (refused by the server: exit 1, its code)
    let (code, out, err) = remote(&server, &key, &["vfolder", "create", "data"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("created vfolder 'data' on local (ready)"),
        "{out}"
    );
    let (code, _, err) = remote(&server, &key, &["vfolder", "create", "data"]).await;
    assert_eq!(code, 1);
    assert!(
        one_line(&err).starts_with("sessionctl: name_conflict: "),
        "{err}"
    );

    // upload ~5 MiB under the local file's name, and another copy at a nested path
    let blob = payload(5 * 1024 * 1024 + 123);
    let local = work.join("blob.bin");
    std::fs::write(&local, &blob).unwrap();
    let local_s = local.to_str().unwrap();
    let (code, out, err) = remote(&server, &key, &["vfolder", "upload", "data", local_s]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("to data:blob.bin ({} bytes)", blob.len())),
        "{out}"
    );
    let (code, out, err) = remote(
        &server,
        &key,
        &[
            "vfolder",
            "upload",
            "data",
            local_s,
            "nested/dir/again.bin",
            "--json",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let uploaded: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(uploaded["path"], "nested/dir/again.bin");
    assert_eq!(uploaded["size"], blob.len() as u64);

    // list: a table, and the server's JSON
    let (code, out, err) = remote(&server, &key, &["vfolder", "list"]).await;
    assert_eq!(code, 0, "{err}");
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["NAME", "STATUS", "HOST", "PERMISSION"], "{out}");
    assert!(
        rows.contains(&vec!["data", "ready", "local", "rw"]),
        "{out}"
    );
    let data = listed(&server, &key, "data").await.expect("data listed");
    assert_eq!(data["owner"], "alice");
    assert_eq!(data["status"], "ready");

    // clone --watch: exit 0 once the copy is done, the final line on stdout
    let started = Instant::now();
    let (code, out, err) = remote(
        &server,
        &key,
        &["vfolder", "clone", "data", "copy", "--watch"],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "the clone was not throttled: {out}"
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with("cloning 'data' to 'copy' on local: task "),
        "{out}"
    );
    let task = uuid_in(lines[0]);
    assert!(
        lines[1].starts_with(&format!("task {task} done: cloned 2 files")),
        "{out}"
    );
    assert!(!err.contains("panicked"), "{err}");
    wait_listed(&server, &key, "copy", Some("ready")).await;

    // download the clone's files: into a directory (under the remote name) and to a name
    let into = work.join("downloads");
    std::fs::create_dir_all(&into).unwrap();
    let (code, out, err) = remote(
        &server,
        &key,
        &[
            "vfolder",
            "download",
            "copy",
            "blob.bin",
            into.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("({} bytes)", blob.len())), "{out}");
    assert!(
        std::fs::read(into.join("blob.bin")).unwrap() == blob,
        "downloaded bytes differ"
    );
    let named = into.join("named.bin");
    let (code, out, err) = remote(
        &server,
        &key,
        &[
            "vfolder",
            "download",
            "copy",
            "nested/dir/again.bin",
            named.to_str().unwrap(),
            "--json",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let got: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(got["size"], blob.len() as u64);
    assert!(
        std::fs::read(&named).unwrap() == blob,
        "downloaded bytes differ"
    );
    let mut names: Vec<String> = std::fs::read_dir(&into)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["blob.bin", "named.bin"],
        "no temporary file left behind"
    );

    // watching a finished task: its final frame at once, exit 0; --json prints the frames
    let t0 = Instant::now();
    let (code, out, err) = remote(&server, &key, &["bgtask", "watch", &task]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.trim().starts_with(&format!("task {task} done: ")),
        "{out}"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "not at once: {:?}",
        t0.elapsed()
    );
    let (code, out, err) = remote(&server, &key, &["bgtask", "watch", &task, "--json"]).await;
    assert_eq!(code, 0, "{err}");
    let frames: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(frames.len(), 1, "{out}");
    assert_eq!(frames[0]["event"], "bgtask_done");
    assert_eq!(frames[0]["data"]["task_id"], task.as_str());

    // refusals: one line with the server's code, exit 1
    for (args, expected) in [
        (
            vec!["vfolder", "download", "nope", "blob.bin"],
            "sessionctl: not_found: ",
        ),
        (
            vec!["vfolder", "download", "copy", "missing.bin"],
            "sessionctl: not_found: ",
        ),
        (
            vec!["vfolder", "clone", "nope", "other"],
            "sessionctl: not_found: ",
        ),
        (vec!["vfolder", "rm", "nope"], "sessionctl: not_found: "),
        (
            vec!["bgtask", "watch", "00000000-0000-0000-0000-000000000000"],
            "sessionctl: not_found: ",
        ),
        (
            vec!["vfolder", "create", "../x"],
            "sessionctl: validation_error: ",
        ),
    ] {
        let (code, _, err) = remote(&server, &key, &args).await;
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(one_line(&err).starts_with(expected), "{args:?}: {err}");
    }
    let (code, _, err) = remote(&server, "not-a-key", &["vfolder", "list"]).await;
    assert_eq!(code, 1);
    assert!(
        one_line(&err).starts_with("sessionctl: unauthorized: "),
        "{err}"
    );
    // A path the URL cannot carry is refused before anything is sent: exit 2.
    let (code, _, err) = remote(
        &server,
        &key,
        &["vfolder", "download", "copy", "../blob.bin"],
    )
    .await;
    assert_eq!(code, 2);
    assert!(one_line(&err).contains("'..' cannot be used"), "{err}");

    // rm --watch: delete-pending at once, then done; the folder leaves the list
    let (code, out, err) = remote(&server, &key, &["vfolder", "rm", "copy", "--watch"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("deleting 'copy' (delete-pending): task "),
        "{out}"
    );
    assert!(out.contains(" done: "), "{out}");
    wait_listed(&server, &key, "copy", None).await;
    assert!(listed(&server, &key, "data").await.is_some());
}

/// A `sessionctl bgtask watch --json ID` child, its stdout read line by line.
struct Watcher {
    child: tokio::process::Child,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    seen: Vec<String>,
}

impl Watcher {
    fn spawn(server: &Server, key: &str, task: &str) -> Self {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_sessionctl"))
            .args([
                "bgtask",
                "watch",
                task,
                "--json",
                "--server",
                &server.base,
                "--key",
                key,
            ])
            .env_remove("SESSIOND_SERVER")
            .env_remove("SESSIOND_KEY")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        Self {
            child,
            lines: tokio::io::BufReader::new(stdout).lines(),
            seen: Vec::new(),
        }
    }

    /// Waits for the next frame the watcher prints.
    async fn frame(&mut self) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(30), self.lines.next_line())
            .await
            .expect("no frame from bgtask watch within 30 s")
            .unwrap()
            .expect("bgtask watch ended before printing a frame");
        self.seen.push(line.clone());
        serde_json::from_str(&line).unwrap()
    }

    /// Waits for the watcher to exit: its code, every frame it printed, its stderr.
    async fn exit(mut self) -> (i32, Vec<String>, String) {
        let mut stderr = self.child.stderr.take().unwrap();
        let done = async {
            while let Some(line) = self.lines.next_line().await.unwrap() {
                self.seen.push(line);
            }
            let mut err = String::new();
            stderr.read_to_string(&mut err).await.unwrap();
            let status = self.child.wait().await.unwrap();
            (status.code().unwrap_or(-1), err)
        };
        let (code, err) = tokio::time::timeout(Duration::from_secs(60), done)
            .await
            .expect("bgtask watch did not exit within 60 s");
        (code, self.seen, err)
    }
}

/// Starts a clone of `source` (`--json`) and returns its task id.
async fn start_clone(server: &Server, key: &str, source: &str, target: &str) -> String {
    let (code, out, err) =
        remote(server, key, &["vfolder", "clone", source, target, "--json"]).await;
    assert_eq!(code, 0, "{err}");
    let started: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(started["status"], "cloning");
    started["bgtask_id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bgtask_watch_exits_1_when_the_task_is_cancelled_and_2_when_the_server_goes_away() {
    let mut server = start_server();
    let key = user_key(&server, "alice").await;
    let (code, _, err) = remote(&server, &key, &["vfolder", "create", "big"]).await;
    assert_eq!(code, 0, "{err}");
    let local = server.dir.join("big.bin");
    std::fs::write(&local, payload(24 * 1024 * 1024)).unwrap();
    let (code, _, err) = remote(
        &server,
        &key,
        &["vfolder", "upload", "big", local.to_str().unwrap()],
    )
    .await;
    assert_eq!(code, 0, "{err}");

    // Cancelled while watched (through the API, as another client would): exit 1.
    let task = start_clone(&server, &key, "big", "big-copy").await;
    let mut watcher = Watcher::spawn(&server, &key, &task);
    let first = watcher.frame().await;
    assert_eq!(first["event"], "bgtask_updated", "{first}");
    let cancel = reqwest::Client::new()
        .delete(format!("{}/v1/background-tasks/{task}", server.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        cancel.status(),
        reqwest::StatusCode::OK,
        "the clone ended before the cancel"
    );
    let (code, frames, err) = watcher.exit().await;
    assert_eq!(code, 1, "{frames:?} {err}");
    let last: Value = serde_json::from_str(frames.last().unwrap()).unwrap();
    assert_eq!(last["event"], "bgtask_cancelled", "{frames:?}");
    assert!(
        one_line(&err).starts_with(&format!("sessionctl: task {task} cancelled: ")),
        "{err}"
    );
    wait_listed(&server, &key, "big-copy", Some("error")).await;

    // The server dies mid-clone: the watcher reconnects a bounded number of times,
    // then exits 2 with one line naming the server.
    let task = start_clone(&server, &key, "big", "big-copy-2").await;
    let mut watcher = Watcher::spawn(&server, &key, &task);
    watcher.frame().await;
    server.proc.0.kill().unwrap(); // SIGKILL
    server.proc.0.wait().unwrap();
    let (code, frames, err) = watcher.exit().await;
    assert_eq!(code, 2, "{frames:?} {err}");
    let line = one_line(&err);
    assert!(
        line.starts_with(&format!(
            "sessionctl: lost the progress stream of task {task} from {}",
            server.base
        )),
        "{line}"
    );
    assert!(
        !frames.iter().any(|f| f.contains("bgtask_done")),
        "{frames:?}"
    );
}

#[tokio::test]
async fn remote_commands_fail_in_one_line_without_a_server_and_never_open_the_store() {
    // A database URL that cannot be opened: a command that tried would say so, exit 1.
    let db = ["--database-url", "mysql://u:pw@h/db"];
    let key = ["--key", "some-key"];
    let nowhere = ["--server", "http://127.0.0.1:1"];
    for args in [
        vec!["vfolder", "list"],
        vec!["vfolder", "create", "x"],
        vec!["bgtask", "watch", "00000000-0000-0000-0000-000000000000"],
    ] {
        let all: Vec<&str> = args
            .iter()
            .chain(&db)
            .chain(&key)
            .chain(&nowhere)
            .copied()
            .collect();
        let started = Instant::now();
        let (code, out, err) = sessionctl(&all).await;
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(out.is_empty(), "{out}");
        assert_eq!(
            one_line(&err),
            "sessionctl: cannot reach the server at http://127.0.0.1:1 (Connection refused (os error 111))",
            "{args:?}"
        );
        // A stream that never opened is not retried.
        assert!(started.elapsed() < Duration::from_secs(5), "{args:?}");
    }
    // Usage problems the parser cannot see: exit 2, one line.
    for (args, expected) in [
        (
            vec!["vfolder", "list", "--server", "http://127.0.0.1:1"],
            "no API key: pass --key KEY or set SESSIOND_KEY",
        ),
        (
            vec!["vfolder", "list", "--server", "ftp://h/", "--key", "k"],
            "expected an http:// or https:// URL",
        ),
        (
            vec!["vfolder", "list", "--server", "not a url", "--key", "k"],
            "--server not a url: ",
        ),
        (
            vec![
                "vfolder",
                "upload",
                "x",
                "/",
                "--server",
                "http://127.0.0.1:1",
                "--key",
                "k",
            ],
            "has no file name",
        ),
    ] {
        let (code, _, err) = sessionctl(&args).await;
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(one_line(&err).contains(expected), "{args:?}: {err}");
    }
    // A local file that cannot be read: exit 1 naming it, before any request.
    let (code, _, err) = sessionctl(&[
        "vfolder",
        "upload",
        "x",
        "/nonexistent/file.bin",
        "--server",
        "http://127.0.0.1:1",
        "--key",
        "k",
    ])
    .await;
    assert_eq!(code, 1, "{err}");
    assert!(
        one_line(&err).starts_with("sessionctl: cannot use /nonexistent/file.bin"),
        "{err}"
    );
    // The exit codes are documented.
    for args in [
        vec!["--help"],
        vec!["vfolder", "--help"],
        vec!["bgtask", "--help"],
    ] {
        let (code, out, _) = sessionctl(&args).await;
        assert_eq!(code, 0);
        assert!(
            out.contains("Exit codes:") && out.contains("  2  a usage error"),
            "{out}"
        );
    }
}

//! Copying a vfolder's tree (SPEC §7.3): regular files (contents, mode, mtime),
//! directories (mode, mtime) and symlinks as symlinks — never followed; other file types
//! (FIFOs, sockets, devices) are skipped and counted.
//!
//! The copy is resumable: each file is written to a temporary name beside its final one
//! and renamed when complete (with its mode and mtime set first), so a file present
//! under its final name with the source's size and mtime is complete and is not copied
//! again. Files are copied by `parallelism` threads; contents move with
//! `copy_file_range(2)` (in-kernel, reflinked where the file system can), in chunks so
//! progress and cancellation are seen within a chunk. Plain reads and writes are the
//! fallback where the kernel refuses (another file system, an old kernel).
//!
//! No database transaction is involved: this is file I/O on blocking threads only.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// Bytes moved per `copy_file_range` call (progress and cancellation granularity).
const CHUNK: usize = 8 * 1024 * 1024;
/// Suffix of a file being written.
pub const PARTIAL_SUFFIX: &str = ".sessiond-partial";

/// One regular file to copy.
#[derive(Debug, Clone)]
pub struct FileEntry {
    /// Path relative to the tree's root.
    pub rel: PathBuf,
    /// Size in bytes.
    pub len: u64,
    /// Permission bits.
    pub mode: u32,
    /// Modification time.
    pub mtime: SystemTime,
}

/// What a tree holds, read without following any symlink.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Directories, parents before children (the root excluded), with mode and mtime.
    pub dirs: Vec<(PathBuf, u32, SystemTime)>,
    /// Regular files.
    pub files: Vec<FileEntry>,
    /// Symlinks: path, target (as stored), mtime.
    pub links: Vec<(PathBuf, PathBuf, SystemTime)>,
    /// Other file types, skipped.
    pub skipped: Vec<PathBuf>,
    /// The root's own mode and mtime.
    pub root: Option<(u32, SystemTime)>,
    /// Sum of the regular files' sizes.
    pub total_bytes: u64,
}

/// Why a copy stopped.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// It was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// A file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: String,
        /// Cause.
        source: io::Error,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> CopyError + 'a {
    move |source| CopyError::Io {
        op,
        path: path.display().to_string(),
        source,
    }
}

/// Reads the tree at `root` (which must be a directory, not a symlink).
pub fn plan(root: &Path) -> Result<Plan, CopyError> {
    let meta = std::fs::symlink_metadata(root).map_err(io_err("stat", root))?;
    if !meta.is_dir() {
        return Err(CopyError::Io {
            op: "open",
            path: root.display().to_string(),
            source: io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
        });
    }
    let mut plan = Plan {
        root: Some((
            meta.mode() & 0o7777,
            meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        )),
        ..Plan::default()
    };
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .map_err(io_err("list", &dir))?
            .collect::<Result<_, _>>()
            .map_err(io_err("list", &dir))?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let child = rel.join(entry.file_name());
            let path = root.join(&child);
            let m = std::fs::symlink_metadata(&path).map_err(io_err("stat", &path))?;
            let mtime = m.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            let ft = m.file_type();
            if ft.is_symlink() {
                let target = std::fs::read_link(&path).map_err(io_err("readlink", &path))?;
                plan.links.push((child, target, mtime));
            } else if ft.is_dir() {
                plan.dirs.push((child.clone(), m.mode() & 0o7777, mtime));
                stack.push(child);
            } else if ft.is_file() {
                plan.total_bytes = plan.total_bytes.saturating_add(m.len());
                plan.files.push(FileEntry {
                    rel: child,
                    len: m.len(),
                    mode: m.mode() & 0o7777,
                    mtime,
                });
            } else {
                plan.skipped.push(child);
            }
        }
    }
    // Parents before children: shorter paths first is enough (a child has more components).
    plan.dirs.sort_by_key(|(p, _, _)| p.components().count());
    Ok(plan)
}

/// Shared state of a running copy: progress and the cancel flag, read by the runner
/// while the copy threads work.
#[derive(Debug, Default)]
pub struct Control {
    /// Bytes of the plan already in the target (copied now or complete before).
    pub done: AtomicU64,
    /// Set to stop the copy at the next chunk.
    pub cancelled: AtomicBool,
    /// Most bytes per second (0: unlimited).
    pub max_bytes_per_sec: u64,
    /// Bytes copied by this run (for the rate limit).
    copied: AtomicU64,
}

impl Control {
    /// A control with a rate limit (0: none).
    pub fn with_rate(max_bytes_per_sec: u64) -> Self {
        Self {
            max_bytes_per_sec,
            ..Self::default()
        }
    }

    fn check(&self) -> Result<(), CopyError> {
        if self.cancelled.load(Ordering::Relaxed) {
            Err(CopyError::Cancelled)
        } else {
            Ok(())
        }
    }

    fn moved(&self, n: u64, started: Instant) {
        self.done.fetch_add(n, Ordering::Relaxed);
        let copied = self
            .copied
            .fetch_add(n, Ordering::Relaxed)
            .saturating_add(n);
        if self.max_bytes_per_sec > 0 {
            // Sleep until the run's average is back under the limit.
            let due = Duration::from_secs_f64(copied as f64 / self.max_bytes_per_sec as f64);
            let elapsed = started.elapsed();
            if due > elapsed {
                std::thread::sleep(due.saturating_sub(elapsed).min(Duration::from_secs(1)));
            }
        }
    }
}

/// What a copy did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Regular files copied by this run.
    pub files_copied: u64,
    /// Regular files found complete from an earlier run.
    pub files_reused: u64,
    /// Directories.
    pub dirs: u64,
    /// Symlinks.
    pub links: u64,
    /// Special files skipped.
    pub skipped: u64,
    /// Bytes of regular files copied by this run.
    pub bytes_copied: u64,
}

impl Report {
    /// The task's final message.
    pub fn message(&self) -> String {
        format!(
            "cloned {} files ({} bytes copied, {} already complete), {} directories, {} symlinks; skipped {} special files",
            self.files_copied.saturating_add(self.files_reused),
            self.bytes_copied,
            self.files_reused,
            self.dirs,
            self.links,
            self.skipped
        )
    }
}

/// Lowers this (copy) thread's CPU priority to the lowest (nice 19): a clone must not
/// take CPU from the API and the database it shares the machine with (measured: at the
/// default priority its threads doubled the API's p99). Best effort: a refusal leaves
/// the priority as it was.
fn lower_priority() {
    let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 19);
}

/// Whether the target already holds `f` complete (its final name, same size and mtime).
fn complete(dst: &Path, f: &FileEntry) -> bool {
    std::fs::symlink_metadata(dst.join(&f.rel))
        .is_ok_and(|m| m.is_file() && m.len() == f.len && m.modified().is_ok_and(|t| t == f.mtime))
}

/// Bytes of the plan not yet complete in `dst` (what the copy still needs room for).
pub fn bytes_needed(plan: &Plan, dst: &Path) -> u64 {
    plan.files
        .iter()
        .filter(|f| !complete(dst, f))
        .map(|f| f.len)
        .fold(0u64, u64::saturating_add)
}

fn partial_name(final_path: &Path) -> PathBuf {
    let mut name = final_path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(PARTIAL_SUFFIX);
    let mut p = final_path.to_path_buf();
    p.set_file_name(format!(".{}", name.to_string_lossy()));
    p
}

fn copy_contents(
    from: &mut File,
    to: &mut File,
    control: &Control,
    started: Instant,
) -> Result<u64, io::Error> {
    let mut total: u64 = 0;
    let mut fallback = false;
    let mut buf = Vec::new();
    loop {
        if control.cancelled.load(Ordering::Relaxed) {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "cancelled"));
        }
        let n = if fallback {
            if buf.is_empty() {
                buf = vec![0u8; 1024 * 1024];
            }
            let n = from.read(&mut buf)?;
            to.write_all(buf.get(..n).unwrap_or_default())?;
            n
        } else {
            match rustix::fs::copy_file_range(&*from, None, &*to, None, CHUNK) {
                Ok(n) => n,
                Err(e)
                    if total == 0
                        && matches!(
                            e,
                            rustix::io::Errno::XDEV
                                | rustix::io::Errno::NOSYS
                                | rustix::io::Errno::INVAL
                                | rustix::io::Errno::OPNOTSUPP
                        ) =>
                {
                    fallback = true;
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        };
        if n == 0 {
            return Ok(total);
        }
        let n = n as u64;
        total = total.saturating_add(n);
        control.moved(n, started);
    }
}

fn copy_file(
    src: &Path,
    dst: &Path,
    f: &FileEntry,
    control: &Control,
    started: Instant,
) -> Result<(), CopyError> {
    let from_path = src.join(&f.rel);
    let to_path = dst.join(&f.rel);
    let partial = partial_name(&to_path);
    let nofollow = rustix::fs::OFlags::NOFOLLOW.bits() as i32;
    let mut from = OpenOptions::new()
        .read(true)
        .custom_flags(nofollow)
        .open(&from_path)
        .map_err(io_err("open", &from_path))?;
    let mut to = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(nofollow)
        .mode(0o600)
        .open(&partial)
        .map_err(io_err("create", &partial))?;
    match copy_contents(&mut from, &mut to, control, started) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::Interrupted => return Err(CopyError::Cancelled),
        Err(e) => return Err(io_err("copy to", &partial)(e)),
    }
    to.set_permissions(std::fs::Permissions::from_mode(f.mode))
        .map_err(io_err("chmod", &partial))?;
    to.set_modified(f.mtime)
        .map_err(io_err("set mtime of", &partial))?;
    drop(to);
    std::fs::rename(&partial, &to_path).map_err(io_err("rename", &partial))?;
    Ok(())
}

fn set_mtime_nofollow(path: &Path, mtime: SystemTime) -> io::Result<()> {
    let d = mtime
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let ts = rustix::fs::Timespec {
        tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(d.subsec_nanos()),
    };
    let times = rustix::fs::Timestamps {
        last_access: ts,
        last_modification: ts,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &times,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(io::Error::from)
}

/// Copies `plan` (read from `src`) into `dst`, with `parallelism` threads; files
/// already complete in `dst` are kept. Blocking: run it on a blocking thread.
pub fn execute(
    plan: &Plan,
    src: &Path,
    dst: &Path,
    parallelism: usize,
    control: &Control,
) -> Result<Report, CopyError> {
    let started = Instant::now();
    let mut report = Report {
        skipped: plan.skipped.len() as u64,
        ..Report::default()
    };
    std::fs::create_dir_all(dst).map_err(io_err("create", dst))?;
    for (rel, _, _) in &plan.dirs {
        control.check()?;
        let d = dst.join(rel);
        match std::fs::symlink_metadata(&d) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(CopyError::Io {
                    op: "create",
                    path: d.display().to_string(),
                    source: io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        "exists and is not a directory",
                    ),
                })
            }
            Err(_) => std::fs::create_dir(&d).map_err(io_err("create", &d))?,
        }
        report.dirs = report.dirs.saturating_add(1);
    }

    // Regular files, by `parallelism` threads taking the next file in turn.
    let next = AtomicUsize::new(0);
    let copied = AtomicU64::new(0);
    let reused = AtomicU64::new(0);
    let bytes = AtomicU64::new(0);
    let failure: std::sync::Mutex<Option<CopyError>> = std::sync::Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..parallelism.clamp(1, 64) {
            scope.spawn(|| {
                lower_priority();
                loop {
                    if failure.lock().map(|f| f.is_some()).unwrap_or(true) {
                        return;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(f) = plan.files.get(i) else { return };
                    let result = if complete(dst, f) {
                        control.done.fetch_add(f.len, Ordering::Relaxed);
                        reused.fetch_add(1, Ordering::Relaxed);
                        Ok(())
                    } else {
                        control
                            .check()
                            .and_then(|()| copy_file(src, dst, f, control, started))
                            .map(|()| {
                                copied.fetch_add(1, Ordering::Relaxed);
                                bytes.fetch_add(f.len, Ordering::Relaxed);
                            })
                    };
                    if let Err(e) = result {
                        if let Ok(mut slot) = failure.lock() {
                            slot.get_or_insert(e);
                        }
                        return;
                    }
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().ok().flatten() {
        return Err(e);
    }
    report.files_copied = copied.into_inner();
    report.files_reused = reused.into_inner();
    report.bytes_copied = bytes.into_inner();

    for (rel, target, mtime) in &plan.links {
        control.check()?;
        let l = dst.join(rel);
        let same = std::fs::read_link(&l).is_ok_and(|t| &t == target);
        if !same {
            if std::fs::symlink_metadata(&l).is_ok() {
                std::fs::remove_file(&l).map_err(io_err("replace", &l))?;
            }
            std::os::unix::fs::symlink(target, &l).map_err(io_err("symlink", &l))?;
        }
        set_mtime_nofollow(&l, *mtime).map_err(io_err("set mtime of", &l))?;
        report.links = report.links.saturating_add(1);
    }

    // Directory modes and mtimes last, children before parents (creating entries
    // changes a directory's mtime).
    for (rel, mode, mtime) in plan.dirs.iter().rev() {
        let d = dst.join(rel);
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(*mode))
            .map_err(io_err("chmod", &d))?;
        set_mtime_nofollow(&d, *mtime).map_err(io_err("set mtime of", &d))?;
    }
    if let Some((mode, mtime)) = plan.root {
        std::fs::set_permissions(dst, std::fs::Permissions::from_mode(mode))
            .map_err(io_err("chmod", dst))?;
        set_mtime_nofollow(dst, mtime).map_err(io_err("set mtime of", dst))?;
    }
    Ok(report)
}

/// Removes a target tree (a failed or cancelled clone, a deleted folder). A missing
/// tree is fine.
pub fn remove_tree(path: &Path) -> io::Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tmp() -> PathBuf {
        let d = std::env::temp_dir().join(format!("sessiond-copy-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn tree() -> PathBuf {
        let src = tmp().join("src");
        std::fs::create_dir_all(src.join("a/b/c")).unwrap();
        std::fs::create_dir_all(src.join("empty")).unwrap();
        std::fs::write(src.join("a/b/c/deep.txt"), b"deep").unwrap();
        std::fs::write(src.join("zero"), b"").unwrap();
        std::fs::write(src.join("big"), vec![7u8; 3 * CHUNK + 5]).unwrap();
        std::fs::write(src.join("run.sh"), b"#!/bin/sh\n").unwrap();
        std::fs::set_permissions(src.join("run.sh"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        symlink("zero", src.join("sibling")).unwrap();
        symlink("/etc/passwd", src.join("outside")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            src.join("fifo"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        src
    }

    /// Path, type or link target, mode, contents, mtime.
    type Entry = (String, String, u32, Option<Vec<u8>>, i64);

    fn listing(root: &Path) -> Vec<Entry> {
        let p = plan(root).unwrap();
        let mut out = Vec::new();
        for f in &p.files {
            let m = std::fs::symlink_metadata(root.join(&f.rel)).unwrap();
            out.push((
                f.rel.display().to_string(),
                "f".into(),
                f.mode,
                Some(std::fs::read(root.join(&f.rel)).unwrap()),
                m.mtime_nsec() + m.mtime() * 1_000_000_000,
            ));
        }
        for (d, mode, _) in &p.dirs {
            let m = std::fs::symlink_metadata(root.join(d)).unwrap();
            out.push((d.display().to_string(), "d".into(), *mode, None, m.mtime()));
        }
        for (l, t, _) in &p.links {
            let m = std::fs::symlink_metadata(root.join(l)).unwrap();
            out.push((
                l.display().to_string(),
                t.display().to_string(),
                0,
                None,
                m.mtime(),
            ));
        }
        out.sort();
        out
    }

    #[test]
    fn a_tree_is_copied_with_contents_modes_mtimes_and_links_and_special_files_are_skipped() {
        let src = tree();
        let before = listing(&src);
        let dst = src.parent().unwrap().join("dst");
        let p = plan(&src).unwrap();
        assert_eq!(p.skipped, vec![PathBuf::from("fifo")]);
        let control = Control::default();
        let report = execute(&p, &src, &dst, 3, &control).unwrap();
        assert_eq!(report.skipped, 1);
        assert_eq!(report.links, 2);
        assert_eq!(report.files_copied, 4);
        assert_eq!(control.done.load(Ordering::Relaxed), p.total_bytes);
        assert_eq!(listing(&dst), before);
        assert_eq!(listing(&src), before, "the source is untouched");
        assert_eq!(
            std::fs::read_link(dst.join("outside")).unwrap(),
            PathBuf::from("/etc/passwd")
        );
        assert!(!dst.join("fifo").exists());
    }

    #[test]
    fn a_second_run_keeps_complete_files_and_rewrites_partial_ones() {
        let src = tree();
        let dst = src.parent().unwrap().join("dst");
        let p = plan(&src).unwrap();
        execute(&p, &src, &dst, 2, &Control::default()).unwrap();
        // A crash mid-file: the big file was still being written under its partial name.
        std::fs::remove_file(dst.join("big")).unwrap();
        std::fs::write(partial_name(&dst.join("big")), b"half").unwrap();
        assert_eq!(bytes_needed(&p, &dst), 3 * CHUNK as u64 + 5);
        let report = execute(&p, &src, &dst, 2, &Control::default()).unwrap();
        assert_eq!(report.files_copied, 1);
        assert_eq!(report.files_reused, 3);
        assert_eq!(listing(&dst), listing(&src));
        assert!(!partial_name(&dst.join("big")).exists());
    }

    #[test]
    fn a_cancelled_copy_stops_with_cancelled() {
        let src = tree();
        let dst = src.parent().unwrap().join("dst");
        let p = plan(&src).unwrap();
        let control = Control::default();
        control.cancelled.store(true, Ordering::Relaxed);
        assert!(matches!(
            execute(&p, &src, &dst, 2, &control),
            Err(CopyError::Cancelled)
        ));
        remove_tree(&dst).unwrap();
        assert!(!dst.exists());
        remove_tree(&dst).unwrap();
    }
}

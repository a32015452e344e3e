//! The file side of the clone scenarios: the scratch directory (under the system's
//! temporary directory, removed at the end), the size check against the free space, the
//! generated tree, `cp -a`, `syncfs` and removal.

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::error::BenchError;
use crate::progress;

/// Smallest tree the scenarios run with (a smaller disk is an error).
const MIN_SIZE_MIB: u64 = 16;
/// Free space needed, in multiples of the tree's size (the source, one copy at a time,
/// and room for everything else on the disk).
const FREE_FACTOR: u64 = 3;
/// Share of the tree in its one large file, percent.
const LARGE_SHARE_PERCENT: u64 = 60;
/// Size range of the small files, bytes.
const SMALL_MIN: u64 = 4 * 1024;
const SMALL_MAX: u64 = 64 * 1024;
/// Directory fan-out: `d00..d15/e00..e15/f0..f3`, small files spread over all three
/// levels.
const FAN_OUT: u64 = 16;
const LEAF_FAN_OUT: u64 = 4;

fn io_error(what: &str, path: &Path, e: std::io::Error) -> BenchError {
    BenchError::Other(format!("{what} {}: {e}", path.display()))
}

fn join_error(e: tokio::task::JoinError) -> BenchError {
    BenchError::Other(format!("a blocking file task failed: {e}"))
}

/// A directory of the bench's own under the system's temporary directory: the volume
/// and the staging area of the generated tree. Removed when dropped (and by
/// [`Scratch::remove`], which reports a failure).
#[derive(Debug)]
pub struct Scratch {
    root: PathBuf,
}

impl Scratch {
    /// Creates `sessiond-bench-clone-<uuid>/volume` under the temporary directory.
    pub fn new() -> Result<Self, BenchError> {
        let root =
            std::env::temp_dir().join(format!("sessiond-bench-clone-{}", uuid::Uuid::new_v4()));
        let scratch = Scratch { root };
        std::fs::create_dir_all(scratch.volume())
            .map_err(|e| io_error("cannot create", &scratch.volume(), e))?;
        Ok(scratch)
    }

    /// The scratch directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The root of the server's volume `local`.
    pub fn volume(&self) -> PathBuf {
        self.root.join("volume")
    }

    /// The tree's size in bytes: `requested_mib`, or less (with a note) when the file
    /// system has less than three times that free.
    pub fn fit_size(&self, requested_mib: u64, notes: &mut Vec<String>) -> Result<u64, BenchError> {
        if requested_mib == 0 {
            return Err(BenchError::Other("--size-mib must be >= 1".into()));
        }
        let free = sessiond::volumes::free_bytes(&self.root)
            .map_err(|e| io_error("cannot read the free space of", &self.root, e))?;
        let free_mib = free / (1024 * 1024);
        let mut size_mib = requested_mib;
        if free_mib < requested_mib.saturating_mul(FREE_FACTOR) {
            size_mib = free_mib / FREE_FACTOR;
            if size_mib < MIN_SIZE_MIB.min(requested_mib) {
                return Err(BenchError::Other(format!(
                    "{} has {free_mib} MiB free: too little for even a {MIN_SIZE_MIB} MiB tree",
                    self.root.display()
                )));
            }
            let note = format!(
                "the tree is {size_mib} MiB instead of {requested_mib} MiB: {} has {free_mib} \
                 MiB free, less than {FREE_FACTOR} x the requested size",
                self.root.display()
            );
            eprintln!("sessiond-bench: {note}");
            notes.push(note);
        }
        Ok(size_mib * 1024 * 1024)
    }

    /// Removes the scratch directory.
    pub async fn remove(self) -> Result<(), BenchError> {
        let root = self.root.clone();
        remove(&root).await
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Best effort on every path (a failed run included); `remove` reports errors.
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// What the generated tree holds.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TreeStats {
    /// Bytes of regular files (what a copy moves).
    pub bytes: u64,
    /// Regular files, the large one included.
    pub files: u64,
    /// Size of the large file.
    pub large_bytes: u64,
    /// Directories, the root excluded.
    pub dirs: u64,
    /// Symlinks.
    pub links: u64,
}

impl TreeStats {
    /// One line for the report.
    pub fn describe(&self) -> String {
        format!(
            "{:.0} MiB in {} regular files (one of {:.0} MiB, {} of 4-64 KiB), {} \
             directories, {} symlinks",
            self.bytes as f64 / super::MIB,
            self.files,
            self.large_bytes as f64 / super::MIB,
            self.files.saturating_sub(1),
            self.dirs,
            self.links
        )
    }
}

/// The directory a small file `n` goes to: depth 1, 2 or 3 in turn.
fn small_dir(n: u64) -> PathBuf {
    let a = n % FAN_OUT;
    let b = (n / FAN_OUT) % FAN_OUT;
    let c = (n / (FAN_OUT * FAN_OUT)) % LEAF_FAN_OUT;
    let mut p = PathBuf::from(format!("d{a:02}"));
    if n % 3 >= 1 {
        p.push(format!("e{b:02}"));
    }
    if n % 3 == 2 {
        p.push(format!("f{c}"));
    }
    p
}

/// Generates the tree in `dir` (created), `total` bytes of regular files, on a blocking
/// thread, with a progress bar in bytes.
pub async fn generate_blocking(dir: PathBuf, total: u64) -> Result<TreeStats, BenchError> {
    tokio::task::spawn_blocking(move || generate(&dir, total))
        .await
        .map_err(join_error)?
}

fn generate(dir: &Path, total: u64) -> Result<TreeStats, BenchError> {
    let bar = progress::bar(total, "tree");
    // A fixed seed: the same sizes and contents on every run.
    let mut rng = StdRng::seed_from_u64(0x5e55_10d0);
    let mut pool = vec![0u8; 1024 * 1024];
    rng.fill_bytes(&mut pool);
    let mut stats = TreeStats::default();
    std::fs::create_dir_all(dir).map_err(|e| io_error("cannot create", dir, e))?;
    // Every directory small files may go to, and a few empty ones.
    let mut dirs = std::collections::BTreeSet::new();
    for n in 0..(FAN_OUT * FAN_OUT * LEAF_FAN_OUT * 3) {
        let mut p = PathBuf::new();
        for c in small_dir(n).components() {
            p.push(c);
            dirs.insert(p.clone());
        }
    }
    for i in 0..4 {
        dirs.insert(PathBuf::from(format!("empty-{i}")));
    }
    dirs.insert(PathBuf::from("links"));
    for d in &dirs {
        let path = dir.join(d);
        std::fs::create_dir_all(&path).map_err(|e| io_error("cannot create", &path, e))?;
    }
    stats.dirs = dirs.len() as u64;

    // The large file: 1 MiB blocks of the pool, each stamped with its index.
    let large = total * LARGE_SHARE_PERCENT / 100;
    let large_path = dir.join("large.bin");
    let file = File::create(&large_path).map_err(|e| io_error("cannot create", &large_path, e))?;
    let mut out = BufWriter::with_capacity(4 * 1024 * 1024, file);
    let mut written = 0u64;
    let mut block = pool.clone();
    while written < large {
        let n = (large - written).min(block.len() as u64) as usize;
        if let Some(stamp) = block.get_mut(..8) {
            stamp.copy_from_slice(&written.to_le_bytes());
        }
        out.write_all(block.get(..n).unwrap_or_default())
            .map_err(|e| io_error("cannot write", &large_path, e))?;
        written += n as u64;
        bar.inc(n as u64);
    }
    out.flush()
        .map_err(|e| io_error("cannot write", &large_path, e))?;
    stats.files += 1;
    stats.large_bytes = large;
    stats.bytes += large;

    // Small files until the rest of the size is used.
    let mut n = 0u64;
    while stats.bytes < total {
        let len = rng
            .gen_range(SMALL_MIN..=SMALL_MAX)
            .min(total - stats.bytes)
            .max(1);
        let offset = rng.gen_range(0..(pool.len() as u64 - SMALL_MAX)) as usize;
        let path = dir.join(small_dir(n)).join(format!("s{n:06}.dat"));
        let Some(contents) = pool.get(offset..offset + len as usize) else {
            return Err(BenchError::Other(
                "a small file's contents out of range".into(),
            ));
        };
        std::fs::write(&path, contents).map_err(|e| io_error("cannot write", &path, e))?;
        stats.files += 1;
        stats.bytes += len;
        bar.inc(len);
        n += 1;
    }

    // A few symlinks: to a sibling, up the tree, to the large file, to a directory,
    // dangling, and absolute (copied as links, never followed).
    let links: [(&str, &str); 6] = [
        ("links/sibling", "../d00/s000000.dat"),
        ("links/large", "../large.bin"),
        ("links/dir", "../d01"),
        ("links/dangling", "../no-such-file"),
        ("links/absolute", "/etc/hostname"),
        ("d02/up", ".."),
    ];
    for (at, target) in links {
        let path = dir.join(at);
        std::os::unix::fs::symlink(target, &path)
            .map_err(|e| io_error("cannot create the symlink", &path, e))?;
        stats.links += 1;
    }
    bar.finish_and_clear();
    Ok(stats)
}

/// Moves the generated tree onto a vfolder's (empty) directory.
pub async fn move_into(staging: &Path, folder: &Path) -> Result<(), BenchError> {
    let (from, to) = (staging.to_path_buf(), folder.to_path_buf());
    tokio::task::spawn_blocking(move || {
        // The server created the folder's directory empty; rename(2) replaces it.
        std::fs::rename(&from, &to).map_err(|e| {
            BenchError::Other(format!(
                "cannot move the tree {} onto {}: {e}",
                from.display(),
                to.display()
            ))
        })
    })
    .await
    .map_err(join_error)?
}

/// `cp -a src dst`; its wall time in seconds.
pub async fn cp_a(src: &Path, dst: &Path) -> Result<f64, BenchError> {
    let spinner = indicatif::ProgressBar::new_spinner();
    spinner.set_message("cp -a");
    spinner.enable_steady_tick(std::time::Duration::from_millis(200));
    let started = Instant::now();
    let status = tokio::process::Command::new("cp")
        .arg("-a")
        .arg(src)
        .arg(dst)
        .status()
        .await;
    let seconds = started.elapsed().as_secs_f64();
    spinner.finish_and_clear();
    let status = status.map_err(|e| BenchError::Other(format!("cannot run cp -a: {e}")))?;
    if !status.success() {
        return Err(BenchError::Other(format!(
            "cp -a {} {} failed: {status}",
            src.display(),
            dst.display()
        )));
    }
    Ok(seconds)
}

/// `syncfs(2)` of the file system holding `path`; its wall time in seconds.
pub async fn sync(path: &Path) -> Result<f64, BenchError> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let dir = File::open(&path).map_err(|e| io_error("cannot open", &path, e))?;
        rustix::fs::syncfs(&dir).map_err(|e| io_error("cannot sync", &path, e.into()))?;
        Ok(started.elapsed().as_secs_f64())
    })
    .await
    .map_err(join_error)?
}

/// Removes a tree (a missing one is fine).
pub async fn remove(path: &Path) -> Result<(), BenchError> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(io_error("cannot remove", &path, e))
        }
        _ => Ok(()),
    })
    .await
    .map_err(join_error)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_files_spread_over_three_levels() {
        assert_eq!(small_dir(0), PathBuf::from("d00"));
        assert_eq!(small_dir(1), PathBuf::from("d01/e00"));
        assert_eq!(small_dir(2), PathBuf::from("d02/e00/f0"));
        assert_eq!(small_dir(17), PathBuf::from("d01/e01/f0"));
    }

    #[test]
    fn a_generated_tree_has_the_size_asked_for() {
        let scratch = Scratch::new().unwrap();
        let dir = scratch.path().join("t");
        let stats = generate(&dir, 2 * 1024 * 1024).unwrap();
        assert_eq!(stats.bytes, 2 * 1024 * 1024);
        assert_eq!(stats.large_bytes, 2 * 1024 * 1024 * 60 / 100);
        assert!(stats.files > 10);
        assert_eq!(stats.links, 6);
        let m = std::fs::symlink_metadata(dir.join("links/absolute")).unwrap();
        assert!(m.file_type().is_symlink());
    }
}

//! Volumes: the local directories vfolders live on (SPEC §7.1), and the one way into a
//! vfolder's files from outside (file API paths), which can never leave the folder.
//!
//! A vfolder's files are at `<volume root>/<vfolder_id>/`. Roots are checked at
//! start-up ([`Volumes::check`]): each must be an existing, writable directory (the
//! implicit default `./volumes/local` is created when missing), or `sessiond serve`
//! exits with one line naming the volume.
//!
//! # Paths from outside
//! [`resolve`] turns a request's path into a path under the folder:
//! `..`, `.`, empty components, absolute paths, NUL bytes and over-long paths are
//! refused, and so is any symlink on the way (a symlink planted inside the folder, by a
//! clone or a session, never leads out of it: the file API does not follow symlinks at
//! all; listings show them as `symlink`). The final open uses `O_NOFOLLOW`.

use std::collections::BTreeMap;
use std::io;
use std::path::{Component, Path, PathBuf};

use domain::ids::VolumeName;
use uuid::Uuid;

use crate::config::{Settings, DEFAULT_VOLUME, DEFAULT_VOLUME_ROOT};

/// Why the volumes cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// A volume's name breaks the naming rule.
    #[error("volume name '{name}': {message}")]
    Name {
        /// The name.
        name: String,
        /// The rule.
        message: String,
    },
    /// `default_volume` names no configured volume.
    #[error("default_volume '{0}' is not a configured volume")]
    UnknownDefault(String),
    /// A root is missing, not a directory, or not writable.
    #[error("volume '{name}': root {root} {problem}")]
    Root {
        /// The volume.
        name: String,
        /// Its root.
        root: String,
        /// What is wrong.
        problem: String,
    },
}

/// Why a path from a request cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path breaks a rule (`..`, absolute, NUL, empty component, too long).
    #[error("{0}")]
    Invalid(String),
    /// A component is a symlink (never followed).
    #[error("the path passes through a symlink ('{0}'), which the file API never follows")]
    Symlink(String),
}

/// Longest path accepted from a request, in bytes.
pub const MAX_PATH_BYTES: usize = 4096;

/// The configured volumes.
#[derive(Debug, Clone)]
pub struct Volumes {
    roots: BTreeMap<VolumeName, PathBuf>,
    reserves: BTreeMap<VolumeName, u64>,
    default: VolumeName,
    implicit: bool,
}

impl Volumes {
    /// The volumes `settings` names, without touching the file system (relative roots
    /// are taken against the working directory).
    pub fn from_settings(settings: &Settings) -> Result<Self, VolumeError> {
        let mut roots = BTreeMap::new();
        let mut reserves = BTreeMap::new();
        let implicit = settings.volumes.is_empty();
        if implicit {
            roots.insert(
                VolumeName::from_stored(DEFAULT_VOLUME),
                PathBuf::from(DEFAULT_VOLUME_ROOT),
            );
        }
        for (name, v) in &settings.volumes {
            let parsed = VolumeName::parse("volume", name).map_err(|e| VolumeError::Name {
                name: name.clone(),
                message: e.message,
            })?;
            reserves.insert(parsed.clone(), v.reserve_bytes);
            roots.insert(parsed, v.root.clone());
        }
        let default = match &settings.default_volume {
            Some(d) => roots
                .keys()
                .find(|k| k.as_str() == d)
                .cloned()
                .ok_or_else(|| VolumeError::UnknownDefault(d.clone()))?,
            None => roots
                .keys()
                .find(|k| k.as_str() == DEFAULT_VOLUME)
                .or_else(|| roots.keys().next())
                .cloned()
                .unwrap_or_else(|| VolumeName::from_stored(DEFAULT_VOLUME)),
        };
        Ok(Self {
            roots,
            reserves,
            default,
            implicit,
        })
    }

    /// The implicit default: one volume `local` at `./volumes/local`.
    pub fn implicit_default() -> Self {
        let default = VolumeName::from_stored(DEFAULT_VOLUME);
        Self {
            roots: BTreeMap::from([(default.clone(), PathBuf::from(DEFAULT_VOLUME_ROOT))]),
            reserves: BTreeMap::new(),
            default,
            implicit: true,
        }
    }

    /// Checks every root: an existing, writable directory (a probe file is created and
    /// removed). The implicit default root is created when missing.
    pub fn check(&self) -> Result<(), VolumeError> {
        for (name, root) in &self.roots {
            let fail = |problem: String| VolumeError::Root {
                name: name.to_string(),
                root: root.display().to_string(),
                problem,
            };
            if self.implicit {
                std::fs::create_dir_all(root)
                    .map_err(|e| fail(format!("cannot be created: {e}")))?;
            }
            match std::fs::metadata(root) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Err(fail("is not a directory".into())),
                Err(e) => return Err(fail(format!("is not usable: {e}"))),
            }
            let probe = root.join(format!(".sessiond-probe-{}", Uuid::new_v4()));
            std::fs::write(&probe, b"").map_err(|e| fail(format!("is not writable: {e}")))?;
            let _ = std::fs::remove_file(&probe);
        }
        Ok(())
    }

    /// The volume used when a request names none.
    pub fn default_volume(&self) -> &VolumeName {
        &self.default
    }

    /// Every volume and its root.
    pub fn all(&self) -> impl Iterator<Item = (&VolumeName, &Path)> {
        self.roots.iter().map(|(k, v)| (k, v.as_path()))
    }

    /// A volume by name.
    pub fn get(&self, name: &str) -> Option<(&VolumeName, &Path)> {
        self.roots
            .get_key_value(name)
            .map(|(k, v)| (k, v.as_path()))
    }

    /// Bytes a clone or upload may still write on volume `host`: the file system's free
    /// space less the volume's `reserve_bytes`.
    pub fn available(&self, host: &str) -> io::Result<u64> {
        let root = self.roots.get(host).ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("no volume '{host}'"))
        })?;
        let reserve = self.reserves.get(host).copied().unwrap_or(0);
        Ok(free_bytes(root)?.saturating_sub(reserve))
    }

    /// The directory of a vfolder (`None`: its volume is not configured here).
    pub fn folder_dir(&self, host: &str, vfolder_id: Uuid) -> Option<PathBuf> {
        self.roots
            .get(host)
            .map(|root| root.join(vfolder_id.to_string()))
    }
}

/// Bytes available to unprivileged writers on the file system holding `path`.
pub fn free_bytes(path: &Path) -> io::Result<u64> {
    let s = rustix::fs::statvfs(path).map_err(io::Error::from)?;
    Ok(s.f_bavail.saturating_mul(s.f_frsize))
}

/// Checks a path from a request (relative to a folder) by its text alone: the
/// components it names, or a [`PathError`]. An empty path (or `/`-only) is the folder
/// itself when `allow_root`.
pub fn components(path: &str, allow_root: bool) -> Result<Vec<String>, PathError> {
    if path.len() > MAX_PATH_BYTES {
        return Err(PathError::Invalid(format!(
            "is longer than {MAX_PATH_BYTES} bytes"
        )));
    }
    if path.contains('\0') {
        return Err(PathError::Invalid("must not contain a NUL byte".into()));
    }
    if path.starts_with('/') {
        return Err(PathError::Invalid(
            "must be relative to the vfolder (no leading '/')".into(),
        ));
    }
    let mut out = Vec::new();
    for part in path.split('/') {
        match part {
            "" if out.is_empty() && path.is_empty() => {}
            "" => {
                return Err(PathError::Invalid(
                    "must not contain empty components ('//' or a trailing '/')".into(),
                ))
            }
            "." | ".." => {
                return Err(PathError::Invalid(
                    "must not contain '.' or '..' components".into(),
                ))
            }
            p => {
                if p.len() > 255 {
                    return Err(PathError::Invalid(
                        "has a component longer than 255 bytes".into(),
                    ));
                }
                out.push(p.to_string());
            }
        }
    }
    if out.is_empty() && !allow_root {
        return Err(PathError::Invalid("must name a file in the vfolder".into()));
    }
    Ok(out)
}

/// The path under `folder` that `path` names, refusing any symlink on the way
/// (including the last component) among the components that exist. Components that
/// do not exist yet are allowed (an upload creates them).
pub fn resolve(folder: &Path, path: &str, allow_root: bool) -> Result<PathBuf, PathError> {
    let parts = components(path, allow_root)?;
    let mut at = folder.to_path_buf();
    let mut exists = true;
    for (i, part) in parts.iter().enumerate() {
        at.push(part);
        debug_assert!(matches!(
            Path::new(part).components().next(),
            Some(Component::Normal(_))
        ));
        if !exists {
            continue;
        }
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(PathError::Symlink(parts[..=i].join("/")));
            }
            Ok(_) => {}
            // Nothing below a missing component exists either.
            Err(_) => exists = false,
        }
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("sessiond-vol-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn paths_that_could_leave_the_folder_are_refused_by_their_text() {
        for bad in [
            "../x",
            "a/../../x",
            "/etc/passwd",
            "a\0b",
            "a//b",
            "a/",
            ".",
            "./a",
            "a/./b",
            "..",
        ] {
            assert!(components(bad, false).is_err(), "{bad:?}");
        }
        assert!(components("", false).is_err());
        assert_eq!(components("", true).unwrap(), Vec::<String>::new());
        assert_eq!(components("a/b.txt", false).unwrap(), vec!["a", "b.txt"]);
        assert_eq!(components("..hidden", false).unwrap(), vec!["..hidden"]);
    }

    #[test]
    fn a_symlink_inside_the_folder_is_never_followed() {
        let folder = dir();
        let outside = dir();
        std::fs::write(outside.join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink(&outside, folder.join("out")).unwrap();
        std::os::unix::fs::symlink("sibling", folder.join("link")).unwrap();
        std::fs::write(folder.join("sibling"), b"x").unwrap();
        assert_eq!(
            resolve(&folder, "out/secret", false),
            Err(PathError::Symlink("out".into()))
        );
        assert_eq!(
            resolve(&folder, "link", false),
            Err(PathError::Symlink("link".into()))
        );
        assert_eq!(
            resolve(&folder, "new/dir/file", false).unwrap(),
            folder.join("new/dir/file")
        );
    }

    #[test]
    fn the_implicit_default_volume_is_created_and_a_missing_configured_root_is_one_clear_error() {
        let mut settings = Settings::default();
        let root = dir().join("nope");
        settings.volumes.insert(
            "fast".into(),
            crate::config::VolumeSettings {
                root: root.clone(),
                reserve_bytes: 0,
            },
        );
        let v = Volumes::from_settings(&settings).unwrap();
        assert_eq!(v.default_volume().as_str(), "fast");
        let e = v.check().unwrap_err().to_string();
        assert!(e.contains("volume 'fast'") && e.contains("nope"), "{e}");
        settings.default_volume = Some("other".into());
        assert!(matches!(
            Volumes::from_settings(&settings),
            Err(VolumeError::UnknownDefault(_))
        ));
    }
}

//! One face for every file system read here: resolve a path (symlinks
//! followed inside the file system, with a hop limit), list a directory,
//! read a small file, read an inode's size and mode.
//!
//! Path resolution is done here, once, over each reader's "look up this
//! symlink-free path without following its last component": the readers'
//! own resolution differs (ext4-view follows symlinks, lamxfs does not and
//! refuses `..`), and the content check must see the same semantics on both.

use std::collections::VecDeque;
use std::sync::Arc;

use super::probe::{self, Content};
use super::{BlockDevice, DiskError, ext4, xfs};

/// Symlinks followed while resolving one path: Linux's `MAXSYMLINKS`.
pub const MAX_SYMLINK_HOPS: usize = 40;
/// Longest symlink target read (Linux's `PATH_MAX`); a longer one is corrupt.
pub(crate) const MAX_LINK_LEN: u64 = 4096;
/// Components a path may grow to while symlinks are spliced in: bounds the
/// queue a hostile chain of links can build.
const MAX_COMPONENTS: usize = 4096;
/// Entries one directory listing may return: larger directories are refused
/// rather than held in memory.
pub const MAX_DIR_ENTRIES: usize = 100_000;
/// How deep [`FileSystem::walk`] goes: real trees are a few tens deep; a
/// directory hard-linked into itself (a cycle) is infinitely deep.
pub const MAX_WALK_DEPTH: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    File,
    Directory,
    Symlink,
    /// Devices, fifos, sockets.
    Other,
}

/// An inode's size and mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metadata {
    pub kind: FileKind,
    /// Permission bits with setuid, setgid and sticky (`0o7777`).
    pub mode: u32,
    pub size: u64,
}

/// One entry of a listing (`.` and `..` left out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The raw name: Linux names are bytes, not always UTF-8.
    pub name: Vec<u8>,
    /// From the entry's file type where the file system stores one.
    pub kind: FileKind,
}

impl DirEntry {
    pub fn name_lossy(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

/// What each reader provides, over paths that hold no symlink except
/// possibly the last component, with no `.` or `..`.
pub(crate) trait Reader {
    fn lstat(&mut self, path: &[u8]) -> Result<Metadata, DiskError>;
    /// The target of the symlink at `path`, at most `MAX_LINK_LEN` bytes.
    fn read_link(&mut self, path: &[u8]) -> Result<Vec<u8>, DiskError>;
    /// At most `max` entries, or an error.
    fn read_dir(&mut self, path: &[u8], max: usize) -> Result<Vec<DirEntry>, DiskError>;
    /// The whole content of the regular file at `path`, known to be `size`
    /// bytes (already checked against the caller's bound).
    fn read_file(&mut self, path: &[u8], size: u64) -> Result<Vec<u8>, DiskError>;
}

/// A read-only file system on one partition or volume.
pub struct FileSystem {
    kind: Content,
    reader: Box<dyn Reader>,
}

fn join(components: &[Vec<u8>]) -> Vec<u8> {
    if components.is_empty() {
        return b"/".to_vec();
    }
    let mut p = Vec::new();
    for c in components {
        p.push(b'/');
        p.extend_from_slice(c);
    }
    p
}

fn show(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

impl FileSystem {
    /// Opens the file system `content` says `device` holds.
    pub fn open(device: Arc<dyn BlockDevice>, content: &Content) -> Result<Self, DiskError> {
        // As Linux refuses to mount it: a file system larger than its volume
        // is a truncated image, and its readers would read past the end.
        let mut sb = vec![0u8; 4096.min(device.size()) as usize];
        device.read_at(0, &mut sb)?;
        match probe::fs_size(&sb) {
            Some(size) if size <= device.size() => {}
            Some(size) => {
                return Err(DiskError::corrupt(
                    "file system",
                    format!(
                        "{content} of {size} bytes on a volume of {} bytes (truncated?)",
                        device.size()
                    ),
                ));
            }
            None if content.is_linux_fs() => {
                return Err(DiskError::corrupt(
                    "file system",
                    format!("{content} superblock gives no size"),
                ));
            }
            None => {}
        }
        let reader: Box<dyn Reader> = match content {
            Content::Ext(_) => Box::new(ext4::Ext4Reader::open(device)?),
            Content::Xfs { .. } => Box::new(xfs::XfsReader::open(device)?),
            other => {
                return Err(DiskError::Unsupported(format!("{other}")));
            }
        };
        Ok(FileSystem {
            kind: content.clone(),
            reader,
        })
    }

    /// "ext4", "XFS", ...
    pub fn kind(&self) -> String {
        self.kind.to_string()
    }

    /// The path with every symlink resolved (the last one too when
    /// `follow_last`), and the metadata of what it names.
    fn resolve(
        &mut self,
        path: &[u8],
        follow_last: bool,
    ) -> Result<(Vec<Vec<u8>>, Metadata), DiskError> {
        let mut pending: VecDeque<Vec<u8>> =
            path.split(|&b| b == b'/').map(<[u8]>::to_vec).collect();
        let mut resolved: Vec<Vec<u8>> = Vec::new();
        // The metadata of `resolved`'s directories, root first, so `..` needs no lookup.
        let root = self.reader.lstat(b"/")?;
        let mut metas = vec![root];
        let mut hops = 0;
        while let Some(c) = pending.pop_front() {
            if c.is_empty() || c == b"." {
                continue;
            }
            if c == b".." {
                // Above the root is the root, as in the kernel.
                if resolved.pop().is_some() {
                    metas.pop();
                }
                continue;
            }
            let here = metas.last().copied().unwrap_or(root);
            if here.kind != FileKind::Directory {
                return Err(DiskError::NotADirectory(show(&join(&resolved))));
            }
            resolved.push(c);
            let candidate = join(&resolved);
            let meta = match self.reader.lstat(&candidate) {
                Err(DiskError::NotFound(_)) => return Err(DiskError::NotFound(show(path))),
                other => other?,
            };
            if meta.kind == FileKind::Symlink && (follow_last || !pending.is_empty()) {
                hops += 1;
                if hops > MAX_SYMLINK_HOPS {
                    return Err(DiskError::TooManySymlinks(show(path)));
                }
                if meta.size > MAX_LINK_LEN {
                    return Err(DiskError::corrupt(
                        "symlink",
                        format!("{} is {} bytes long", show(&candidate), meta.size),
                    ));
                }
                let target = self.reader.read_link(&candidate)?;
                resolved.pop();
                if target.is_empty() {
                    return Err(DiskError::NotFound(show(path)));
                }
                if target[0] == b'/' {
                    // Absolute targets stay inside this file system: it is the root.
                    resolved.clear();
                    metas.truncate(1);
                }
                for part in target.split(|&b| b == b'/').rev() {
                    pending.push_front(part.to_vec());
                }
                if pending.len() > MAX_COMPONENTS {
                    return Err(DiskError::corrupt(
                        "symlink",
                        format!("{}: resolves to a path too long", show(path)),
                    ));
                }
                continue;
            }
            metas.push(meta);
        }
        let meta = metas.last().copied().unwrap_or(root);
        Ok((resolved, meta))
    }

    /// Metadata of what `path` names, symlinks followed.
    pub fn metadata(&mut self, path: impl AsRef<[u8]>) -> Result<Metadata, DiskError> {
        Ok(self.resolve(path.as_ref(), true)?.1)
    }

    /// Metadata of `path` itself: a symlink at the end is not followed.
    pub fn symlink_metadata(&mut self, path: impl AsRef<[u8]>) -> Result<Metadata, DiskError> {
        Ok(self.resolve(path.as_ref(), false)?.1)
    }

    /// `path` with every symlink resolved.
    pub fn canonicalize(&mut self, path: impl AsRef<[u8]>) -> Result<String, DiskError> {
        Ok(show(&join(&self.resolve(path.as_ref(), true)?.0)))
    }

    /// The target of the symlink at `path`, as stored.
    pub fn read_link(&mut self, path: impl AsRef<[u8]>) -> Result<Vec<u8>, DiskError> {
        let path = path.as_ref();
        let (resolved, meta) = self.resolve(path, false)?;
        if meta.kind != FileKind::Symlink {
            return Err(DiskError::Corrupt {
                what: "symlink",
                why: format!("{}: not a symlink", show(path)),
            });
        }
        if meta.size > MAX_LINK_LEN {
            return Err(DiskError::corrupt(
                "symlink",
                format!("{} is {} bytes long", show(path), meta.size),
            ));
        }
        self.reader.read_link(&join(&resolved))
    }

    /// The entries of the directory `path` names (`.` and `..` left out).
    pub fn read_dir(&mut self, path: impl AsRef<[u8]>) -> Result<Vec<DirEntry>, DiskError> {
        let path = path.as_ref();
        let (resolved, meta) = self.resolve(path, true)?;
        if meta.kind != FileKind::Directory {
            return Err(DiskError::NotADirectory(show(path)));
        }
        let mut entries = self.reader.read_dir(&join(&resolved), MAX_DIR_ENTRIES)?;
        entries.retain(|e| e.name != b"." && e.name != b"..");
        Ok(entries)
    }

    /// The content of the regular file `path` names, if it is at most
    /// `max_bytes` long; a larger one is refused before anything is read.
    pub fn read_file(
        &mut self,
        path: impl AsRef<[u8]>,
        max_bytes: u64,
    ) -> Result<Vec<u8>, DiskError> {
        let path = path.as_ref();
        let (resolved, meta) = self.resolve(path, true)?;
        if meta.kind != FileKind::File {
            return Err(DiskError::NotAFile(show(path)));
        }
        if meta.size > max_bytes {
            return Err(DiskError::TooLarge {
                path: show(path),
                size: meta.size,
                max: max_bytes,
            });
        }
        self.reader.read_file(&join(&resolved), meta.size)
    }

    /// Visits every entry below the directory `path`, depth first, without
    /// following symlinks, with its path as bytes (names need not be UTF-8):
    /// at most `max_entries` entries and [`MAX_WALK_DEPTH`] levels, or an
    /// error (a directory cycle is one). The visitor returns whether to
    /// descend into a directory.
    pub fn walk(
        &mut self,
        path: impl AsRef<[u8]>,
        max_entries: usize,
        mut visit: impl FnMut(&[u8], &DirEntry) -> bool,
    ) -> Result<usize, DiskError> {
        let path = path.as_ref();
        let start = join(&self.resolve(path, true)?.0);
        let mut stack = vec![(start, 0usize)];
        let mut seen = 0usize;
        while let Some((dir, depth)) = stack.pop() {
            if depth >= MAX_WALK_DEPTH {
                return Err(DiskError::corrupt(
                    "directory tree",
                    format!(
                        "{}: deeper than {MAX_WALK_DEPTH} levels (a directory cycle?)",
                        show(&dir)
                    ),
                ));
            }
            for entry in self.read_dir(&dir)? {
                seen += 1;
                if seen > max_entries {
                    return Err(DiskError::OverBudget(format!(
                        "{}: more than {max_entries} entries below it",
                        show(path)
                    )));
                }
                let mut child = dir.clone();
                if child != b"/" {
                    child.push(b'/');
                }
                child.extend_from_slice(&entry.name);
                if visit(&child, &entry) && entry.kind == FileKind::Directory {
                    stack.push((child, depth + 1));
                }
            }
        }
        Ok(seen)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// A file system as a map from symlink-free paths to what they are.
    struct Map(HashMap<Vec<u8>, (FileKind, Vec<u8>)>, usize);

    impl Map {
        fn fs(entries: &[(&str, FileKind, &str)]) -> FileSystem {
            let mut m = HashMap::new();
            m.insert(b"/".to_vec(), (FileKind::Directory, Vec::new()));
            for (p, k, data) in entries {
                m.insert(p.as_bytes().to_vec(), (*k, data.as_bytes().to_vec()));
            }
            FileSystem {
                kind: Content::Ext("ext4"),
                reader: Box::new(Map(m, 0)),
            }
        }
    }

    impl Reader for Map {
        fn lstat(&mut self, path: &[u8]) -> Result<Metadata, DiskError> {
            self.1 += 1;
            let (kind, data) = self
                .0
                .get(path)
                .ok_or_else(|| DiskError::NotFound(show(path)))?;
            Ok(Metadata {
                kind: *kind,
                mode: 0o644,
                size: data.len() as u64,
            })
        }
        fn read_link(&mut self, path: &[u8]) -> Result<Vec<u8>, DiskError> {
            Ok(self.0[path].1.clone())
        }
        fn read_dir(&mut self, _: &[u8], _: usize) -> Result<Vec<DirEntry>, DiskError> {
            Ok(Vec::new())
        }
        fn read_file(&mut self, path: &[u8], _: u64) -> Result<Vec<u8>, DiskError> {
            Ok(self.0[path].1.clone())
        }
    }

    use FileKind::{Directory as D, File as F, Symlink as L};

    #[test]
    fn resolves_dot_dot_to_the_parent_and_above_the_root_to_the_root() {
        let mut fs = Map::fs(&[("/etc", D, ""), ("/etc/passwd", F, "root")]);
        assert_eq!(fs.read_file("/../../etc/./passwd", 100).unwrap(), b"root");
        assert_eq!(
            fs.canonicalize("/etc/../etc//passwd").unwrap(),
            "/etc/passwd"
        );
        // Relative paths start at the root; each name is looked up before a
        // `..` leaves it, as in Linux: `missing/..` is not found.
        assert_eq!(fs.canonicalize("etc/../etc").unwrap(), "/etc");
        assert!(matches!(
            fs.metadata("/missing/../etc"),
            Err(DiskError::NotFound(_))
        ));
    }

    #[test]
    fn absolute_symlinks_stay_in_this_file_system_and_relative_ones_resolve_from_their_directory() {
        let mut fs = Map::fs(&[
            ("/usr", D, ""),
            ("/usr/lib", D, ""),
            ("/usr/lib/os-release", F, "ID=test"),
            ("/etc", D, ""),
            ("/etc/os-release", L, "../usr/lib/os-release"),
            ("/etc/abs", L, "/etc/os-release"),
            ("/lib", L, "usr/lib"),
        ]);
        assert_eq!(fs.read_file("/etc/abs", 100).unwrap(), b"ID=test");
        assert_eq!(
            fs.canonicalize("/lib/os-release").unwrap(),
            "/usr/lib/os-release"
        );
        assert_eq!(fs.symlink_metadata("/etc/abs").unwrap().kind, L);
        assert_eq!(fs.read_link("/etc/abs").unwrap(), b"/etc/os-release");
    }

    #[test]
    fn symlink_loops_and_chains_stop_at_the_hop_limit() {
        let mut fs = Map::fs(&[("/a", L, "/b"), ("/b", L, "/a")]);
        assert!(matches!(
            fs.metadata("/a"),
            Err(DiskError::TooManySymlinks(_))
        ));
        // 40 hops are allowed, 41 are not.
        let names: Vec<String> = (0..=41).map(|i| format!("/l{i}")).collect();
        let mut entries: Vec<(&str, FileKind, &str)> = (0..41)
            .map(|i| (names[i].as_str(), L, names[i + 1].as_str()))
            .collect();
        entries.push(("/l41", F, "end"));
        let mut fs = Map::fs(&entries);
        assert!(matches!(
            fs.metadata("/l0"),
            Err(DiskError::TooManySymlinks(_))
        ));
        assert_eq!(fs.read_file("/l1", 10).unwrap(), b"end");
    }

    #[test]
    fn a_symlink_that_grows_the_path_without_end_is_stopped() {
        // /x -> x/x/x/...: each hop adds components; the queue is bounded.
        let long = vec!["x"; 3000].join("/");
        let mut fs = Map::fs(&[("/x", L, long.as_str())]);
        assert!(fs.metadata("/x/x").is_err());
    }

    #[test]
    fn components_under_a_file_are_not_found_as_not_a_directory() {
        let mut fs = Map::fs(&[("/f", F, "x"), ("/empty", L, "")]);
        assert!(matches!(
            fs.metadata("/f/g"),
            Err(DiskError::NotADirectory(_))
        ));
        assert!(matches!(fs.metadata("/empty"), Err(DiskError::NotFound(_))));
        assert!(matches!(
            fs.read_file("/f", 0),
            Err(DiskError::TooLarge { size: 1, .. })
        ));
    }
}

//! XFS (v5, and v4), read through the `lamxfs` crate (read-only, `no_std`,
//! checks v5 CRCs, replays a dirty log in memory). This module adapts it to
//! [`BlockDevice`] and to the errors and limits of this crate.
//!
//! lamxfs resolves every path from the root and keeps no cache, so the
//! adapter keeps a small one of the metadata ranges it read: the resolver
//! in `fs.rs` looks up each prefix of a path, and without it every lookup
//! would read the same directory blocks again through the budget.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;

use lamxfs::{BlockRead, EntryKind, Error as XfsError, Inode, Path, Xfs};

use super::fs::{DirEntry, FileKind, Metadata, Reader};
use super::{BlockDevice, DiskError};

/// Reads up to this size are kept (inodes, directory and btree blocks).
const CACHED_READ_MAX: usize = 64 * 1024;
/// The cache's bound: 4 MiB.
const CACHE_BYTES: usize = 4 * 1024 * 1024;
/// Bytes served from the cache before reading stops. Reads served from it
/// do not reach the budget, so this keeps a hostile image that sends lamxfs
/// round the same blocks from looping for free (the budget's own default
/// for bytes read, 1 GiB).
const CACHE_HIT_BYTES: u64 = 1 << 30;

/// What lamxfs reads through. Its error type carries nothing, so the
/// device's error is kept aside and put back in [`convert`].
struct Source {
    device: Arc<dyn BlockDevice>,
    last_error: Rc<RefCell<Option<DiskError>>>,
    cache: HashMap<(u64, usize), Vec<u8>>,
    order: VecDeque<(u64, usize)>,
    cached_bytes: usize,
    hit_bytes: u64,
}

impl BlockRead for Source {
    type Error = ();

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), ()> {
        let key = (offset, buf.len());
        if let Some(data) = self.cache.get(&key) {
            self.hit_bytes += buf.len() as u64;
            if self.hit_bytes > CACHE_HIT_BYTES {
                *self.last_error.borrow_mut() = Some(DiskError::OverBudget(format!(
                    "{CACHE_HIT_BYTES} bytes re-read"
                )));
                return Err(());
            }
            buf.copy_from_slice(data);
            return Ok(());
        }
        if let Err(e) = self.device.read_at(offset, buf) {
            *self.last_error.borrow_mut() = Some(e);
            return Err(());
        }
        if buf.len() <= CACHED_READ_MAX {
            while self.cached_bytes + buf.len() > CACHE_BYTES {
                let Some(old) = self.order.pop_front() else {
                    break;
                };
                if let Some(v) = self.cache.remove(&old) {
                    self.cached_bytes -= v.len();
                }
            }
            self.cache.insert(key, buf.to_vec());
            self.order.push_back(key);
            self.cached_bytes += buf.len();
        }
        Ok(())
    }
}

pub(crate) struct XfsReader {
    fs: Xfs<Source>,
    last_error: Rc<RefCell<Option<DiskError>>>,
}

impl XfsReader {
    pub(crate) fn open(device: Arc<dyn BlockDevice>) -> Result<Self, DiskError> {
        let last_error = Rc::new(RefCell::new(None));
        let size = device.size();
        let source = Source {
            device,
            last_error: Rc::clone(&last_error),
            cache: HashMap::new(),
            order: VecDeque::new(),
            cached_bytes: 0,
            hit_bytes: 0,
        };
        match Xfs::open(source, size) {
            Ok(fs) => Ok(XfsReader { fs, last_error }),
            Err(e) => Err(convert(e, b"/", &last_error)),
        }
    }

    fn err(&self, e: XfsError, path: &[u8]) -> DiskError {
        convert(e, path, &self.last_error)
    }

    fn inode(&mut self, path: &[u8]) -> Result<Inode, DiskError> {
        self.fs
            .resolve(Path::new(path))
            .map_err(|e| self.err(e, path))
    }
}

fn convert(e: XfsError, path: &[u8], last_error: &RefCell<Option<DiskError>>) -> DiskError {
    let path = String::from_utf8_lossy(path).into_owned();
    match e {
        XfsError::Io { token, offset } => last_error
            .borrow_mut()
            .take()
            .unwrap_or_else(|| DiskError::Io(format!("XFS {token} at {offset}"))),
        XfsError::NotFound { .. } => DiskError::NotFound(path),
        XfsError::NotARegularFile => DiskError::NotAFile(path),
        XfsError::FileTooLarge { size, max } => DiskError::TooLarge { path, size, max },
        XfsError::OutOfMemory { site } => DiskError::OverBudget(format!("XFS {site}")),
        XfsError::UnsupportedFeature(f) => {
            DiskError::Unsupported(format!("XFS feature not supported: {f}"))
        }
        XfsError::BadSuperblock(lamxfs::SuperblockReason::DirtyLog) => {
            DiskError::Unsupported("XFS log needs a recovery that could not be replayed".into())
        }
        other => DiskError::corrupt("XFS", other.token()),
    }
}

fn kind(k: EntryKind) -> FileKind {
    match k {
        EntryKind::Regular => FileKind::File,
        EntryKind::Directory => FileKind::Directory,
        EntryKind::Symlink => FileKind::Symlink,
        EntryKind::Other => FileKind::Other,
    }
}

impl Reader for XfsReader {
    fn lstat(&mut self, path: &[u8]) -> Result<Metadata, DiskError> {
        let inode = self.inode(path)?;
        let m = self.fs.metadata(&inode).map_err(|e| self.err(e, path))?;
        let k = if m.is_file() {
            FileKind::File
        } else if m.is_dir() {
            FileKind::Directory
        } else if m.is_symlink() {
            FileKind::Symlink
        } else {
            FileKind::Other
        };
        Ok(Metadata {
            kind: k,
            mode: m.mode() & 0o7777,
            size: m.size(),
        })
    }

    fn read_link(&mut self, path: &[u8]) -> Result<Vec<u8>, DiskError> {
        // The caller checked the link's size (lamxfs would allocate it whole).
        self.fs
            .read_link(Path::new(path))
            .map_err(|e| self.err(e, path))
    }

    fn read_dir(&mut self, path: &[u8], max: usize) -> Result<Vec<DirEntry>, DiskError> {
        let raw = self
            .fs
            .read_dir(Path::new(path))
            .map_err(|e| self.err(e, path))?;
        if raw.len() > max {
            return Err(DiskError::OverBudget(format!(
                "{}: more than {max} directory entries",
                String::from_utf8_lossy(path)
            )));
        }
        Ok(raw
            .into_iter()
            .map(|e| DirEntry {
                name: e.name,
                kind: kind(e.kind),
            })
            .collect())
    }

    fn read_file(&mut self, path: &[u8], size: u64) -> Result<Vec<u8>, DiskError> {
        let inode = self.inode(path)?;
        // `size` was checked against the caller's bound: safe to allocate.
        let mut out = vec![0u8; usize::try_from(size).unwrap_or(usize::MAX)];
        let mut filled = 0;
        while filled < out.len() {
            let n = self
                .fs
                .read_file_at(&inode, filled as u64, &mut out[filled..])
                .map_err(|e| self.err(e, path))?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        out.truncate(filled);
        Ok(out)
    }
}

//! Knows, without touching the file, whether a small file may have changed since it was last
//! read: the kernel tells (inotify, on Linux), so a worker that looks on every heartbeat makes
//! one non-blocking read of the inotify descriptor instead of opening the file, and reads the
//! file itself (off the runtime, on tokio's blocking pool) only after a change.
//!
//! One [`FileWatch`] serves every app of a worker: one inotify instance, one watch per folder,
//! a count of the changes seen per file. Any change in a file's folder counts for the file (a
//! symbolic link swapped in the folder, as deploy tools do, changes it too), and so does any
//! change in the folder of the file a link points to. Where the kernel cannot watch (another
//! system, no such folder, no inotify instance left), every look says the file may have
//! changed, so it is read every time, still off the runtime. It decides nothing about what
//! the file says.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The watcher the apps of one worker share; clones share it.
#[derive(Clone, Default)]
pub struct FileWatch {
    inner: Arc<Mutex<Inner>>,
}

/// One file watched for one reader: which change it has seen.
#[derive(Debug)]
pub struct Watched {
    path: PathBuf,
    /// `None`: the kernel does not watch it, so every look says it may have changed.
    file: Option<usize>,
    /// The count of changes seen when this reader last read the file; `None`: never read.
    seen: Option<u64>,
}

impl Watched {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the kernel tells this file's changes (else it is read on every look).
    pub fn is_watched(&self) -> bool {
        self.file.is_some()
    }
}

#[derive(Default)]
struct Inner {
    /// `None` until the first watch; `Some(None)` where the kernel cannot watch.
    kernel: Option<Option<kernel::Kernel>>,
    /// The files watched, by the index in [`Watched::file`]: their folders, changes seen.
    files: Vec<(Vec<PathBuf>, u64)>,
    by_path: HashMap<PathBuf, usize>,
}

impl FileWatch {
    pub fn new() -> Self {
        FileWatch::default()
    }

    /// Starts watching `path`, on tokio's blocking pool (the kernel looks the folders up). It
    /// need not exist: its folder is watched, so its creation, replacement (a rename over
    /// it), change and removal are all seen.
    pub async fn watch(&self, path: &Path) -> Watched {
        let inner = self.inner.clone();
        let owned = path.to_path_buf();
        let file =
            tokio::task::spawn_blocking(move || inner.lock().expect("not poisoned").add(&owned))
                .await
                .unwrap_or(None);
        Watched {
            path: path.to_path_buf(),
            file,
            seen: None,
        }
    }

    /// Whether `watched` may have changed since it was last [`FileWatch::read`]: on Linux, one
    /// non-blocking read of the inotify descriptor, no file touched.
    pub fn may_have_changed(&self, watched: &Watched) -> bool {
        let (Some(file), Some(seen)) = (watched.file, watched.seen) else {
            return true;
        };
        let mut inner = self.inner.lock().expect("not poisoned");
        inner.drain();
        inner.files[file].1 != seen
    }

    /// Reads the file with `read` on tokio's blocking pool, and notes the change it has seen.
    /// The count is taken before the read, so a change during the read is seen next time.
    pub async fn read<T: Send + 'static>(&self, watched: &mut Watched, read: fn(&Path) -> T) -> T {
        let changes = watched.file.map(|file| {
            let mut inner = self.inner.lock().expect("not poisoned");
            inner.drain();
            inner.files[file].1
        });
        let path = watched.path.clone();
        let text = match tokio::task::spawn_blocking(move || read(&path)).await {
            Ok(text) => text,
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        };
        watched.seen = changes.or(Some(0));
        text
    }
}

impl Inner {
    /// The index of `path` among the files the kernel watches, or `None`.
    fn add(&mut self, path: &Path) -> Option<usize> {
        if let Some(&file) = self.by_path.get(path) {
            return Some(file);
        }
        let kernel = self
            .kernel
            .get_or_insert_with(|| match kernel::Kernel::new() {
                Ok(kernel) => Some(kernel),
                Err(error) => {
                    tracing::debug!(%error, "The kernel cannot watch files: they are read on every look.");
                    None
                }
            })
            .as_mut()?;
        let mut folders = vec![folder_of(path)];
        // A link: edits of the file it points to happen in that file's folder.
        if let Ok(target) = std::fs::canonicalize(path) {
            if target != path {
                folders.push(folder_of(&target));
            }
        }
        folders.dedup();
        for folder in &folders {
            if let Err(error) = kernel.watch_folder(folder) {
                tracing::debug!(folder = %folder.display(), %error, "The kernel cannot watch this folder: its file is read on every look.");
                return None;
            }
        }
        self.files.push((folders, 0));
        let file = self.files.len() - 1;
        self.by_path.insert(path.to_path_buf(), file);
        Some(file)
    }

    /// Counts every change the kernel has told since the last look.
    fn drain(&mut self) {
        let Some(Some(kernel)) = &mut self.kernel else {
            return;
        };
        let files = &mut self.files;
        kernel.drain(|folder| {
            for (folders, changes) in files.iter_mut() {
                // A full queue (no folder) may hide any change: every file counts one.
                if folder.is_none_or(|folder| folders.iter().any(|watched| watched == folder)) {
                    *changes += 1;
                }
            }
        });
    }
}

fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => folder.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[cfg(target_os = "linux")]
mod kernel {
    use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
    use std::collections::HashMap;
    use std::path::{Path, PathBuf};

    pub struct Kernel {
        inotify: Inotify,
        folders: HashMap<WatchDescriptor, PathBuf>,
        buffer: Vec<u8>,
    }

    impl Kernel {
        pub fn new() -> std::io::Result<Self> {
            Ok(Kernel {
                inotify: Inotify::init()?,
                folders: HashMap::new(),
                buffer: vec![0; 4096],
            })
        }

        pub fn watch_folder(&mut self, folder: &Path) -> std::io::Result<()> {
            if self.folders.values().any(|watched| watched == folder) {
                return Ok(());
            }
            let mask = WatchMask::CLOSE_WRITE
                | WatchMask::MODIFY
                | WatchMask::CREATE
                | WatchMask::DELETE
                | WatchMask::MOVED_FROM
                | WatchMask::MOVED_TO
                | WatchMask::ATTRIB
                | WatchMask::DELETE_SELF
                | WatchMask::MOVE_SELF;
            let descriptor = self.inotify.watches().add(folder, mask)?;
            self.folders.insert(descriptor, folder.to_path_buf());
            Ok(())
        }

        /// Calls `changed(folder)` for every event queued; `None` when the event may concern
        /// any folder (the queue overflowed).
        pub fn drain(&mut self, mut changed: impl FnMut(Option<&Path>)) {
            loop {
                let events = match self.inotify.read_events(&mut self.buffer) {
                    Ok(events) => events,
                    // Nothing queued (WouldBlock), or the descriptor failed: nothing to count.
                    Err(_) => return,
                };
                let mut any = false;
                for event in events {
                    any = true;
                    if event.mask.contains(EventMask::Q_OVERFLOW) {
                        changed(None);
                    } else if let Some(folder) = self.folders.get(&event.wd) {
                        changed(Some(folder));
                    }
                }
                if !any {
                    return;
                }
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod kernel {
    use std::path::Path;

    /// No kernel notification here: every look reads the file.
    pub struct Kernel;

    impl Kernel {
        pub fn new() -> std::io::Result<Self> {
            Err(std::io::Error::other("no inotify on this system"))
        }

        pub fn watch_folder(&mut self, _folder: &Path) -> std::io::Result<()> {
            Err(std::io::Error::other("no inotify on this system"))
        }

        pub fn drain(&mut self, _changed: impl FnMut(Option<&Path>)) {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(path: &Path) -> Option<String> {
        std::fs::read_to_string(path).ok()
    }

    #[tokio::test]
    async fn a_change_is_seen_once_and_an_unchanged_file_is_not_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("downtime.txt");
        let watch = FileWatch::new();
        let mut watched = watch.watch(&path).await;
        assert!(watch.may_have_changed(&watched), "never read");
        assert_eq!(watch.read(&mut watched, text).await, None);
        if !watched.is_watched() {
            return; // no inotify here: every look reads, which the worker's tests cover
        }
        assert!(!watch.may_have_changed(&watched), "nothing happened");
        // Written whole by a rename, as a person's editor or a deploy would.
        let draft = dir.path().join("downtime.txt.new");
        std::fs::write(&draft, "one\n").unwrap();
        std::fs::rename(&draft, &path).unwrap();
        assert!(watch.may_have_changed(&watched));
        assert_eq!(
            watch.read(&mut watched, text).await.as_deref(),
            Some("one\n")
        );
        assert!(!watch.may_have_changed(&watched));
        std::fs::write(&path, "two\n").unwrap();
        assert!(watch.may_have_changed(&watched), "written in place");
        assert_eq!(
            watch.read(&mut watched, text).await.as_deref(),
            Some("two\n")
        );
        std::fs::remove_file(&path).unwrap();
        assert!(watch.may_have_changed(&watched), "removed");
        assert_eq!(watch.read(&mut watched, text).await, None);
    }

    #[tokio::test]
    async fn readers_of_one_file_each_see_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("downtime.txt");
        let watch = FileWatch::new();
        let mut first = watch.watch(&path).await;
        let mut second = watch.clone().watch(&path).await;
        watch.read(&mut first, text).await;
        watch.read(&mut second, text).await;
        std::fs::write(&path, "one\n").unwrap();
        // The first look drains the kernel's queue; the second reader still sees the change.
        assert!(watch.may_have_changed(&first));
        assert!(watch.may_have_changed(&second));
        watch.read(&mut first, text).await;
        assert!(!watch.may_have_changed(&first) || !first.is_watched());
        assert!(watch.may_have_changed(&second));
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_link_is_followed_to_where_its_file_is_edited() {
        let settings = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let target = elsewhere.path().join("windows.txt");
        std::fs::write(&target, "one\n").unwrap();
        let path = settings.path().join("downtime.txt");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let watch = FileWatch::new();
        let mut watched = watch.watch(&path).await;
        assert_eq!(
            watch.read(&mut watched, text).await.as_deref(),
            Some("one\n")
        );
        if !watched.is_watched() {
            return;
        }
        assert!(!watch.may_have_changed(&watched));
        std::fs::write(&target, "two\n").unwrap(); // edited where it lives, not through the link
        assert!(watch.may_have_changed(&watched));
        assert_eq!(
            watch.read(&mut watched, text).await.as_deref(),
            Some("two\n")
        );
    }

    #[tokio::test]
    async fn a_file_in_a_folder_that_does_not_exist_is_read_on_every_look() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("downtime.txt");
        let watch = FileWatch::new();
        let mut watched = watch.watch(&path).await;
        assert!(!watched.is_watched());
        assert_eq!(watch.read(&mut watched, text).await, None);
        assert!(watch.may_have_changed(&watched));
    }
}

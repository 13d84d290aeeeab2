//! The data directory: private to the user Castellan runs as, and used by one
//! serving process at a time.
//!
//! Files are created owner-only (umask 077: the event log and the read store hold
//! password hashes and TOTP secrets), and the database files already there are
//! tightened to 0600. A node on the embedded log holds an exclusive lock on
//! `castellan.lock` while it runs: a second `serve` (or a `projections rebuild`)
//! on the same directory is refused in one line instead of writing beside it.

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;

use anyhow::Context;

/// Makes files created from now on owner-only, creates `dir` (0700) and tightens
/// the permissions of the databases in it.
pub fn prepare(dir: &Path) -> anyhow::Result<()> {
    // SAFETY: umask only swaps the process's file mode mask.
    unsafe {
        libc::umask(0o077);
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("data_dir {}: cannot create it", dir.display()))?;
    for name in ["events.db", "read.db"] {
        for suffix in ["", "-wal", "-shm"] {
            let path = dir.join(format!("{name}{suffix}"));
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if meta.permissions().mode() & 0o077 != 0 {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                    .with_context(|| {
                        format!("data_dir {}: cannot make it private", path.display())
                    })?;
            }
        }
    }
    Ok(())
}

/// The exclusive lock of a data directory, held while the value lives.
pub struct DataDirLock {
    _file: File,
}

pub fn lock(dir: &Path) -> anyhow::Result<DataDirLock> {
    let path = dir.join("castellan.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("data_dir {}: cannot open {}", dir.display(), path.display()))?;
    // SAFETY: flock on a descriptor this function owns.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    if !locked {
        anyhow::bail!(
            "data_dir {}: another castellan process is using it (it holds {}); stop it first or choose another data_dir",
            dir.display(),
            path.display()
        );
    }
    Ok(DataDirLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock(dir.path()).unwrap();
        let err = lock(dir.path()).err().expect("refused").to_string();
        assert!(err.contains("another castellan process"), "{err}");
        assert!(err.contains(&dir.path().display().to_string()), "{err}");
        drop(first);
        lock(dir.path()).expect("free again");
    }

    #[test]
    fn databases_are_made_private() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("read.db");
        std::fs::write(&db, b"").unwrap();
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        prepare(&dir.path().join("sub")).unwrap();
        prepare(dir.path()).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&db), 0o600);
        assert_eq!(mode(&dir.path().join("sub")), 0o700);
    }
}

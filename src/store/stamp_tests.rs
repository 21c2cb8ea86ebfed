//! Tests of stamps: hashes of whole files, stamps of files just written,
//! comparisons, and the stats a build takes from before it (vouched).

use super::*;
use std::time::{Duration, SystemTime};

fn set_mtime(path: &Path, secs: u64) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
        .unwrap();
}

#[test]
fn a_file_hashes_as_its_bytes_do_whatever_its_size() {
    let dir = tempfile::tempdir().unwrap();
    for size in [0, 1, HASH_CHUNK - 1, HASH_CHUNK, 3 * HASH_CHUNK + 17] {
        let bytes: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let path = dir.path().join(format!("f{size}"));
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(
            hash_file(&path).unwrap(),
            blake3::hash(&bytes).to_hex().to_string()
        );
    }
}

#[test]
fn a_stat_that_understates_or_overstates_the_size_still_hashes_every_byte() {
    let dir = tempfile::tempdir().unwrap();
    for size in [1, HASH_CHUNK, 3 * HASH_CHUNK + 17] {
        let bytes: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let path = dir.path().join(format!("f{size}"));
        std::fs::write(&path, &bytes).unwrap();
        let whole = blake3::hash(&bytes).to_hex().to_string();
        // As if the file grew or shrank after it was statted.
        for stated in [0, size as u64 / 2, size as u64 + 5] {
            let file = std::fs::File::open(&path).unwrap();
            assert_eq!(
                hash_open(file, stated, &path).unwrap(),
                whole,
                "{size} {stated}"
            );
        }
    }
}

#[test]
fn a_written_file_is_stamped_as_a_stat_and_a_read_of_its_path_would() {
    let dir = tempfile::tempdir().unwrap();
    let root = &dir.path().join("run");
    std::fs::create_dir_all(root.join("folder")).unwrap();
    std::fs::write(dir.path().join("elsewhere.txt"), "outside\n").unwrap();
    std::fs::write(root.join("out.txt"), "written\n").unwrap();
    std::fs::write(root.join("big.txt"), vec![7u8; 2 * HASH_CHUNK + 3]).unwrap();
    std::os::unix::fs::symlink("out.txt", root.join("inside")).unwrap();
    std::os::unix::fs::symlink("gone.txt", root.join("dangling")).unwrap();
    std::os::unix::fs::symlink("../elsewhere.txt", root.join("outside")).unwrap();
    let fifo = std::ffi::CString::new(root.join("fifo").to_str().unwrap()).unwrap();
    // SAFETY: mkfifo reads a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    let stamper = Stamper::default();
    for rel in [
        "out.txt",
        "big.txt",
        "inside",
        "dangling",
        "missing",
        "no/such/dir",
    ] {
        let written = stamper.stamp_written(root, rel).unwrap();
        stamper.forget(rel);
        assert_eq!(written, stamper.stamp(root, rel).unwrap(), "{rel}");
    }
    let written = stamper.stamp_written(root, "out.txt").unwrap().unwrap();
    assert_eq!(
        written.blake3,
        blake3::hash(b"written\n").to_hex().to_string()
    );
    let meta = std::fs::metadata(root.join("out.txt")).unwrap();
    assert_eq!(written.size, 8);
    assert_eq!(written.mtime_ns, meta_of(&meta).unwrap().mtime_ns);
    // What it learns stands for the file later in the build.
    assert_eq!(
        stamper.lookup("out.txt", &meta_of(&meta).unwrap()),
        Some(written)
    );
    // Refused as a stamp is, with the same words (the FIFO without
    // waiting for a writer).
    for rel in ["outside", "folder", "fifo", "out.txt/below"] {
        let written = stamper.stamp_written(root, rel).unwrap_err().to_string();
        stamper.forget(rel);
        assert_eq!(
            written,
            stamper.stamp(root, rel).unwrap_err().to_string(),
            "{rel}"
        );
    }
}

#[test]
fn an_old_record_of_an_input_does_not_hide_its_stamp_from_this_build() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("a"), "old!").unwrap();
    set_mtime(&root.join("a"), 1000);
    let old = Stamper::default().stamp(root, "a").unwrap().unwrap();
    // Its producer ran in this build and left it stamped.
    std::fs::write(root.join("a"), "new!").unwrap();
    set_mtime(&root.join("a"), 2000);
    let stamper = Stamper::default();
    let fresh = stamper.stamp(root, "a").unwrap().unwrap();
    // Same size and mtime, other bytes: only a file read would see them.
    std::fs::write(root.join("a"), "NEW!").unwrap();
    set_mtime(&root.join("a"), 2000);
    // A reader whose last run read the old bytes learns their hash...
    stamper.remember_hash("a", &old);
    // ...and still finds this build's stamp, without reading the file.
    assert_eq!(stamper.stamp(root, "a").unwrap().unwrap(), fresh);
    // An old record that matches the file is used as before.
    let other = Stamper::default();
    set_mtime(&root.join("a"), 1000);
    other.remember_hash("a", &old);
    assert_eq!(other.stamp(root, "a").unwrap().unwrap(), old);
}

#[test]
fn a_recent_stat_stands_for_an_input_and_an_older_one_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("a"), "one").unwrap();
    set_mtime(&root.join("a"), 1000);
    let stamper = Stamper::default();
    // Its producer just wrote it: stamped, hash and all.
    let written = stamper.stamp(root, "a").unwrap().unwrap();
    std::fs::write(root.join("a"), "three").unwrap();
    set_mtime(&root.join("a"), 2000);
    // Within RECENT, the stat of a moment ago stands for the file.
    assert_eq!(stamper.stamp_recent(root, "a").unwrap().unwrap(), written);
    // A file a check found missing a moment ago is looked for again.
    let recorded = Stamp {
        size: 1,
        mtime_ns: 1,
        blake3: String::new(),
    };
    assert_eq!(
        stamper
            .compare(root, "b", &recorded, CheckMode::Content)
            .unwrap(),
        Comparison::Missing
    );
    std::fs::write(root.join("b"), "bee").unwrap();
    assert_eq!(stamper.stamp_recent(root, "b").unwrap().unwrap().size, 3);
    // A file statted (by a check) but never hashed is read.
    let checking = Stamper::default();
    assert_eq!(
        checking
            .compare(root, "a", &recorded, CheckMode::Content)
            .unwrap(),
        Comparison::Changed
    );
    let read = checking.stamp_recent(root, "a").unwrap().unwrap();
    assert_eq!(read.blake3, blake3::hash(b"three").to_hex().to_string());
    // Once RECENT has passed, the file is looked at again.
    std::thread::sleep(RECENT + Duration::from_millis(20));
    let now = stamper.stamp_recent(root, "a").unwrap().unwrap();
    assert_eq!((now.size, now.blake3), (5, read.blake3));
}

#[test]
fn touch_is_not_a_change_but_a_new_byte_is() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("a"), "hello").unwrap();
    set_mtime(&root.join("a"), 1000);
    let recorded = Stamper::default().stamp(root, "a").unwrap().unwrap();
    assert_eq!(
        Stamper::default()
            .compare(root, "a", &recorded, CheckMode::Content)
            .unwrap(),
        Comparison::Same
    );

    set_mtime(&root.join("a"), 2000);
    assert!(matches!(
        Stamper::default()
            .compare(root, "a", &recorded, CheckMode::Content)
            .unwrap(),
        Comparison::Touched(_)
    ));
    assert_eq!(
        Stamper::default()
            .compare(root, "a", &recorded, CheckMode::Mtime)
            .unwrap(),
        Comparison::Changed
    );

    std::fs::write(root.join("a"), "hellO").unwrap();
    set_mtime(&root.join("a"), 3000);
    assert_eq!(
        Stamper::default()
            .compare(root, "a", &recorded, CheckMode::Content)
            .unwrap(),
        Comparison::Changed
    );
    std::fs::remove_file(root.join("a")).unwrap();
    assert_eq!(
        Stamper::default()
            .compare(root, "a", &recorded, CheckMode::Content)
            .unwrap(),
        Comparison::Missing
    );
}

#[test]
fn a_vouched_stat_stands_for_its_file_until_the_build_writes_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("a.txt"), "on disk\n").unwrap();
    let on_disk = Stamper::default().stamp(root, "a.txt").unwrap().unwrap();
    // The stat vouched for differs from the disk's: which one a
    // comparison used shows.
    let vouched = Meta {
        size: 5,
        mtime_ns: 42,
    };
    let recorded = Stamp {
        size: 5,
        mtime_ns: 42,
        blake3: "recorded".into(),
    };
    let stamper = Stamper::vouched(
        Box::new(move |rel| (rel == "a.txt").then_some(vouched)),
        Instant::now(),
    );
    let mode = CheckMode::Content;
    assert_eq!(
        stamper.compare(root, "a.txt", &recorded, mode).unwrap(),
        Comparison::Same
    );
    // A task about to run takes it, with the hash recorded for it.
    stamper.remember_hash("a.txt", &recorded);
    assert_eq!(
        stamper.stamp_recent(root, "a.txt").unwrap(),
        Some(recorded.clone())
    );
    // Paths it does not vouch for are statted.
    std::fs::write(root.join("b.txt"), "b\n").unwrap();
    assert_eq!(
        stamper.compare(root, "b.txt", &recorded, mode).unwrap(),
        Comparison::Changed
    );
    // Once the build has written the file (or forgot it), the disk.
    stamper.forget("a.txt");
    assert_eq!(
        stamper.compare(root, "a.txt", &recorded, mode).unwrap(),
        Comparison::Changed
    );
    assert_eq!(
        stamper.stamp_recent(root, "a.txt").unwrap(),
        Some(on_disk.clone())
    );
    // Vouched for longer ago than a recent stat: a task about to run
    // stats its input.
    let old = Stamper::vouched(
        Box::new(move |rel| (rel == "a.txt").then_some(vouched)),
        Instant::now() - RECENT * 2,
    );
    old.remember_hash("a.txt", &recorded);
    assert_eq!(old.stamp_recent(root, "a.txt").unwrap(), Some(on_disk));
}

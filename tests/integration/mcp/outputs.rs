//! `read_output` and links: links that stay in the run are read (relative
//! or absolute, to a file or through a folder), and a folder of the run
//! swapped for a link to outside it while requests are answered never
//! leads a read outside the run (the path checked is the path opened).
//! A file longer than one read is read whole from `offset` to
//! `next_offset`, and its end at once.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};

use super::{Client, COMMANDS};
use crate::harness::*;

#[test]
fn links_that_stay_in_the_run_are_read() {
    let p = Project::new(COMMANDS);
    let mut c = Client::start(&p, &[]);
    c.ok("run_create", json!({"plan": "a shed", "name": "r"}));
    std::fs::create_dir(p.path("r/out")).unwrap();
    p.write("r/out/real.txt", "inside\n");
    p.write("secret.txt", "outside\n");
    let link = |target: &std::path::Path, at: &str| {
        std::os::unix::fs::symlink(target, p.path(at)).unwrap();
    };
    link("out/real.txt".as_ref(), "r/relative.txt");
    link(&p.path("r/out/real.txt"), "r/absolute.txt");
    link("out".as_ref(), "r/folder");
    link(&p.path("r/out"), "r/absolute-folder");
    link("../secret.txt".as_ref(), "r/escape.txt");
    link(&p.path("secret.txt"), "r/absolute-escape.txt");
    link(p.root(), "r/up");
    for path in [
        "out/real.txt",
        "relative.txt",
        "absolute.txt",
        "folder/real.txt",
        "absolute-folder/real.txt",
    ] {
        let read = c.ok("read_output", json!({"run": "r", "path": path}));
        assert_eq!(read["text"], "inside\n", "{path}");
    }
    for path in ["escape.txt", "absolute-escape.txt", "up/secret.txt"] {
        let message = c.err("read_output", json!({"run": "r", "path": path}));
        assert!(message.contains("outside the run"), "{path}: {message}");
    }
    assert!(c.close().success());
}

/// A log past the most one read returns (1 MiB) is read whole, read after
/// read, each from the `next_offset` of the one before; its end at once,
/// from `size - max_bytes`; an offset in the middle of a character starts
/// at the next one. The end was out of reach: only the first MiB was.
#[test]
fn a_file_longer_than_one_read_is_read_on_from_next_offset() {
    let p = Project::new(COMMANDS);
    let mut c = Client::start(&p, &[]);
    c.ok("run_create", json!({"plan": "a shed", "name": "r"}));
    let mut long = String::new();
    let mut n = 0;
    while long.len() < 1_600_000 {
        long.push_str(&format!("line {n}: déjà vu\n"));
        n += 1;
    }
    long.push_str("the end: why it failed\n");
    p.write("r/long.log", &long);

    let mut read = String::new();
    let mut offset = 0;
    let mut reads = 0;
    loop {
        let part = c.ok(
            "read_output",
            json!({"run": "r", "path": "long.log", "offset": offset, "max_bytes": 1 << 20}),
        );
        assert_eq!(part["offset"], offset);
        assert_eq!(part["size"], long.len());
        read.push_str(part["text"].as_str().unwrap());
        reads += 1;
        if part["truncated"] == false {
            assert_eq!(part["next_offset"], Value::Null);
            break;
        }
        offset = part["next_offset"].as_u64().unwrap();
        assert_eq!(offset as usize, read.len());
    }
    assert_eq!(reads, 2);
    assert!(read == long, "read whole, in order");

    let end = c.ok(
        "read_output",
        json!({"run": "r", "path": "long.log", "offset": long.len() - 23, "max_bytes": 100}),
    );
    assert_eq!(end["text"], "the end: why it failed\n");
    assert_eq!(end["truncated"], false);

    // `é` is two bytes: an offset between them starts after it.
    let at = long.find('é').unwrap();
    let mid = c.ok(
        "read_output",
        json!({"run": "r", "path": "long.log", "offset": at + 1, "max_bytes": 4}),
    );
    assert_eq!(mid["offset"], at + 2);
    assert_eq!(mid["text"], "jà ");
    assert_eq!(mid["next_offset"], at + 6);

    let past = c.err(
        "read_output",
        json!({"run": "r", "path": "long.log", "offset": long.len() + 1}),
    );
    assert!(past.contains("past its end"), "{past}");
    assert!(past.contains("hint: "), "{past}");
    let huge = c.err(
        "read_output",
        json!({"run": "r", "path": "long.log", "offset": 1e300}),
    );
    assert!(huge.contains("/offset: 1e+300 is greater than"), "{huge}");
    assert!(c.close().success());
}

/// Swaps two paths, atomically, with `renameat2(RENAME_EXCHANGE)`.
fn exchange(a: &std::path::Path, b: &std::path::Path) -> bool {
    let a = CString::new(a.as_os_str().as_bytes()).unwrap();
    let b = CString::new(b.as_os_str().as_bytes()).unwrap();
    // SAFETY: two NUL-terminated paths that outlive the call.
    unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        ) == 0
    }
}

/// A local writer swaps a folder of the run for a link to a folder outside
/// it, and back, as fast as it can, while `read_output` reads a file in the
/// folder: no answer may hold the outside file. Before the file was opened
/// by `openat2` beneath the run, a swap between the check of the resolved
/// path and the open read it.
#[test]
fn a_folder_swapped_for_a_link_while_it_is_read_never_leads_outside_the_run() {
    let p = Project::new(COMMANDS);
    let mut c = Client::start(&p, &[]);
    c.ok("run_create", json!({"plan": "a shed", "name": "r"}));
    std::fs::create_dir(p.path("r/d")).unwrap();
    p.write("r/d/x.txt", "inside\n");
    std::fs::create_dir(p.path("outside")).unwrap();
    p.write("outside/x.txt", "OUTSIDE\n");
    std::os::unix::fs::symlink(p.path("outside"), p.path("r/swap")).unwrap();
    if !exchange(&p.path("r/d"), &p.path("r/swap")) {
        eprintln!("skipped: renameat2(RENAME_EXCHANGE) is not supported here");
        return;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let stop = Arc::clone(&stop);
        let (a, b) = (p.path("r/d"), p.path("r/swap"));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                exchange(&a, &b);
            }
        })
    };
    let (mut inside, mut outside, mut refused) = (0, 0, 0);
    let request = json!({"name": "read_output", "arguments": {"run": "r", "path": "d/x.txt"}});
    for batch in 0..20 {
        for i in 0..100 {
            let id = 10_000 + batch * 100 + i;
            c.send(
                &json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": request})
                    .to_string(),
            );
        }
        for _ in 0..100 {
            let answer: Value = c.recv();
            let text = answer["result"]["content"][0]["text"]
                .as_str()
                .unwrap_or("");
            if text.contains("OUTSIDE") {
                outside += 1;
            } else if answer["result"]["isError"] == false {
                inside += 1;
            } else {
                refused += 1;
            }
        }
        if outside > 0 {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    assert_eq!(
        outside, 0,
        "{outside} read(s) outside the run ({inside} inside, {refused} refused)"
    );
    assert!(inside > 0, "no read succeeded ({refused} refused)");
    assert!(c.close().success());
}

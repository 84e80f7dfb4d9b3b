//! Storage faults, each on a real file system the test mounts:
//! - a small tmpfs that fills up while the service runs;
//! - a tmpfs mounted read-only before the service starts, remounted `rw` later;
//! - an ext4 image whose file system turns read-only under the running service
//!   (the kernel's `errors=remount-ro` reaction to an ext4 error, raised through
//!   `/sys/fs/ext4/<dev>/trigger_fs_error`), repaired the way an operator does:
//!   unmount, `e2fsck`, mount again.
//!
//! In each, the hook answers 503 `store_unavailable` (the gateway retries),
//! `/readyz` fails while `/healthz` answers, and the service recovers by itself
//! when the fault clears, with every message acknowledged before it still filed.
//! Mounting needs root: each test is skipped with a message otherwise (CI runs
//! as root).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::*;
use crate::process::{free_port, submit, ServerProcess};
use crate::redelivery::numbered;

/// A tmpfs mounted on `mnt` inside a fresh temporary directory `dir` (which tests
/// also use for files outside the mount); unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
    mnt: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size`; `None`, with the reason printed for `test`, where
    /// this process may not mount (not root, no mount permission).
    fn mount(test: &str, size: &str) -> Option<Tmpfs> {
        if !is_root() {
            println!("SKIPPED {test}: mounting a tmpfs needs root");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let mnt = dir.path().join("mnt");
        std::fs::create_dir_all(&mnt).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&mnt)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            println!("SKIPPED {test}: cannot mount a tmpfs here");
            return None;
        }
        Some(Tmpfs { dir, mnt })
    }
    fn remount(&self, opt: &str) {
        let s = Command::new("mount")
            .args(["-o", &format!("remount,{opt}")])
            .arg(&self.mnt)
            .status()
            .unwrap();
        assert!(s.success(), "remount {opt}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn post(port: u16, raw: &[u8]) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into();
    let mut r = agent
        .post(&format!("http://127.0.0.1:{port}/v1/messages"))
        .header("Authorization", &format!("Bearer {GATEWAY}"))
        .header("Content-Type", "message/rfc822")
        .send(raw)
        .expect("server answers");
    let s = r.status().as_u16();
    let t = r.body_mut().read_to_string().unwrap_or_default();
    (s, serde_json::from_str(&t).unwrap_or(Value::String(t)))
}

fn fill(dir: &Path) -> std::path::PathBuf {
    use std::io::Write;
    let p = dir.join("filler");
    let mut f = std::fs::File::create(&p).unwrap();
    let block = vec![0xa5u8; 64 * 1024];
    while f.write_all(&block).is_ok() {}
    let _ = f.sync_all();
    p
}

/// Posts fresh messages until one is accepted again (the gateway's retry loop).
fn until_accepted(port: u16, from: usize, what: &str) -> usize {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut i = from;
    loop {
        let (s, b) = post(port, &numbered(i, "storage"));
        if s == 200 {
            return i;
        }
        assert_eq!(s, 503, "{what}: {b}");
        assert!(
            Instant::now() < deadline,
            "{what}: the service did not recover: {b}"
        );
        i += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn full_disk_answers_503_and_recovers() {
    let Some(fs) = Tmpfs::mount("full_disk", "48m") else {
        return;
    };
    let (dir, mnt) = (&fs.dir, &fs.mnt);
    let smtp = SmtpServer::start();
    let data = mnt.join("data");
    let port = free_port();
    let server = ServerProcess::start(&data, port, smtp.port, &[]);
    let (s, b) = post(port, &numbered(0, "storage"));
    assert_eq!(s, 200, "{b}");

    // Disk full.
    let filler = fill(mnt);
    let mut i = 1;
    let mut refused = None;
    for _ in 0..200 {
        let (s, b) = post(port, &numbered(i, "storage"));
        i += 1;
        if s != 200 {
            refused = Some((s, b));
            break;
        }
    }
    let (s, b) = refused.expect("a full disk refuses writes");
    assert_eq!(s, 503, "{b}");
    assert_eq!(b["error"]["code"], "store_unavailable");
    assert_eq!(server.get("/readyz").0, 503);
    // intake submit tells the MTA to retry.
    let tf = dir.path().join("token");
    std::fs::write(&tf, GATEWAY).unwrap();
    let (code, err, _) = submit(
        &[
            "--url",
            &server.url("/v1/messages"),
            "--token-file",
            tf.to_str().unwrap(),
        ],
        &numbered(90_000, "storage"),
    );
    assert_eq!(code, 75, "{err}");
    std::fs::remove_file(&filler).unwrap();
    until_accepted(port, i, "after the disk was freed");
    assert_eq!(server.get("/readyz").0, 200);

    server.stop();
}

/// The service refuses mail the way a gateway retries on, and says it is not ready.
fn assert_refusing(server: &ServerProcess, i: usize, dir: &Path, what: &str) {
    let (s, b) = post(server.port, &numbered(i, "storage"));
    assert_eq!(s, 503, "{what}: {b}");
    assert_eq!(b["error"]["code"], "store_unavailable", "{what}: {b}");
    let (s, b) = server.get("/readyz");
    assert_eq!(s, 503, "{what}: /readyz {b}");
    assert_eq!(b["error"]["code"], "store_unavailable", "{what}: {b}");
    assert_eq!(server.get("/healthz").0, 200, "{what}: alive");
    let tf = dir.join("token");
    std::fs::write(&tf, GATEWAY).unwrap();
    let (code, err, _) = submit(
        &[
            "--url",
            &server.url("/v1/messages"),
            "--token-file",
            tf.to_str().unwrap(),
        ],
        &numbered(i, "storage"),
    );
    assert_eq!(
        code, 75,
        "{what}: intake submit tells the MTA to retry: {err}"
    );
}

/// Re-posts messages acknowledged earlier: each is still filed, with the same decision.
fn assert_still_filed(port: u16, acked: &[(usize, Value)], what: &str) {
    for (i, first) in acked {
        let (s, b) = post(port, &numbered(*i, "storage"));
        assert_eq!(s, 200, "{what}: message {i}: {b}");
        assert_eq!(
            b["ticket"], first["ticket"],
            "{what}: message {i} filed once"
        );
        assert_eq!(b["outcome"], first["outcome"], "{what}: message {i}");
    }
}

#[test]
fn read_only_mount_at_start_serves_degraded_and_heals_when_remounted_rw() {
    let Some(fs) = Tmpfs::mount("read_only_mount_at_start", "48m") else {
        return;
    };
    let (dir, mnt) = (&fs.dir, &fs.mnt);
    let smtp = SmtpServer::start();
    let data = mnt.join("data");
    let port = free_port();
    // A store with mail in it, then a clean stop.
    let server = ServerProcess::start(&data, port, smtp.port, &[]);
    let acked: Vec<(usize, Value)> = (0..3)
        .map(|i| {
            let (s, b) = post(port, &numbered(i, "storage"));
            assert_eq!(s, 200, "{b}");
            (i, b)
        })
        .collect();
    server.stop();

    // The file system comes back read-only (root would ignore a chmod).
    fs.remount("ro");
    assert!(
        std::fs::write(mnt.join("probe"), b"x").is_err(),
        "the mount is read-only"
    );
    let server = ServerProcess::start(&data, port, smtp.port, &[]);
    for i in 10..13 {
        assert_refusing(&server, i, dir.path(), "read-only at start");
    }

    fs.remount("rw");
    // Nobody restarts it: the gateway's retries and the probes reopen the store.
    until_accepted(port, 20, "after the mount became writable");
    assert_eq!(server.get("/readyz").0, 200);
    assert_still_filed(port, &acked, "after the mount became writable");
    server.stop();
}

/// An ext4 file system in an image file on a loop device.
struct Ext4 {
    img: std::path::PathBuf,
    mnt: std::path::PathBuf,
}

impl Ext4 {
    fn create(dir: &Path) -> Option<Ext4> {
        let img = dir.join("ext4.img");
        let mnt = dir.join("ext4");
        std::fs::create_dir_all(&mnt).unwrap();
        std::fs::File::create(&img)
            .unwrap()
            .set_len(96 << 20)
            .unwrap();
        let made = Command::new("mkfs.ext4")
            .args(["-q", "-F"])
            .arg(&img)
            .status()
            .is_ok_and(|s| s.success());
        let fs = Ext4 { img, mnt };
        (made && fs.mount()).then_some(fs)
    }

    fn mount(&self) -> bool {
        Command::new("mount")
            .args(["-o", "loop,errors=remount-ro"])
            .arg(&self.img)
            .arg(&self.mnt)
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Raises an ext4 error: with `errors=remount-ro` the kernel aborts the
    /// journal and makes the file system read-only, also for files already open.
    fn fail(&self) {
        let out = Command::new("findmnt")
            .args(["-n", "-o", "SOURCE"])
            .arg(&self.mnt)
            .output()
            .unwrap();
        let source = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let dev = source.rsplit('/').next().unwrap_or_default().to_owned();
        std::fs::write(
            format!("/sys/fs/ext4/{dev}/trigger_fs_error"),
            "intake storage test",
        )
        .unwrap_or_else(|e| panic!("trigger an ext4 error on {source}: {e}"));
    }

    /// What an operator does: unmount (once the service let go of its files),
    /// check and repair, mount again.
    fn repair(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !Command::new("umount")
            .arg(&self.mnt)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            assert!(
                Instant::now() < deadline,
                "the service still holds files on the failed file system"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let fsck = Command::new("e2fsck")
            .args(["-f", "-y"])
            .arg(&self.img)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        // 0 clean, 1 errors corrected (the test error itself is recorded as one).
        assert!(
            matches!(fsck.code(), Some(0 | 1)),
            "e2fsck repaired the file system: {fsck}"
        );
        assert!(self.mount(), "mount the repaired file system");
    }
}

impl Drop for Ext4 {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
    }
}

#[test]
fn file_system_turning_read_only_while_running_answers_503_and_recovers_after_repair() {
    if !is_root() {
        println!("SKIPPED file_system_turning_read_only: mounting an ext4 image needs root");
        return;
    }
    let smtp = SmtpServer::start();
    let dir = tempfile::tempdir().unwrap();
    let Some(fs) = Ext4::create(dir.path()) else {
        println!("SKIPPED file_system_turning_read_only: cannot make and loop-mount an ext4 image here (mkfs.ext4, loop devices)");
        return;
    };
    let data = fs.mnt.join("data");
    let port = free_port();
    let server = ServerProcess::start(&data, port, smtp.port, &[]);
    let acked: Vec<(usize, Value)> = (0..5)
        .map(|i| {
            let (s, b) = post(port, &numbered(i, "storage"));
            assert_eq!(s, 200, "{b}");
            (i, b)
        })
        .collect();
    assert_eq!(server.get("/readyz").0, 200);

    fs.fail();
    assert!(
        std::fs::write(fs.mnt.join("probe"), b"x").is_err(),
        "the file system went read-only"
    );
    for i in 10..13 {
        assert_refusing(&server, i, dir.path(), "file system turned read-only");
    }

    fs.repair();
    until_accepted(port, 20, "after the file system was repaired");
    assert_eq!(server.get("/readyz").0, 200);
    assert_still_filed(port, &acked, "after the repair");
    server.stop();
}

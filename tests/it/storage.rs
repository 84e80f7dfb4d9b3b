//! Storage faults: the data directory on a small tmpfs that fills up, then goes
//! read-only. The hook answers 503 `store_unavailable` (the gateway retries),
//! `/readyz` reports it, and the service recovers by itself when the fault clears.
//! Mounting needs root: the test is skipped with a message otherwise (CI runs as root).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::*;
use crate::process::{free_port, submit, ServerProcess};
use crate::redelivery::numbered;

struct Tmpfs<'a>(&'a Path);

impl<'a> Tmpfs<'a> {
    fn mount(at: &'a Path, size: &str) -> Option<Tmpfs<'a>> {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs(at))
    }
    fn try_remount(&self, opt: &str) -> bool {
        Command::new("mount")
            .args(["-o", &format!("remount,{opt}")])
            .arg(self.0)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
    fn remount(&self, opt: &str) {
        let s = Command::new("mount")
            .args(["-o", &format!("remount,{opt}")])
            .arg(self.0)
            .status()
            .unwrap();
        assert!(s.success(), "remount {opt}");
    }
}

impl Drop for Tmpfs<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0).status();
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
fn full_or_read_only_disk_answers_503_and_recovers() {
    if !is_root() {
        println!("skipped: mounting a tmpfs needs root");
        return;
    }
    let smtp = SmtpServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let Some(fs) = Tmpfs::mount(&mnt, "48m") else {
        println!("skipped: cannot mount a tmpfs here");
        return;
    };
    let data = mnt.join("data");
    let port = free_port();
    let server = ServerProcess::start(&data, port, smtp.port, &[]);
    let (s, b) = post(port, &numbered(0, "storage"));
    assert_eq!(s, 200, "{b}");

    // Disk full.
    let filler = fill(&mnt);
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
    i = until_accepted(port, i, "after the disk was freed") + 1;
    assert_eq!(server.get("/readyz").0, 200);

    // Read-only file system: Linux refuses to remount a file system read-only
    // while files on it are open for writing (sled's are), so this part runs only
    // where the remount succeeds; the code path is the same I/O-error path as above.
    if fs.try_remount("ro") {
        let (s, b) = post(port, &numbered(i, "storage"));
        i += 1;
        assert_eq!(s, 503, "{b}");
        assert_eq!(server.get("/readyz").0, 503);
        fs.remount("rw");
        until_accepted(port, i, "after the file system became writable");
        assert_eq!(server.get("/readyz").0, 200);
    } else {
        println!("read-only part skipped: the kernel refuses a read-only remount with files open for writing");
    }
    server.stop();
}

//! Fuzz target: arbitrary bytes through parse → dedup look-up → facts → the
//! shipped policy (`rules/`), as the hook runs them. Any panic, abort or stack
//! overflow is a finding; decisions themselves are not checked.
//!
//! cargo +nightly fuzz run pipeline            (or RUSTC_BOOTSTRAP=1 cargo fuzz run pipeline)
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use intake::config::Config;
use intake::corpus::Runner;
use intake::facts::Envelope;
use intake::pipeline::Pipeline;
use libfuzzer_sys::fuzz_target;

struct Fixture {
    pipeline: Pipeline,
    _dir: tempfile_dir::Dir,
}

mod tempfile_dir {
    /// A scratch directory removed at exit (the fuzzer runs one process).
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let runner = Runner::new(
            &root.join("rules"),
            &root.join("fixtures/contracts.toml"),
            Config::defaults(),
        )
        .expect("rules and contracts load");
        let dir = std::env::temp_dir().join(format!("intake-fuzz-{}", std::process::id()));
        let pipeline = runner.pipeline_in(&dir).expect("store opens");
        Fixture {
            pipeline,
            _dir: tempfile_dir::Dir(dir),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let now = jiff::Timestamp::from_second(1_795_000_000).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    // Nothing is committed: the store stays empty and every input is judged fresh.
    let _ = fixture()
        .pipeline
        .prepare(data.to_vec(), Envelope::default(), now);
});

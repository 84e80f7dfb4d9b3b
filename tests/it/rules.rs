//! Policy failures: a runaway script, a broken script at start, reload.

use crate::helpers::*;
use crate::hook::clean_ru;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_that_loops_forever_files_for_review() {
    let smtp = SmtpServer::start();
    let rules = RulesDir::copy().with("99-loop.rhai", "let n = 0;\nloop { n += 1; }\n");
    let app = rules.spawn(smtp.port).await;
    let (s, b) = app.post(&clean_ru("loop@telecom-sever.ru"));
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["outcome"], "create");
    assert_eq!(b["status"], "needs_review");
    let pe = b["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "policy_error")
        .expect("policy_error finding")
        .clone();
    assert!(
        pe["detail"].as_str().unwrap().contains("99-loop.rhai:2"),
        "{pe}"
    );
    assert!(
        app.pipeline.store.ticket(100001).unwrap().is_some(),
        "the message is kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_syntax_error_at_start_is_refused_with_its_position() {
    let rules = RulesDir::copy().with("15-broken.rhai", "// fine\nlet x = ;\n");
    let data = tempfile::tempdir().unwrap();
    let cfg = config(&rules.options(25), data.path());
    let err = match intake::intake::App::build(&cfg, std::sync::Arc::new(jiff::Timestamp::now)) {
        Ok(_) => panic!("a broken rule set must not start"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("15-broken.rhai:2:"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_reload_keeps_the_running_rules() {
    let smtp = SmtpServer::start();
    let rules = RulesDir::copy();
    let app = rules.spawn(smtp.port).await;
    let (_, before) = app.get("/v1/admin/rules", Some(ADMIN));
    rules.write("15-broken.rhai", "let x = ;\n");
    let (s, b) = app.post_admin("/v1/admin/reload");
    assert_eq!(s, 422, "{b}");
    assert_eq!(b["error"]["code"], "rules_invalid");
    assert!(
        b["error"]["diagnostics"][0]
            .as_str()
            .unwrap()
            .contains("15-broken.rhai:1:"),
        "{b}"
    );
    let (s, filed) = app.post(&clean_ru("after-broken@telecom-sever.ru"));
    assert_eq!(s, 200);
    assert_eq!(filed["rules_revision"], before["revision"]);
    let (_, info) = app.get("/v1/admin/rules", Some(ADMIN));
    assert!(
        info["last_reload_error"]
            .as_str()
            .unwrap()
            .contains("15-broken"),
        "{info}"
    );

    // Fix it: the next reload takes, and decisions record the new revision.
    rules.write(
        "15-broken.rhai",
        "if msg.subject.contains(\"EPG\") { flag(\"epg_topic\", \"EPG in subject\"); }\n",
    );
    let (s, ok) = app.post_admin("/v1/admin/reload");
    assert_eq!(s, 200, "{ok}");
    assert_ne!(ok["revision"], before["revision"]);
    let (_, after) = app.post(&clean_ru("after-fix@telecom-sever.ru"));
    assert_eq!(after["rules_revision"], ok["revision"]);
    assert!(
        after["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["code"] == "epg_topic"),
        "{after}"
    );
}

//! Named staff accounts through the real server: roles, per-user API tokens, the
//! `by` every event records, a refused `by` in request bodies, and a disabled
//! account stopping at once; `intake staff` on a real store directory.

use std::process::Command;

use serde_json::{json, Value};

use crate::helpers::*;
use crate::hook::request_ru;
use crate::lifecycle::post_json;

fn get(app: &TestApp, path: &str, token: &str) -> (u16, Value) {
    app.get(path, Some(token))
}

/// Adds an account through the admin API and returns a fresh API token of it.
pub fn account_with_token(app: &TestApp, email: &str, role: &str) -> String {
    let (s, b) = post_json(
        app,
        "/v1/admin/staff",
        ADMIN,
        &json!({"email": email, "role": role}),
    );
    assert!(s == 201 || s == 200, "{s} {b}");
    let (s, b) = post_json(
        app,
        &format!("/v1/admin/staff/{email}/tokens"),
        ADMIN,
        &json!({}),
    );
    assert_eq!(s, 201, "{b}");
    b["token"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_tokens_roles_and_the_recorded_by() {
    let smtp = SmtpServer::start();
    let app = TestApp::spawn(smtp.port).await;
    let (_, d) = app.post(&request_ru("st-1@telecom-sever.ru", "STB-7"));
    assert_eq!(d["ticket"], 100001, "{d}");

    // Only admins manage staff; the shared staff token is an agent.
    let (s, _) = post_json(
        &app,
        "/v1/admin/staff",
        STAFF,
        &json!({"email": "x@vendor.example", "role": "agent"}),
    );
    assert_eq!(s, 403);
    let (s, b) = post_json(
        &app,
        "/v1/admin/staff",
        ADMIN,
        &json!({"email": "nonsense", "role": "agent"}),
    );
    assert_eq!(s, 422, "{b}");
    let (s, b) = post_json(
        &app,
        "/v1/admin/staff",
        ADMIN,
        &json!({"email": "x@vendor.example", "role": "root"}),
    );
    assert_eq!(s, 422, "{b}");

    let anna = account_with_token(&app, "Anna@Vendor.Example", "agent");
    let boss = account_with_token(&app, "boss@vendor.example", "admin");
    assert!(anna.starts_with("ist_") && anna != boss);

    // An agent works tickets, and the history names her account.
    let (s, b) = post_json(
        &app,
        "/v1/tickets/100001/status",
        &anna,
        &json!({"status": "open", "note": "taking it"}),
    );
    assert_eq!(s, 200, "{b}");
    let (s, b) = post_json(
        &app,
        "/v1/tickets/100001/replies",
        &anna,
        &json!({"text": "Looking at it."}),
    );
    assert_eq!(s, 201, "{b}");
    // An admin too.
    let (s, b) = post_json(
        &app,
        "/v1/tickets/100001/status",
        &boss,
        &json!({"status": "escalated", "note": "to development"}),
    );
    assert_eq!(s, 200, "{b}");
    let (_, t) = get(&app, "/v1/tickets/100001", &anna);
    let events = t["events"].as_array().unwrap();
    let by_kind = |kind: &str| -> Vec<String> {
        events
            .iter()
            .filter(|e| e["kind"] == kind)
            .map(|e| e["by"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    assert_eq!(
        by_kind("status"),
        ["staff:anna@vendor.example", "staff:boss@vendor.example"],
        "{t}"
    );
    assert_eq!(by_kind("staff_reply"), ["staff:anna@vendor.example"], "{t}");

    // A `by` in the body is refused, and nothing changes.
    let (s, b) = post_json(
        &app,
        "/v1/tickets/100001/status",
        &anna,
        &json!({"status": "open", "note": "n", "by": "boss@vendor.example"}),
    );
    assert_eq!(s, 422, "{b}");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("`by`"),
        "{b}"
    );
    let (s, _) = post_json(
        &app,
        "/v1/tickets/100001/replies",
        &STAFF.to_owned(),
        &json!({"text": "x", "by": "someone"}),
    );
    assert_eq!(s, 422);
    let (_, t2) = get(&app, "/v1/tickets/100001", &anna);
    assert_eq!(t2["status"], "escalated");
    assert_eq!(t2["events"].as_array().unwrap().len(), events.len());

    // Agents are refused admin routes; admins are not.
    assert_eq!(get(&app, "/v1/admin/staff", &anna).0, 403);
    assert_eq!(get(&app, "/v1/admin/staff", &boss).0, 200);
    let (s, _) = post_json(
        &app,
        "/v1/admin/staff/anna@vendor.example/tokens",
        &anna,
        &json!({}),
    );
    assert_eq!(s, 403, "an agent mints no tokens");
    let (s, _) = post_json(&app, "/v1/admin/reload", &anna, &json!({}));
    assert_eq!(s, 403);
    let (_, list) = get(&app, "/v1/admin/staff", &boss);
    let accounts = list["accounts"].as_array().unwrap();
    assert_eq!(accounts.len(), 2, "{list}");
    assert!(
        !list.to_string().contains(&anna[4..]),
        "tokens are not listed"
    );

    // Unknown and forged tokens.
    let mut forged = anna.clone();
    forged.replace_range(10..11, if &anna[10..11] == "a" { "b" } else { "a" });
    assert_eq!(get(&app, "/v1/tickets", &forged).0, 403);
    assert_eq!(app.get("/v1/tickets", None).0, 401);

    // Disabling stops the account's tokens at once; others keep working.
    assert_eq!(get(&app, "/v1/tickets", &anna).0, 200);
    let (s, b) = post_json(
        &app,
        "/v1/admin/staff/ANNA@vendor.example/disable",
        &boss,
        &json!({}),
    );
    assert_eq!(s, 200, "{b}");
    assert_eq!(get(&app, "/v1/tickets", &anna).0, 403);
    let (s, _) = post_json(
        &app,
        "/v1/tickets/100001/replies",
        &anna,
        &json!({"text": "still here?"}),
    );
    assert_eq!(s, 403);
    let (s, _) = post_json(
        &app,
        "/v1/admin/staff/anna@vendor.example/tokens",
        &boss,
        &json!({}),
    );
    assert_eq!(s, 409, "no new token for a disabled account");
    assert_eq!(get(&app, "/v1/tickets", &boss).0, 200);
    assert_eq!(get(&app, "/v1/tickets", STAFF).0, 200);
    // Enabled again, the old token stays dead (it was removed).
    let (s, _) = post_json(
        &app,
        "/v1/admin/staff",
        &boss,
        &json!({"email": "anna@vendor.example", "role": "agent"}),
    );
    assert_eq!(s, 200);
    assert_eq!(get(&app, "/v1/tickets", &anna).0, 403);
    app.stop().await;
}

fn staff_cli(data: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(crate::process::intake_bin())
        .arg("staff")
        .args(args)
        .env("INTAKE__STORE__PATH", data)
        .env("INTAKE__RULES__PATH", repo().join("rules"))
        .env(
            "INTAKE__CONTRACTS__FILE",
            repo().join("fixtures/contracts.toml"),
        )
        .output()
        .expect("intake runs")
}

#[test]
fn the_staff_command_adds_lists_issues_tokens_and_disables() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = staff_cli(&data, &["add", "Anna@Vendor.Example", "--role", "agent"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "added anna@vendor.example (agent)\n"
    );
    let out = staff_cli(&data, &["add", "x@vendor.example", "--role", "root"]);
    assert!(!out.status.success(), "an unknown role is refused");
    let out = staff_cli(&data, &["add", "not-an-address", "--role", "agent"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an e-mail address"));
    let out = staff_cli(&data, &["token", "anna@vendor.example"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with("ist_") && token.len() == 68, "{token}");
    let out = staff_cli(&data, &["token", "nobody@vendor.example"]);
    assert!(!out.status.success());
    let out = staff_cli(&data, &["list"]);
    let list = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        list.starts_with("anna@vendor.example\tagent\t") && list.trim_end().ends_with("active"),
        "{list}"
    );
    assert!(!list.contains(&token[4..]));

    // The token works on a server over that store; disabled, it stops.
    let store = intake::store::Store::open(&data, 100_001, 0).unwrap();
    let staff = intake::staff::Staff::open(&store);
    assert_eq!(
        staff.by_token(&token).unwrap().unwrap().email,
        "anna@vendor.example"
    );
    drop(staff);
    drop(store);
    let out = staff_cli(&data, &["disable", "anna@vendor.example"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list = String::from_utf8_lossy(&staff_cli(&data, &["list"]).stdout).to_string();
    assert!(list.contains("\tdisabled "), "{list}");
    let store = intake::store::Store::open(&data, 100_001, 0).unwrap();
    assert!(intake::staff::Staff::open(&store)
        .by_token(&token)
        .unwrap()
        .is_none());
}

//! `intake staff add|list|disable|token`: staff accounts in the store of the
//! configuration. With the embedded engine the store is opened directly, so the
//! service must be stopped (sled allows one process), or use the admin API
//! (`/v1/admin/staff`) of the running service instead.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use jiff::Timestamp;

use super::{Role, Staff};
use crate::config::Config;
use crate::store::Store;

/// `intake staff …`.
#[derive(Debug, Subcommand)]
pub enum StaffCommand {
    /// Add a staff account (or change its role and enable it again).
    Add {
        email: String,
        /// agent (works tickets) or admin (also contracts, staff, webhooks, rules).
        #[arg(long, value_parser = ["agent", "admin"])]
        role: String,
    },
    /// List the staff accounts.
    List,
    /// Disable an account: its sessions and API tokens stop working at once.
    Disable { email: String },
    /// Issue an API token for an account (shown once; only its hash is stored).
    Token { email: String },
}

fn open(config: &Config) -> anyhow::Result<Staff> {
    let store = Store::open(&config.store_path, config.first_number, config.cache_bytes)
        .with_context(|| {
            format!(
                "cannot open store {} (with the embedded store, stop the service first, \
                 or use the admin API /v1/admin/staff)",
                config.store_path.display()
            )
        })?;
    Ok(Staff::open(&store))
}

/// Runs one `intake staff` command.
///
/// # Errors
/// The store cannot be opened or written; no such account; not an address.
pub fn run(config: &Config, cmd: StaffCommand) -> anyhow::Result<ExitCode> {
    let staff = open(config)?;
    let now = Timestamp::now();
    let mut out = std::io::stdout().lock();
    match cmd {
        StaffCommand::Add { email, role } => {
            let role = Role::parse(&role).context("role: agent or admin")?;
            let (a, new) = staff.add(&email, role, now)?;
            writeln!(
                out,
                "{} {} ({})",
                if new { "added" } else { "updated" },
                a.email,
                a.role.as_str()
            )?;
        }
        StaffCommand::List => {
            for a in staff.list()? {
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}",
                    a.email,
                    a.role.as_str(),
                    a.created_at,
                    a.disabled_at
                        .map_or_else(|| "active".to_owned(), |t| format!("disabled {t}"))
                )?;
            }
        }
        StaffCommand::Disable { email } => {
            let n = staff.disable(&email, now)?;
            writeln!(
                out,
                "disabled {}; {n} sessions, links and tokens removed",
                email.trim().to_lowercase()
            )?;
        }
        StaffCommand::Token { email } => {
            let token = staff.issue_token(&email, now)?;
            writeln!(out, "{token}")?;
            eprintln!("This token is shown once; only its hash is stored. Use it as `Authorization: Bearer <token>`.");
        }
    }
    Ok(ExitCode::SUCCESS)
}

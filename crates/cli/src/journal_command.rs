//! `alertbook user`, `alertbook token` and `alertbook journal`: local users
//! and API tokens, and the on-call journal read from the terminal. Each opens
//! the state store `alertbook run` uses (the configuration's `state`, SQLite
//! under `--data` by default) and maps the `accounts` and `journal` crates'
//! results onto output and exit status: 0 done, 1 refused (an unknown user or
//! entry, a name taken), 2 invalid arguments.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

/// Where the state store is: the same options as `alertbook run`.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// Configuration file (YAML): its `state` section and `data` directory.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory holding state.sqlite [default: the configuration's, else ./data].
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
pub enum UserCommand {
    /// Add a local user (or, with --replace, set an existing user's role and password).
    ///
    /// The password is read from standard input (its first line) when that is not a
    /// terminal, else prompted for twice without echo; at least 12 characters. It is
    /// stored as an argon2id hash.
    Add {
        /// The user name: 1 to 64 of a-z, 0-9, '.', '_', '-'.
        #[arg(value_name = "NAME")]
        name: String,
        /// viewer reads; responder also acknowledges and closes alerts; admin also manages users.
        #[arg(long, value_name = "ROLE", value_parser = ["viewer", "responder", "admin"])]
        role: String,
        /// Set the role and password of a user that exists already.
        #[arg(long)]
        replace: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List the local users with their roles.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Create an API token for a user and print it (the only time it is shown; it is
    /// stored as a hash). Send it as `Authorization: Bearer <token>`.
    Create {
        #[arg(value_name = "NAME")]
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// The filters of `journal list` and `journal export`.
#[derive(Debug, Clone, clap::Args)]
pub struct FilterArgs {
    /// Entries closed at or after T: RFC 3339, Unix seconds, or a duration ago (7d).
    #[arg(long, value_name = "T")]
    since: Option<String>,
    /// Entries closed at or before T: RFC 3339, Unix seconds, or a duration ago.
    #[arg(long, value_name = "T")]
    until: Option<String>,
    /// Entries of one runbook entry (A6).
    #[arg(long, value_name = "ID")]
    id: Option<String>,
    /// Entries that changed a contract (yes) or did not (no).
    #[arg(long, value_name = "YES|NO", value_parser = ["yes", "no"])]
    contract_changed: Option<String>,
    /// At most N entries, newest first [default: 1000 for list, all for export].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(1..))]
    limit: Option<i64>,
}

#[derive(Debug, clap::Subcommand)]
pub enum JournalCommand {
    /// List journal entries, newest close first, as a table.
    List {
        #[command(flatten)]
        filter: FilterArgs,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Print one entry with every revision (the audit trail).
    Show {
        /// The entry's number (the first column of `journal list`).
        #[arg(value_name = "ENTRY")]
        entry: i64,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Print the journal as Markdown, CSV or JSON.
    Export {
        /// md, csv or json.
        #[arg(long, value_name = "FORMAT", value_parser = parse_format)]
        format: journal::export::Format,
        #[command(flatten)]
        filter: FilterArgs,
        #[command(flatten)]
        store: StoreArgs,
    },
}

fn parse_format(text: &str) -> Result<journal::export::Format, String> {
    text.parse()
}

/// Invalid arguments found after parsing: the message, and exit status 2.
fn usage_error(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

/// A runtime for one command.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the async runtime")
}

/// The configuration of `store` (the file's, with `--data` over it).
fn configuration(store: &StoreArgs) -> anyhow::Result<crate::config::Config> {
    let mut config = match &store.config {
        Some(path) => crate::config::load(path).map_err(|diagnostics| anyhow::anyhow!("{diagnostics}"))?,
        None => crate::config::Config::default(),
    };
    if let Some(data) = &store.data {
        config.data = data.clone();
    }
    Ok(config)
}

async fn open(config: &crate::config::Config) -> anyhow::Result<state::Store> {
    if crate::journal_run::store_is_new(config) {
        eprintln!("note: creating a new state store in {}", config.data.display());
    }
    crate::journal_run::open_store(config).await
}

/// The password of `user add`: the first line of standard input, or a prompt.
fn read_password() -> anyhow::Result<Result<String, String>> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        let first = rpassword::prompt_password("Password: ").context("cannot read the password")?;
        let again = rpassword::prompt_password("Password again: ").context("cannot read the password")?;
        if first != again {
            return Ok(Err("the two passwords differ".into()));
        }
        return Ok(Ok(first));
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line).context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        return Ok(Err("no password on standard input (its first line is the password)".into()));
    }
    Ok(Ok(password))
}

/// `alertbook user …`.
pub fn user(command: &UserCommand) -> anyhow::Result<ExitCode> {
    match command {
        UserCommand::Add { name, role, replace, store } => {
            let role: accounts::Role = match role.parse() {
                Ok(role) => role,
                Err(error) => return Ok(usage_error(error)),
            };
            if let Err(error) = accounts::validate_user_name(name) {
                return Ok(usage_error(error));
            }
            let password = match read_password()? {
                Ok(password) => password,
                Err(message) => return Ok(usage_error(message)),
            };
            if password.chars().count() < accounts::MIN_PASSWORD_CHARS {
                return Ok(usage_error(format!(
                    "the password must have at least {} characters",
                    accounts::MIN_PASSWORD_CHARS
                )));
            }
            let config = configuration(store)?;
            runtime()?.block_on(async {
                let store = open(&config).await?;
                let accounts = accounts::Accounts::new(store.clone())?;
                let outcome = accounts.add_user(name, role, &password, *replace, crate::routing::now_ms()).await;
                store.close().await;
                Ok(match outcome {
                    Ok(()) => {
                        eprintln!("user {name} saved as {role}");
                        ExitCode::SUCCESS
                    }
                    Err(accounts::AccountError::State(state::StateError::UserExists(_))) => {
                        eprintln!("error: user {name} exists already; --replace sets its role and password");
                        ExitCode::FAILURE
                    }
                    Err(accounts::AccountError::Invalid(message)) => usage_error(message),
                    Err(error) => return Err(anyhow::Error::new(error).context("cannot save the user")),
                })
            })
        }
        UserCommand::List { store } => {
            let config = configuration(store)?;
            runtime()?.block_on(async {
                let store = open(&config).await?;
                let users = store.users().await;
                store.close().await;
                let users = users.context("cannot read the users")?;
                let width = users.iter().map(|user| user.name.len()).max().unwrap_or(4).max(4);
                println!("{:width$}  {:9}  CREATED", "NAME", "ROLE");
                for user in &users {
                    println!("{:width$}  {:9}  {}", user.name, user.role, journal::format_time(user.created_at_ms));
                }
                Ok(ExitCode::SUCCESS)
            })
        }
    }
}

/// `alertbook token …`.
pub fn token(command: &TokenCommand) -> anyhow::Result<ExitCode> {
    let TokenCommand::Create { name, store } = command;
    let config = configuration(store)?;
    runtime()?.block_on(async {
        let store = open(&config).await?;
        let accounts = accounts::Accounts::new(store.clone())?;
        let outcome = accounts.create_token(name, crate::routing::now_ms()).await;
        store.close().await;
        match outcome {
            Ok(token) => {
                let mut stdout = std::io::stdout().lock();
                writeln!(stdout, "{token}").context("cannot print the token")?;
                stdout.flush().context("cannot print the token")?;
                Ok(ExitCode::SUCCESS)
            }
            Err(accounts::AccountError::State(state::StateError::NoUser(_))) => {
                eprintln!("error: no user {name:?}; `alertbook user add {name} --role …` adds one");
                Ok(ExitCode::FAILURE)
            }
            Err(error) => Err(anyhow::Error::new(error).context("cannot create the token")),
        }
    })
}

/// A time argument: RFC 3339, Unix seconds, or a duration before `now_ms`.
fn parse_time(text: &str, now_ms: i64) -> Result<i64, String> {
    if let Ok(duration) = catalog::duration::parse_duration(text) {
        return Ok(now_ms - i64::try_from(duration.as_millis()).unwrap_or(i64::MAX).min(now_ms));
    }
    crate::replay::parse_time(text).map_err(|_| format!("{text:?} is neither RFC 3339, Unix seconds nor a duration"))
}

fn entry_filter(filter: &FilterArgs, now_ms: i64) -> Result<state::EntryFilter, String> {
    let time = |name: &str, text: &Option<String>| {
        text.as_deref().map(|text| parse_time(text, now_ms).map_err(|error| format!("--{name}: {error}"))).transpose()
    };
    Ok(state::EntryFilter {
        alert_id: filter.id.clone(),
        episode_id: None,
        since_ms: time("since", &filter.since)?,
        until_ms: time("until", &filter.until)?,
        contract_changed: filter.contract_changed.as_deref().map(|value| value == "yes"),
        limit: filter.limit,
    })
}

/// Text from responders on one table line: control characters become spaces.
fn one_line(text: &str) -> String {
    text.chars().map(|character| if character.is_control() { ' ' } else { character }).collect()
}

/// The entries as a table.
pub fn render_table(entries: &[journal::Entry]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let alertname_width = entries.iter().map(|entry| entry.alertname.len()).max().unwrap_or(9).max(9);
    let by_width = entries.iter().map(|entry| entry.closed_by.len()).max().unwrap_or(2).max(2);
    let _ = writeln!(
        out,
        "{:>5}  {:5}  {:alertname_width$}  {:20}  {:by_width$}  {:>3}  {:8}  ROOT CAUSE",
        "ENTRY", "ALERT", "ALERTNAME", "CLOSED", "BY", "REV", "CONTRACT"
    );
    for entry in entries {
        let contract = if entry.contract_changed { entry.contract.clone().unwrap_or_default() } else { "-".into() };
        let _ = writeln!(
            out,
            "{:>5}  {:5}  {:alertname_width$}  {:20}  {:by_width$}  {:>3}  {:8}  {}",
            entry.id,
            one_line(&entry.alert_id),
            one_line(&entry.alertname),
            entry.closed_at,
            one_line(&entry.closed_by),
            entry.revision,
            one_line(&contract),
            one_line(&entry.root_cause)
        );
    }
    out
}

/// One entry with its revisions, as text.
pub fn render_entry(entry: &journal::Entry, revisions: &[state::Revision]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "Entry {}: {} {}", entry.id, one_line(&entry.alert_id), one_line(&entry.alertname));
    let labels: Vec<String> =
        entry.labels.iter().map(|(name, value)| format!("{name}={:?}", one_line(value))).collect();
    let _ = writeln!(out, "Labels:        {{{}}}", labels.join(", "));
    let _ = writeln!(out, "Fingerprint:   {}", entry.fingerprint);
    let _ = writeln!(out, "Fired:         {}", entry.fired_at);
    let _ = writeln!(out, "Acknowledged:  {} by {}", entry.acknowledged_at, one_line(&entry.acknowledged_by));
    if let Some(resolved) = &entry.resolved_at {
        let _ = writeln!(out, "Resolved:      {resolved}");
    }
    let _ = writeln!(out, "Closed:        {} by {}", entry.closed_at, one_line(&entry.closed_by));
    let _ = writeln!(out, "Runbook:       {}", entry.links.runbook);
    for broken in &entry.guard_rails_broken {
        let _ = writeln!(
            out,
            "Guard rail broken: step {}, {} ({})",
            broken.step,
            one_line(&broken.rail),
            one_line(&broken.matched)
        );
    }
    if !entry.triage_runs.is_empty() {
        let _ = writeln!(out, "Triage runs:");
        for run in &entry.triage_runs {
            let _ = writeln!(
                out,
                "  {}  {}: {}",
                journal::format_time(run.time_ms),
                one_line(&run.path),
                one_line(&run.summary)
            );
        }
    }
    if !entry.timeline.is_empty() {
        let _ = writeln!(out, "Timeline:");
        for event in &entry.timeline {
            let by = event.by.as_deref().map(|by| format!(" by {}", one_line(by))).unwrap_or_default();
            let detail = event.detail.as_deref().map(|detail| format!(": {}", one_line(detail))).unwrap_or_default();
            let _ = writeln!(out, "  {}  {}{by}{detail}", journal::format_time(event.at_ms), event.event);
        }
    }
    let _ = writeln!(out, "Revisions:");
    for revision in revisions {
        let _ = writeln!(
            out,
            "  revision {} by {} at {}",
            revision.revision,
            one_line(&revision.author),
            journal::format_time(revision.written_at_ms)
        );
        let _ = writeln!(out, "    root cause:       {}", one_line(&revision.root_cause));
        let _ = writeln!(out, "    remediation:      {}", one_line(&revision.remediation));
        let changed = match (&revision.contract, &revision.contract_pr) {
            (Some(contract), Some(pull_request)) if revision.contract_changed => {
                format!("yes: {} ({})", one_line(contract), one_line(pull_request))
            }
            _ => "no".into(),
        };
        let _ = writeln!(out, "    contract changed: {changed}");
    }
    out
}

/// `alertbook journal …`.
pub fn journal(command: &JournalCommand) -> anyhow::Result<ExitCode> {
    let now_ms = crate::routing::now_ms();
    let (store_args, filter) = match command {
        JournalCommand::List { filter, store } => (store, Some(filter)),
        JournalCommand::Show { store, .. } => (store, None),
        JournalCommand::Export { filter, store, .. } => (store, Some(filter)),
    };
    let mut filter = match filter.map(|filter| entry_filter(filter, now_ms)).transpose() {
        Ok(filter) => filter.unwrap_or_default(),
        Err(message) => return Ok(usage_error(message)),
    };
    let config = configuration(store_args)?;
    runtime()?.block_on(async {
        let store = open(&config).await?;
        // Reading needs no closing rules: they only judge new entries.
        let journal = journal::Journal::new(store.clone(), journal::ClosingRules::default(), config.remind_after);
        let outcome = match command {
            JournalCommand::List { .. } => journal.entries(&filter).await.map(|entries| {
                if entries.is_empty() {
                    eprintln!("no journal entries match");
                } else {
                    print!("{}", render_table(&entries));
                }
                ExitCode::SUCCESS
            }),
            JournalCommand::Show { entry, .. } => journal.entry(*entry).await.map(|found| match found {
                Some((entry, revisions)) => {
                    print!("{}", render_entry(&entry, &revisions));
                    ExitCode::SUCCESS
                }
                None => {
                    eprintln!("error: no journal entry {entry}; `alertbook journal list` lists them");
                    ExitCode::FAILURE
                }
            }),
            JournalCommand::Export { format, .. } => {
                filter.limit = filter.limit.or(Some(i64::MAX));
                journal.entries(&filter).await.map(|entries| {
                    print!("{}", journal::export::render(&entries, *format));
                    ExitCode::SUCCESS
                })
            }
        };
        store.close().await;
        outcome.context("cannot read the journal")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_unix_seconds_or_a_duration_ago() {
        let now = 1_764_633_600_000;
        assert_eq!(parse_time("2025-12-01T00:00:00Z", now), Ok(1_764_547_200_000));
        assert_eq!(parse_time("1764547200", now), Ok(1_764_547_200_000));
        assert_eq!(parse_time("1d", now), Ok(1_764_547_200_000));
        assert!(parse_time("yesterday", now).expect_err("invalid").contains("\"yesterday\""));
        let filter = FilterArgs {
            since: Some("2h".into()),
            until: None,
            id: Some("A6".into()),
            contract_changed: Some("no".into()),
            limit: Some(5),
        };
        let filter = entry_filter(&filter, now).expect("valid");
        assert_eq!(filter.since_ms, Some(now - 7_200_000));
        assert_eq!(
            (filter.alert_id.as_deref(), filter.contract_changed, filter.limit),
            (Some("A6"), Some(false), Some(5))
        );
        let bad = FilterArgs { since: Some("soon".into()), until: None, id: None, contract_changed: None, limit: None };
        assert!(entry_filter(&bad, now).expect_err("invalid").starts_with("--since: "));
    }

    fn entry() -> journal::Entry {
        journal::Entry {
            id: 3,
            alert_id: "A6".into(),
            alertname: "LokiCompactorBehind".into(),
            fingerprint: "0123".into(),
            labels: [("job".to_owned(), "loki".to_owned())].into(),
            fired_at: "2025-12-01T00:00:00Z".into(),
            acknowledged_by: "alice".into(),
            acknowledged_at: "2025-12-01T00:05:00Z".into(),
            resolved_at: None,
            closed_by: "alice".into(),
            closed_at: "2025-12-01T01:00:00Z".into(),
            revision: 2,
            revised_by: "bob".into(),
            revised_at: "2025-12-01T02:00:00Z".into(),
            root_cause: "compactor OOM\nafter the upgrade".into(),
            remediation: "config: limits.yaml".into(),
            contract_changed: true,
            contract: Some("log-retention".into()),
            contract_pr: Some("https://git.example/pull/9".into()),
            triage_runs: Vec::new(),
            timeline: vec![journal::TimelineEvent {
                at_ms: 1_764_547_500_000,
                event: "acknowledged".into(),
                by: Some("alice".into()),
                detail: None,
            }],
            links: journal::Links { runbook: "/runbook/A6.md".into(), triage: String::new() },
            guard_rails_broken: Vec::new(),
        }
    }

    #[test]
    fn the_table_has_one_line_per_entry_whatever_the_text_holds() {
        let table = render_table(&[entry()]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 2, "{table}");
        assert!(lines[0].starts_with("ENTRY  ALERT  ALERTNAME"), "{table}");
        assert!(lines[1].contains("A6     LokiCompactorBehind  2025-12-01T01:00:00Z  alice"), "{table}");
        assert!(lines[1].ends_with("log-retention  compactor OOM after the upgrade"), "{table}");
    }

    #[test]
    fn an_entry_shows_every_revision() {
        let revision = |number: i64, author: &str, root_cause: &str, changed: bool| state::Revision {
            episode_id: 3,
            revision: number,
            author: author.into(),
            written_at_ms: 1_764_550_800_000 + number,
            alert_id: "A6".into(),
            root_cause: root_cause.into(),
            remediation: "no-op, transient".into(),
            contract_changed: changed,
            contract: changed.then(|| "log-retention".into()),
            contract_pr: changed.then(|| "https://git.example/pull/9".into()),
            triage: serde_json::Value::Null,
            timeline: serde_json::Value::Null,
        };
        let text = render_entry(
            &entry(),
            &[revision(1, "alice", "compactor", false), revision(2, "bob", "compactor OOM", true)],
        );
        assert!(text.starts_with("Entry 3: A6 LokiCompactorBehind\n"), "{text}");
        assert!(text.contains("Acknowledged:  2025-12-01T00:05:00Z by alice"), "{text}");
        assert!(text.contains("  revision 1 by alice at 2025-12-01T01:00:00Z"), "{text}");
        assert!(text.contains("  revision 2 by bob at 2025-12-01T01:00:00Z"), "{text}");
        assert!(text.contains("    contract changed: yes: log-retention (https://git.example/pull/9)"), "{text}");
        assert!(text.contains("2025-12-01T00:05:00Z  acknowledged by alice"), "{text}");
    }
}

//! `kisum`: the access model from the command line (DESIGN.md §7).
//!
//! Every error exits 2 with one line of compact problem+json on stderr and nothing on stdout.

// Errors travel as `Problem` bodies, once per run, on the way out: their size costs nothing here.
#![allow(clippy::result_large_err)]

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{Args, Parser, Subcommand};

use kisum_access::scenario::{Report, run_file, scenario_files};
use kisum_access::{Access, CompanyId, Explanation, PermissionId, Principal, ResourceRef, Timestamp, World};
use kisum_errors::{ErrorCode, KisumError, Problem};

mod token;

/// The demo world, bundled so that `kisum demo` runs anywhere.
const DEMO_WORLD: &str = include_str!("../../examples/demo/world.json");

/// The access model from the command line: decisions and their explanations, who can, entitlements,
/// world files, QA scenarios and tokens, all evaluated locally on a world file. `--at` defaults to now.
/// Errors exit 2 with one line of problem+json on stderr and nothing on stdout.
#[derive(Debug, Parser)]
#[command(name = "kisum", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// One line of JSON (decision, reason, explanation); exit 0 on allow, 1 on deny.
    Check(CheckArgs),
    /// The same question as `check`, explained for people.
    Explain(CheckArgs),
    /// Every principal of the company allowed the permission (a JSON array).
    WhoCan(WhoCanArgs),
    /// The company's entitlements at an instant, with provenance (JSON).
    Entitlements(EntitlementsArgs),
    /// Exit 0 if the world file is valid, 2 with every problem otherwise.
    Validate(WorldArg),
    /// Runs QA scenario files (folders: every `.json` file in them); exit 1 if any expectation fails.
    Scenario(ScenarioArgs),
    /// Walks through the bundled demo world.
    Demo,
    /// Keys, key sets, signing and verification.
    #[command(subcommand)]
    Token(token::TokenCommand),
}

#[derive(Debug, Args)]
struct WorldArg {
    /// A world file (the scenarios/README.md format).
    #[arg(long, value_name = "FILE")]
    world: String,
}

#[derive(Debug, Args)]
struct CheckArgs {
    /// `user:ID` or `agent:ID`.
    #[arg(long)]
    principal: String,
    #[command(flatten)]
    question: WhoCanArgs,
}

#[derive(Debug, Args)]
struct WhoCanArgs {
    #[command(flatten)]
    world: WorldArg,
    /// The company id.
    #[arg(long)]
    company: String,
    /// The permission key.
    #[arg(long)]
    permission: String,
    /// A resource, `COMPANY/KIND/ID`.
    #[arg(long, value_name = "COMPANY/KIND/ID")]
    resource: Option<String>,
    /// The instant (RFC 3339); default now.
    #[arg(long, value_name = "RFC3339")]
    at: Option<String>,
}

#[derive(Debug, Args)]
struct EntitlementsArgs {
    #[command(flatten)]
    world: WorldArg,
    /// The company id.
    #[arg(long)]
    company: String,
    /// The instant (RFC 3339); default now.
    #[arg(long, value_name = "RFC3339")]
    at: Option<String>,
}

#[derive(Debug, Args)]
struct ScenarioArgs {
    /// Scenario files or folders.
    #[arg(required = true, value_name = "FILE_OR_DIR")]
    paths: Vec<String>,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // `--help`, `help` and `--version` answer on stdout and succeed.
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let mut stdout = std::io::stdout().lock();
            let written = write!(stdout, "{}", e.render()).and_then(|()| stdout.flush());
            return if written.is_ok() { ExitCode::SUCCESS } else { ExitCode::from(2) };
        }
        Err(e) => {
            eprintln!("{}", usage_error(&e).to_json());
            return ExitCode::from(2);
        }
    };
    let mut out = String::new();
    let result = run(cli.command, &mut out);
    match result {
        Ok(code) => {
            let mut stdout = std::io::stdout().lock();
            if stdout.write_all(out.as_bytes()).and_then(|()| stdout.flush()).is_err() {
                return ExitCode::from(2);
            }
            ExitCode::from(code)
        }
        Err(problem) => {
            eprintln!("{}", problem.to_json());
            ExitCode::from(2)
        }
    }
}

/// A command line clap refused, as the problem every error here is: its first line, `VALIDATION_FAILED`.
fn usage_error(e: &clap::Error) -> Problem {
    if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        return usage("no command; try `kisum help`");
    }
    let text = e.render().to_string();
    let first = text.lines().next().unwrap_or("the command line is not valid");
    usage(format!("{} (try `kisum help`)", first.trim_start_matches("error: ")))
}

fn usage(detail: impl Into<String>) -> Problem {
    Problem::new(ErrorCode::ValidationFailed, format!("usage: {}", detail.into()))
}

/// An instant from the command line, or now.
fn instant(at: Option<&str>) -> Result<Timestamp, Problem> {
    match at {
        Some(text) => Timestamp::parse(text).map_err(|e| usage(e.to_string())),
        None => Ok(Timestamp::now()),
    }
}

fn resource(text: Option<&str>) -> Result<Option<ResourceRef>, Problem> {
    text.map(|r| ResourceRef::parse(r).map_err(|e| usage(e.to_string()))).transpose()
}

fn clip(text: &str) -> String {
    text.chars().take(80).collect()
}

fn load_world(path: &str) -> Result<World, Problem> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        let code = if e.kind() == std::io::ErrorKind::NotFound { ErrorCode::NotFound } else { ErrorCode::Internal };
        Problem::new(code, format!("cannot read `{}`: {e}", clip(path)))
    })?;
    World::from_json(&text).map_err(|e| e.to_problem())
}

fn run(command: Command, out: &mut String) -> Result<u8, Problem> {
    match command {
        Command::Check(args) => check(&args, out, false),
        Command::Explain(args) => check(&args, out, true),
        Command::WhoCan(args) => who_can(&args, out),
        Command::Entitlements(args) => entitlements(&args, out),
        Command::Validate(args) => load_world(&args.world).map(|_| 0),
        Command::Scenario(args) => scenario(&args.paths, out),
        Command::Demo => demo(out),
        Command::Token(command) => token::run(command, out),
    }
}

fn check(args: &CheckArgs, out: &mut String, human: bool) -> Result<u8, Problem> {
    let principal = Principal::parse(&args.principal).map_err(|e| usage(e.to_string()))?;
    let args = &args.question;
    let company = company_id(&args.company)?;
    let resource = resource(args.resource.as_deref())?;
    let at = instant(args.at.as_deref())?;
    let world = load_world(&args.world.world)?;
    let permission = world.permission(&args.permission).map_err(|e| e.to_problem())?;
    let explanation = world.explain(&principal, &company, permission, resource.as_ref(), at);
    if human {
        out.push_str(&describe(&world, &principal, &company, permission, resource.as_ref(), at, &explanation));
    } else {
        let line = CheckLine { decision: explanation.decision, reason: explanation.reason, explain: &explanation };
        out.push_str(&serde_json::to_string(&line).unwrap_or_default());
        out.push('\n');
    }
    Ok(if explanation.decision == "allow" { 0 } else { 1 })
}

/// The line `kisum check` prints: `decision` and `reason` are normative, `explain` is for people.
#[derive(serde::Serialize)]
struct CheckLine<'a> {
    decision: &'static str,
    reason: Option<kisum_access::DenyReason>,
    explain: &'a Explanation,
}

/// Parses a company id given on the command line (a malformed one is bad usage).
fn company_id(text: &str) -> Result<CompanyId, Problem> {
    CompanyId::parse(text).map_err(|e| usage(e.to_string()))
}

fn describe(
    world: &World,
    principal: &Principal,
    company: &CompanyId,
    permission: PermissionId,
    resource: Option<&ResourceRef>,
    at: Timestamp,
    e: &Explanation,
) -> String {
    let catalog = world.catalog();
    let key = catalog.key(permission);
    let on = resource.map(|r| format!(" on {r}")).unwrap_or_default();
    let mut text = match e.reason {
        None => format!("ALLOW  {principal} may {key}{on} in {company} at {at}\n"),
        Some(reason) => format!("DENY   {principal} may not {key}{on} in {company} at {at}: {reason}\n"),
    };
    if !e.roles.is_empty() {
        text.push_str(&format!("  roles:        {}\n", e.roles.join(", ")));
    }
    if !e.role_path.is_empty() {
        text.push_str(&format!("  granted by:   role {}\n", e.role_path.join(" → inherits ")));
    }
    if !e.delegations.is_empty() {
        text.push_str(&format!("  granted by:   delegation chain {}\n", e.delegations.join(" ← ")));
    }
    if !e.entitled_by.is_empty() {
        text.push_str(&format!("  entitled by:  {}\n", e.entitled_by.join(", ")));
    }
    text
}

fn who_can(args: &WhoCanArgs, out: &mut String) -> Result<u8, Problem> {
    let company = company_id(&args.company)?;
    let resource = resource(args.resource.as_deref())?;
    let at = instant(args.at.as_deref())?;
    let world = load_world(&args.world.world)?;
    let permission = world.permission(&args.permission).map_err(|e| e.to_problem())?;
    if world.company(&company).is_none() {
        return Err(Problem::new(ErrorCode::NotFound, format!("unknown company `{company}`")));
    }
    let who: Vec<String> =
        world.who_can(&company, permission, resource.as_ref(), at).iter().map(ToString::to_string).collect();
    out.push_str(&serde_json::to_string(&who).unwrap_or_default());
    out.push('\n');
    Ok(0)
}

fn entitlements(args: &EntitlementsArgs, out: &mut String) -> Result<u8, Problem> {
    let company = company_id(&args.company)?;
    let at = instant(args.at.as_deref())?;
    let world = load_world(&args.world.world)?;
    let summary = world
        .entitlements(&company, at)
        .ok_or_else(|| Problem::new(ErrorCode::NotFound, format!("unknown company `{company}`")))?;
    out.push_str(&serde_json::to_string(&summary).unwrap_or_default());
    out.push('\n');
    Ok(0)
}

fn scenario(paths: &[String], out: &mut String) -> Result<u8, Problem> {
    let mut report = Report::default();
    for path in paths {
        let files = scenario_files(Path::new(path))
            .map_err(|e| Problem::new(ErrorCode::NotFound, format!("cannot read `{}`: {e}", clip(path))))?;
        if !Path::new(path).exists() {
            return Err(Problem::new(ErrorCode::NotFound, format!("no such file or folder `{}`", clip(path))));
        }
        for file in files {
            report.merge(run_file(&file));
        }
    }
    for failure in &report.failures {
        out.push_str(&failure.to_string());
        out.push('\n');
    }
    out.push_str(&format!("{} passed, {} failed\n", report.passed, report.failures.len()));
    Ok(if report.failures.is_empty() { 0 } else { 1 })
}

fn demo(out: &mut String) -> Result<u8, Problem> {
    let world = World::from_json(DEMO_WORLD).map_err(|e| e.to_problem())?;
    let at = Timestamp::parse("2026-03-15T12:00:00Z").map_err(|e| usage(e.to_string()))?;
    out.push_str(&format!("Kisum demo world at {at}\n\n"));
    for company in world.companies() {
        let id = company.id();
        if let Some(summary) = world.entitlements(id, at) {
            out.push_str(&format!("{id} is entitled to modules [{}]", summary.modules.join(", ")));
            if !summary.features.is_empty() {
                out.push_str(&format!(", features [{}]", summary.features.join(", ")));
            }
            let limits: Vec<String> = summary.limits.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&format!(", limits [{}]\n", limits.join(", ")));
        }
    }
    out.push('\n');
    let checks = [
        ("user:maya", "encore", "finance:invoice:approve", None),
        ("user:leo", "encore", "finance:invoice:approve", None),
        ("user:leo", "encore", "promoters:event:create", None),
        ("agent:copilot", "encore", "ai:copilot:ask", None),
        ("agent:copilot", "encore", "finance:invoice:read", Some("encore/invoice/inv-42")),
        ("agent:copilot", "encore", "finance:invoice:read", Some("encore/invoice/inv-43")),
        ("user:maya", "encore", "venue:contract:sign", None),
        ("user:maya", "encore", "finance:invoice:read", Some("bluenote/invoice/inv-1")),
        ("user:sam", "bluenote", "venue:contract:sign", None),
        ("user:maya", "bluenote", "venue:venue:read", None),
    ];
    for (principal, company, key, resource) in checks {
        let principal = Principal::parse(principal).map_err(|e| usage(e.to_string()))?;
        let company = company_id(company)?;
        let permission = world.permission(key).map_err(|e| e.to_problem())?;
        let resource = resource.map(ResourceRef::parse).transpose().map_err(|e| usage(e.to_string()))?;
        let explanation = world.explain(&principal, &company, permission, resource.as_ref(), at);
        out.push_str(&describe(&world, &principal, &company, permission, resource.as_ref(), at, &explanation));
    }
    let approve = world.permission("finance:invoice:approve").map_err(|e| e.to_problem())?;
    let encore = company_id("encore")?;
    let who: Vec<String> = world.who_can(&encore, approve, None, at).iter().map(ToString::to_string).collect();
    out.push_str(&format!("\nwho can finance:invoice:approve in encore: {}\n", who.join(", ")));
    let snapshot = world.snapshot(&Principal::parse("user:leo").map_err(|e| usage(e.to_string()))?, &encore, at);
    let catalog = world.catalog();
    let can: Vec<&str> = snapshot.permissions(&catalog).collect();
    out.push_str(&format!("what user:leo can do in encore: {}\n", can.join(", ")));
    out.push_str(
        "\nTry: cargo run -q --bin kisum -- explain --world examples/demo/world.json --at 2026-03-15T12:00:00Z \\\n       \
         --principal user:leo --company encore --permission finance:invoice:read\n",
    );
    Ok(0)
}

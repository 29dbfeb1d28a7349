//! `kisum`: the access model from the command line (DESIGN.md §7).
//!
//! Every error exits 2 with one line of compact problem+json on stderr and nothing on stdout.

// Errors travel as `Problem` bodies, once per run, on the way out: their size costs nothing here.
#![allow(clippy::result_large_err)]

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use kisum_access::scenario::{Report, run_file, scenario_files};
use kisum_access::{Access, CompanyId, Explanation, PermissionId, Principal, ResourceRef, Timestamp, World};
use kisum_errors::{ErrorCode, KisumError, Problem};

mod token;

const USAGE: &str = "\
usage: kisum <command> [options]

commands:
  check        --world FILE --principal user:ID|agent:ID --company ID --permission KEY
               [--resource COMPANY/KIND/ID] [--at RFC3339]
               one line of JSON; exit 0 on allow, 1 on deny
  explain      the same options as check; a human-readable explanation
  who-can      --world FILE --company ID --permission KEY [--resource COMPANY/KIND/ID] [--at RFC3339]
  entitlements --world FILE --company ID [--at RFC3339]
  validate     --world FILE              exit 0 if valid, 2 with every problem otherwise
  scenario     FILE_OR_DIR...            runs QA scenario files; exit 1 if any expectation fails
  demo                                   walks through the bundled demo world
{TOKEN}

--at defaults to now. Errors exit 2 with one line of problem+json on stderr.";

/// The demo world, bundled so that `kisum demo` runs anywhere.
const DEMO_WORLD: &str = include_str!("../../examples/demo/world.json");

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut out = String::new();
    let result = run(&args, &mut out);
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

fn usage(detail: impl Into<String>) -> Problem {
    Problem::new(ErrorCode::ValidationFailed, format!("usage: {}", detail.into()))
}

/// Parsed `--flag value` options and positional arguments.
struct Args<'a> {
    flags: Vec<(&'a str, &'a str)>,
    positionals: Vec<&'a str>,
}

impl<'a> Args<'a> {
    fn parse(args: &'a [String], allowed: &[&str]) -> Result<Args<'a>, Problem> {
        let mut parsed = Args { flags: Vec::new(), positionals: Vec::new() };
        let mut iter = args.iter();
        while let Some(arg) = iter.next() {
            if let Some(name) = arg.strip_prefix("--") {
                if !allowed.contains(&name) {
                    return Err(usage(format!("unknown option `--{}`", clip(name))));
                }
                let value = iter.next().ok_or_else(|| usage(format!("`--{name}` needs a value")))?;
                if parsed.flags.iter().any(|(n, _)| *n == name) {
                    return Err(usage(format!("`--{name}` given twice")));
                }
                parsed.flags.push((name, value));
            } else {
                parsed.positionals.push(arg);
            }
        }
        Ok(parsed)
    }

    fn get(&self, name: &str) -> Option<&'a str> {
        self.flags.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }

    fn required(&self, name: &str) -> Result<&'a str, Problem> {
        self.get(name).ok_or_else(|| usage(format!("`--{name}` is required")))
    }

    fn no_positionals(&self) -> Result<(), Problem> {
        match self.positionals.first() {
            Some(p) => Err(usage(format!("unexpected argument `{}`", clip(p)))),
            None => Ok(()),
        }
    }

    fn at(&self) -> Result<Timestamp, Problem> {
        match self.get("at") {
            Some(text) => Timestamp::parse(text).map_err(|e| usage(e.to_string())),
            None => Ok(Timestamp::now()),
        }
    }

    fn resource(&self) -> Result<Option<ResourceRef>, Problem> {
        self.get("resource").map(|r| ResourceRef::parse(r).map_err(|e| usage(e.to_string()))).transpose()
    }

    fn world(&self) -> Result<World, Problem> {
        load_world(self.required("world")?)
    }
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

fn run(args: &[String], out: &mut String) -> Result<u8, Problem> {
    let Some((command, rest)) = args.split_first() else { return Err(usage("no command; try `kisum help`")) };
    match command.as_str() {
        "check" => check(rest, out, false),
        "explain" => check(rest, out, true),
        "who-can" => who_can(rest, out),
        "entitlements" => entitlements(rest, out),
        "validate" => validate(rest),
        "scenario" => scenario(rest, out),
        "demo" => demo(rest, out),
        "token" => token::run(rest, out),
        "help" | "--help" | "-h" => {
            out.push_str(&USAGE.replace("{TOKEN}", token::USAGE));
            out.push('\n');
            Ok(0)
        }
        other => Err(usage(format!("unknown command `{}`", clip(other)))),
    }
}

const CHECK_FLAGS: &[&str] = &["world", "principal", "company", "permission", "resource", "at"];

fn check(rest: &[String], out: &mut String, human: bool) -> Result<u8, Problem> {
    let args = Args::parse(rest, CHECK_FLAGS)?;
    args.no_positionals()?;
    let principal = Principal::parse(args.required("principal")?).map_err(|e| usage(e.to_string()))?;
    let company = company_id(args.required("company")?)?;
    let key = args.required("permission")?;
    let resource = args.resource()?;
    let at = args.at()?;
    let world = args.world()?;
    let permission = world.permission(key).map_err(|e| e.to_problem())?;
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

fn who_can(rest: &[String], out: &mut String) -> Result<u8, Problem> {
    let args = Args::parse(rest, &["world", "company", "permission", "resource", "at"])?;
    args.no_positionals()?;
    let company = company_id(args.required("company")?)?;
    let key = args.required("permission")?;
    let resource = args.resource()?;
    let at = args.at()?;
    let world = args.world()?;
    let permission = world.permission(key).map_err(|e| e.to_problem())?;
    if world.company(&company).is_none() {
        return Err(Problem::new(ErrorCode::NotFound, format!("unknown company `{company}`")));
    }
    let who: Vec<String> =
        world.who_can(&company, permission, resource.as_ref(), at).iter().map(ToString::to_string).collect();
    out.push_str(&serde_json::to_string(&who).unwrap_or_default());
    out.push('\n');
    Ok(0)
}

fn entitlements(rest: &[String], out: &mut String) -> Result<u8, Problem> {
    let args = Args::parse(rest, &["world", "company", "at"])?;
    args.no_positionals()?;
    let company = company_id(args.required("company")?)?;
    let at = args.at()?;
    let world = args.world()?;
    let summary = world
        .entitlements(&company, at)
        .ok_or_else(|| Problem::new(ErrorCode::NotFound, format!("unknown company `{company}`")))?;
    out.push_str(&serde_json::to_string(&summary).unwrap_or_default());
    out.push('\n');
    Ok(0)
}

fn validate(rest: &[String]) -> Result<u8, Problem> {
    let args = Args::parse(rest, &["world"])?;
    args.no_positionals()?;
    args.world()?;
    Ok(0)
}

fn scenario(rest: &[String], out: &mut String) -> Result<u8, Problem> {
    let args = Args::parse(rest, &[])?;
    if args.positionals.is_empty() {
        return Err(usage("`scenario` needs at least one file or folder"));
    }
    let mut report = Report::default();
    for path in &args.positionals {
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

fn demo(rest: &[String], out: &mut String) -> Result<u8, Problem> {
    Args::parse(rest, &[])?.no_positionals()?;
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

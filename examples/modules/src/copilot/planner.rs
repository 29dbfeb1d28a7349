//! Planners: what decides, from the conversation so far, which tools to call next or what to answer.
//! [`Rules`] is the embedded default — intent rules over the question, deterministic, no network; the
//! OpenAI-compatible provider ([`super::openai`]) is the production option.

use async_trait::async_trait;
use kisum_client::access::Timestamp;
use kisum_client::server::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::tools::{
    FIND_ARTISTS, FIND_VENUES, LIST_EVENTS, LIST_INVOICES, LIST_TOURS, Outcome, SIMULATE_EVENT, Tool, ToolCall,
};

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Role {
    User,
    Assistant,
    Tool,
}

/// One message of a conversation: a question, the assistant's tool calls or answer, a tool's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Message {
    pub(crate) role: Role,
    /// The question, the answer, or (for a tool) a line saying what came back.
    pub(crate) content: String,
    /// The tools an assistant message asked for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) tool_calls: Vec<ToolCall>,
    /// The call a tool message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) tool_call_id: Option<String>,
    /// The tool a tool message answers for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) tool: Option<String>,
    /// What the tool gave.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) result: Option<Outcome>,
    pub(crate) at: Timestamp,
}

impl Message {
    pub(crate) fn user(content: String, at: Timestamp) -> Message {
        Message { role: Role::User, content, tool_calls: Vec::new(), tool_call_id: None, tool: None, result: None, at }
    }

    pub(crate) fn answer(content: String, at: Timestamp) -> Message {
        Message { role: Role::Assistant, ..Message::user(content, at) }
    }

    pub(crate) fn calls(tool_calls: Vec<ToolCall>, at: Timestamp) -> Message {
        Message { role: Role::Assistant, tool_calls, ..Message::user(String::new(), at) }
    }

    pub(crate) fn result(call: &ToolCall, result: Outcome, at: Timestamp) -> Message {
        let content = match &result {
            Outcome::Ok { .. } => format!("{} answered", call.name),
            Outcome::Refused { problem } => {
                format!("{} was refused: {}", call.name, problem.get("detail").and_then(Value::as_str).unwrap_or(""))
            }
            Outcome::Failed { detail } => format!("{} failed: {detail}", call.name),
        };
        Message {
            role: Role::Tool,
            tool_call_id: Some(call.id.clone()),
            tool: Some(call.name.clone()),
            result: Some(result),
            ..Message::user(content, at)
        }
    }
}

/// What a planner decided.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Step {
    /// Run these tools, then ask again.
    Call(Vec<ToolCall>),
    /// The answer to the question.
    Answer(String),
}

/// Decides the next step of a conversation whose last question is unanswered: `messages` holds the
/// conversation (its last question, then the tool calls and results of this turn), `tools` what may be
/// called. An error is the planner's own failure (`503 UPSTREAM_UNAVAILABLE` for a provider).
#[async_trait]
pub(crate) trait Planner: Send + Sync {
    async fn next(&self, messages: &[Message], tools: &[&'static Tool]) -> Result<Step, ApiError>;
}

/// The embedded planner: intent rules over the question. It calls the lookups the question asks for
/// (venues, artists, invoices, events, tours); a simulation takes its capacity and price from the question,
/// or the capacity from the caller's first venue; then it answers from what the tools gave, saying what
/// was refused and why.
#[derive(Debug, Default)]
pub(crate) struct Rules;

/// What a question asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Intent {
    Venues,
    Artists,
    Invoices,
    Events,
    Tours,
    Simulate,
}

/// Word beginnings that name an intent (a word of the question must start with one).
const WORDS: &[(Intent, &[&str])] = &[
    (Intent::Simulate, &["simulat", "forecast", "p&l", "profit", "break-even", "breakeven"]),
    (Intent::Venues, &["venue", "hall", "availab", "contract", "room"]),
    (Intent::Artists, &["artist", "band", "booking", "booked", "agency", "agencies"]),
    (Intent::Invoices, &["invoice", "billing", "financ", "owe", "paid", "unpaid"]),
    (Intent::Events, &["event", "show", "gig", "concert"]),
    (Intent::Tours, &["tour"]),
];

/// Phrases that name an intent wherever they stand.
const PHRASES: &[(Intent, &str)] =
    &[(Intent::Simulate, "break even"), (Intent::Simulate, "what if"), (Intent::Simulate, "sell out")];

/// The words of `text`, lowercased: runs of letters, digits, `&` and `-`.
fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !(c.is_alphanumeric() || c == '&' || c == '-'))
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

fn intents(question: &str) -> Vec<Intent> {
    let words = words(question);
    let lower = question.to_lowercase();
    let mut found: Vec<Intent> = Vec::new();
    for (intent, starts) in WORDS {
        let named = words.iter().any(|w| starts.iter().any(|s| w.starts_with(s)));
        let phrased = PHRASES.iter().any(|(i, p)| i == intent && lower.contains(p));
        // "capacity" asks about the venues, unless it gives a number (a simulation's input).
        let capacity = *intent == Intent::Venues
            && words.iter().any(|w| w.starts_with("capacit"))
            && number_near(question, CAPACITY_WORDS).is_none();
        if named || phrased || capacity {
            found.push(*intent);
        }
    }
    // A simulation of a show is not a question about the events.
    if found.contains(&Intent::Simulate) {
        found.retain(|i| *i != Intent::Events && *i != Intent::Invoices);
    }
    found
}

#[async_trait]
impl Planner for Rules {
    async fn next(&self, messages: &[Message], tools: &[&'static Tool]) -> Result<Step, ApiError> {
        Ok(plan(messages, tools))
    }
}

/// The deterministic plan (see [`Rules`]).
fn plan(messages: &[Message], tools: &[&'static Tool]) -> Step {
    let start = messages.iter().rposition(|m| m.role == Role::User).unwrap_or(0);
    let question = messages.get(start).map(|m| m.content.as_str()).unwrap_or_default();
    let turn = messages.get(start + 1..).unwrap_or_default();
    let done = results(turn);
    let intents = intents(question);
    let offered = |name: &str| tools.iter().any(|t| t.name == name);
    let call =
        |n: usize, name: &str, arguments: Value| ToolCall { id: format!("call-{n}"), name: name.into(), arguments };
    if done.is_empty() {
        let mut calls = Vec::new();
        for intent in &intents {
            let (name, arguments) = match intent {
                Intent::Venues => (FIND_VENUES, venue_arguments(question)),
                Intent::Artists => (FIND_ARTISTS, json!({})),
                Intent::Invoices => (LIST_INVOICES, json!({})),
                Intent::Events => (LIST_EVENTS, json!({})),
                Intent::Tours => (LIST_TOURS, json!({})),
                // Without a capacity in the question, the first venue's is looked up first.
                Intent::Simulate if number_near(question, CAPACITY_WORDS).is_none() => {
                    if intents.contains(&Intent::Venues) {
                        continue;
                    }
                    (FIND_VENUES, json!({}))
                }
                Intent::Simulate => (SIMULATE_EVENT, simulation_inputs(question, None)),
            };
            if offered(name) {
                calls.push(call(calls.len() + 1, name, arguments));
            }
        }
        if calls.is_empty() {
            return Step::Answer(HELP.to_owned());
        }
        return Step::Call(calls);
    }
    if intents.contains(&Intent::Simulate)
        && offered(SIMULATE_EVENT)
        && !done.iter().any(|(c, _)| c.name == SIMULATE_EVENT)
    {
        let capacity = done.iter().find_map(|(c, r)| match r {
            Outcome::Ok { data } if c.name == FIND_VENUES => data
                .get("venues")
                .and_then(Value::as_array)
                .and_then(|v| v.first())
                .and_then(|v| v.get("capacity"))
                .and_then(Value::as_u64),
            _ => None,
        });
        return Step::Call(vec![call(done.len() + 1, SIMULATE_EVENT, simulation_inputs(question, capacity))]);
    }
    // Venues looked up only for a simulation's capacity are named, not listed.
    let venues_for_capacity = intents.contains(&Intent::Simulate) && !intents.contains(&Intent::Venues);
    Step::Answer(compose(&done, venues_for_capacity))
}

const HELP: &str = "I can look up your venues (capacity, availability on a date, contracts), your artists and \
    their bookings, invoices, events and tours, and simulate an event's ticket sales and P&L. Try \"Which \
    venues are free on 2026-09-12?\" or \"Simulate a show at 45 EUR with 1200 capacity\".";

/// This turn's tool calls, each with its result.
fn results(turn: &[Message]) -> Vec<(ToolCall, Outcome)> {
    let calls = turn.iter().flat_map(|m| m.tool_calls.iter());
    calls
        .filter_map(|call| {
            let result = turn.iter().find(|m| m.tool_call_id.as_deref() == Some(call.id.as_str()))?.result.clone()?;
            Some((call.clone(), result))
        })
        .collect()
}

fn venue_arguments(question: &str) -> Value {
    match date_in(question) {
        Some(date) => json!({ "date": date }),
        None => json!({}),
    }
}

/// The first `YYYY-MM-DD` in `text`.
fn date_in(text: &str) -> Option<String> {
    text.split(|c: char| !(c.is_ascii_digit() || c == '-')).find_map(|word| {
        let parts: Vec<&str> = word.split('-').collect();
        let shaped = matches!(parts.as_slice(), [y, m, d] if y.len() == 4 && m.len() == 2 && d.len() == 2);
        (shaped && Timestamp::parse(&format!("{word}T00:00:00Z")).is_ok()).then(|| word.to_owned())
    })
}

const CAPACITY_WORDS: &[&str] = &["capacity", "seats", "tickets", "people", "cap"];
const PRICE_WORDS: &[&str] = &["eur", "€", "euro", "euros"];

/// The number written right before one of `words` (`1200 seats`), or right after (`capacity 1200`,
/// `capacity of 1200`). Numbers may group thousands (`1,200`, `1.200`, `12k`) and have a decimal comma or
/// point (`45,50`, `45.5`).
fn number_near(question: &str, words: &[&str]) -> Option<f64> {
    let q = question.to_lowercase().replace('€', " € ");
    let tokens: Vec<&str> = q.split_whitespace().collect();
    for (i, token) in tokens.iter().enumerate() {
        let word = token.trim_matches(|c: char| !c.is_alphanumeric() && c != '€');
        if !words.iter().any(|w| word == *w || word.starts_with(w) && w.len() > 3) {
            continue;
        }
        let before = i.checked_sub(1).and_then(|j| tokens.get(j)).and_then(|t| number(t));
        let after = tokens.get(i + 1).and_then(|t| number(t));
        let after_of = tokens.get(i + 2).filter(|_| tokens.get(i + 1) == Some(&"of")).and_then(|t| number(t));
        if let Some(n) = before.or(after).or(after_of) {
            return Some(n);
        }
    }
    None
}

/// A written number: digits with `,` or `.` between them, and an optional `k` (thousands). A separator
/// followed by exactly three digits groups thousands, unless it is the only one of two kinds that comes
/// last; any other is the decimal point.
fn number(token: &str) -> Option<f64> {
    let token = token.trim_matches(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == ','));
    let token = token.trim_end_matches(['.', ',']);
    let (digits, scale) = match token.strip_suffix(['k', 'K']) {
        Some(rest) => (rest, 1000.0),
        None => (token, 1.0),
    };
    if !digits.starts_with(|c: char| c.is_ascii_digit())
        || !digits.chars().all(|c| c.is_ascii_digit() || c == '.' || c == ',')
    {
        return None;
    }
    let separators: Vec<(usize, char)> = digits.char_indices().filter(|(_, c)| *c == '.' || *c == ',').collect();
    let groups: Vec<&str> = digits.split(['.', ',']).collect();
    let decimal_at = match separators.as_slice() {
        [] => None,
        // Of two kinds, the last is the decimal point (`1.234,56`, `1,234.56`).
        seps @ [(_, first), ..] if seps.iter().any(|(_, c)| c != first) => seps.last().map(|(i, _)| *i),
        // One kind: thousands when every group after the first has three digits (`1,200`, `1.200.000`).
        _ if groups.iter().skip(1).all(|g| g.len() == 3) => None,
        [(i, _)] => Some(*i),
        _ => return None,
    };
    let mut plain = String::with_capacity(digits.len());
    for (i, c) in digits.char_indices() {
        match c {
            '.' | ',' if Some(i) == decimal_at => plain.push('.'),
            '.' | ',' => {}
            c => plain.push(c),
        }
    }
    plain.parse::<f64>().ok().map(|n| n * scale)
}

/// The simulation the question describes: capacity from it (or `capacity`, or 1,000), one tier at its
/// price (or EUR 35), fixed costs half of a sold-out house's revenue, 80 % ± 10 % sell-through over 60
/// days, 10,000 runs, seed 1.
fn simulation_inputs(question: &str, capacity: Option<u64>) -> Value {
    let capacity = number_near(question, CAPACITY_WORDS)
        .filter(|n| *n >= 1.0)
        .map(|n| n.min(1_000_000.0) as u64)
        .or(capacity)
        .unwrap_or(1_000);
    let price = number_near(question, PRICE_WORDS).map_or(3_500, |p| (p.clamp(0.0, 100_000.0) * 100.0).round() as u64);
    let fixed = capacity.saturating_mul(price) / 2;
    json!({
        "capacity": capacity,
        "tiers": [{ "name": "GA", "price": price, "share": 1.0 }],
        "currency": "EUR",
        "fixed_costs": fixed,
        "sell_through": { "mean": 0.8, "spread": 0.1 },
        "days_on_sale": 60,
        "runs": 10_000,
        "seed": 1
    })
}

/// The answer from this turn's results, one paragraph per tool.
fn compose(done: &[(ToolCall, Outcome)], venues_for_capacity: bool) -> String {
    let parts: Vec<String> = done
        .iter()
        .map(|(call, result)| match result {
            Outcome::Ok { data } if venues_for_capacity && call.name == FIND_VENUES => {
                match list(data, "venues").first() {
                    Some(v) => format!(
                        "I took the capacity of your venue {} ({}): {}.",
                        text(v, "name"),
                        text(v, "id"),
                        v.get("capacity").and_then(Value::as_u64).unwrap_or(0)
                    ),
                    None => "You have no venue to take a capacity from; I assumed 1000.".to_owned(),
                }
            }
            Outcome::Ok { data } if data.get("truncated").and_then(Value::as_bool) == Some(true) => {
                format!(
                    "{}\n(Only the first {} are shown: there are more.)",
                    describe(&call.name, data),
                    crate::records::MAX_PAGE
                )
            }
            Outcome::Ok { data } => describe(&call.name, data),
            Outcome::Refused { problem } => format!("I could not {}: {}.", what(&call.name), refusal(problem)),
            Outcome::Failed { detail } => format!("I could not {}: {detail}.", what(&call.name)),
        })
        .collect();
    parts.join("\n\n")
}

fn what(tool: &str) -> &'static str {
    match tool {
        FIND_VENUES => "look up your venues",
        FIND_ARTISTS => "look up your artists",
        LIST_INVOICES => "list your invoices",
        LIST_EVENTS => "list your events",
        LIST_TOURS => "list your tours",
        SIMULATE_EVENT => "run the simulation",
        _ => "use that tool",
    }
}

/// Why a module refused, in words.
fn refusal(problem: &Value) -> String {
    let field = |k: &str| problem.get(k).and_then(Value::as_str);
    match (field("code"), field("required")) {
        (Some("FORBIDDEN"), Some(required)) => format!("your access does not include `{required}`"),
        (Some("NOT_ENTITLED"), Some(required)) => format!("your company's plan does not include `{required}`"),
        (Some("MEMBERSHIP_INACTIVE"), _) => "your membership is not active".to_owned(),
        (Some("LIMIT_EXCEEDED"), Some(required)) => format!("the company has reached its limit `{required}`"),
        _ => field("detail").unwrap_or("it was refused").to_owned(),
    }
}

fn list<'a>(data: &'a Value, key: &str) -> &'a [Value] {
    data.get(key).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default()
}

fn text<'a>(record: &'a Value, key: &str) -> &'a str {
    record.get(key).and_then(Value::as_str).unwrap_or("?")
}

/// A tool's data in words.
fn describe(tool: &str, data: &Value) -> String {
    match tool {
        FIND_VENUES => {
            let venues = list(data, "venues");
            if venues.is_empty() {
                return "You have no venues that match.".to_owned();
            }
            let lines: Vec<String> = venues
                .iter()
                .map(|v| {
                    let contracts: Vec<String> = list(v, "contracts")
                        .iter()
                        .map(|c| format!("{} ({})", text(c, "id"), text(c, "status")))
                        .collect();
                    let held: Vec<&str> = list(v, "held").iter().filter_map(Value::as_str).collect();
                    let mut line = format!(
                        "- {} ({}): capacity {}; held on {}; contracts {}",
                        text(v, "name"),
                        text(v, "id"),
                        v.get("capacity").and_then(Value::as_u64).unwrap_or(0),
                        if held.is_empty() { "no dates".to_owned() } else { held.join(", ") },
                        if contracts.is_empty() { "none".to_owned() } else { contracts.join(", ") },
                    );
                    if let Some(on) = v.get("available_on") {
                        let free = on.get("available").and_then(Value::as_bool).unwrap_or(false);
                        line.push_str(&format!(
                            "; {} on {}",
                            if free { "available" } else { "not available" },
                            text(on, "date")
                        ));
                    }
                    line
                })
                .collect();
            format!("Your venues ({}):\n{}", venues.len(), lines.join("\n"))
        }
        FIND_ARTISTS => {
            let artists = list(data, "artists");
            if artists.is_empty() {
                return "You have no artists that match.".to_owned();
            }
            let lines: Vec<String> = artists
                .iter()
                .map(|a| {
                    let bookings = match a.get("bookings") {
                        Some(Value::Array(b)) if b.is_empty() => "no bookings".to_owned(),
                        Some(Value::Array(b)) => {
                            let dates: Vec<&str> = b.iter().map(|b| text(b, "date")).collect();
                            format!("booked on {}", dates.join(", "))
                        }
                        Some(Value::Object(o)) if o.contains_key("refused") => {
                            format!("bookings not shown: {}", refusal(o.get("refused").unwrap_or(&Value::Null)))
                        }
                        _ => "bookings not looked up".to_owned(),
                    };
                    format!("- {} ({}): {bookings}", text(a, "name"), text(a, "id"))
                })
                .collect();
            format!("Your artists ({}):\n{}", artists.len(), lines.join("\n"))
        }
        LIST_INVOICES => {
            let invoices = list(data, "invoices");
            let totals: Vec<String> = data
                .get("totals")
                .and_then(Value::as_object)
                .map(|t| t.iter().map(|(c, n)| format!("{c} {:.2}", n.as_u64().unwrap_or(0) as f64 / 100.0)).collect())
                .unwrap_or_default();
            let drafts = invoices.iter().filter(|i| text(i, "status") == "draft").count();
            format!(
                "You have {} invoice(s), {drafts} of them draft; totals: {}.",
                invoices.len(),
                if totals.is_empty() { "none".to_owned() } else { totals.join(", ") }
            )
        }
        LIST_EVENTS => {
            let events = list(data, "events");
            let lines: Vec<String> = events
                .iter()
                .map(|e| format!("- {} ({}), starts {}", text(e, "name"), text(e, "id"), text(e, "starts_at")))
                .collect();
            format!("Your events ({}):\n{}", events.len(), lines.join("\n"))
        }
        LIST_TOURS => {
            let tours = list(data, "tours");
            let lines: Vec<String> =
                tours.iter().map(|t| format!("- {} ({})", text(t, "name"), text(t, "id"))).collect();
            format!("Your tours ({}):\n{}", tours.len(), lines.join("\n"))
        }
        SIMULATE_EVENT => text(data, "explanation").to_owned(),
        _ => data.to_string(),
    }
}

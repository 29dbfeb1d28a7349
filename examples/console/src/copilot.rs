//! A conversation with the copilot (the ai module's sessions): its messages — the questions, what each
//! tool looked up with the user's access and whether it was allowed, the answers — and a form to ask
//! the next question. The list of conversations and the form that starts one are the ai module's page
//! ([`crate::modules`]).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use maud::{Markup, html};
use reqwest::Method;
use serde_json::{Value, json};

use crate::Console;
use crate::pages::{Ctx, back, outcome};
use crate::session::Flash;
use crate::upstream::Call;
use crate::view::{self, Decision};

const ASK: &str = "ai:copilot:ask";

/// `GET /m/ai/sessions/{id}`.
pub(crate) async fn page(State(console): State<Arc<Console>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let ctx = match Ctx::of(&console, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let (Some(base), Some(id)) = (console.config.module("ai"), view::path_id(&id)) else {
        return crate::pages::not_found("No such conversation");
    };
    let reply = Call::get(format!("{base}/v1/copilot/sessions/{id}")).bearer(&ctx.token).send(&console.http).await;
    let session = reply.and_then(|r| r.ok());
    let decision = ctx
        .decide(&console, &[(ASK.to_owned(), None)])
        .await
        .into_iter()
        .next()
        .unwrap_or_else(|| Decision::unknown("UNKNOWN"));
    let csrf = ctx.session.csrf.as_str();
    let title = match &session {
        Ok(s) => view::cell(view::at(s, "title")),
        Err(_) => "Conversation".to_owned(),
    };
    let main = html! {
        p { a href="/m/ai" { "← All conversations" } }
        @match &session {
            Err(p) => { (view::refusal(p)) }
            Ok(s) => {
                h2 #conversation-h data-session=(id) { "Messages" }
                @let messages = s.get("messages").and_then(Value::as_array).cloned().unwrap_or_default();
                @if messages.is_empty() { p.muted { "Nothing asked yet." } }
                ol.conversation aria-labelledby="conversation-h" {
                    @for m in &messages { (message(m)) }
                }
                div.create {
                    (view::action(csrf, &format!("/m/ai/sessions/{id}/ask"), "Ask", &decision, html! {
                        label for="question" { "Question" }
                        input #question name="question" type="text" required
                            placeholder="Which venues are free on 2026-09-12? · Simulate a show at 45 EUR";
                    }))
                }
                p.muted { "The copilot looks things up with your access: what you may not read, it cannot tell you." }
            }
        }
    };
    ctx.render("ai", &title, main)
}

/// One message: a question, an answer, or a tool's outcome.
fn message(m: &Value) -> Markup {
    let role = view::cell(view::at(m, "role"));
    let content = view::cell(view::at(m, "content"));
    html! {
        @match role.as_str() {
            "user" => li.question data-role="user" { strong { "You: " } (content) },
            "assistant" if m.get("tool_calls").and_then(Value::as_array).is_some_and(|c| !c.is_empty()) => {},
            "assistant" => li.answer data-role="assistant" { strong { "Copilot: " } span.text { (content) } },
            "tool" => {
                @let outcome = view::cell(view::at(view::at(m, "result"), "outcome"));
                @let tool = view::cell(view::at(m, "tool"));
                li.tool.muted data-role="tool" data-tool=(tool) data-outcome=(outcome) {
                    "Used " code { (tool) } ": " (outcome)
                    @if outcome == "refused" {
                        @let required = view::cell(view::at(view::at(view::at(m, "result"), "problem"), "required"));
                        @if !required.is_empty() { " (needs " code { (required) } ")" }
                    }
                }
            },
            _ => {},
        }
    }
}

/// `POST /m/ai/sessions/{id}/ask`: the question, asked in the conversation with the user's token.
pub(crate) async fn ask(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let ctx = match Ctx::form(&console, &headers, &form).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let (Some(base), Some(id)) = (console.config.module("ai"), view::path_id(&id)) else {
        return crate::pages::not_found("No such conversation");
    };
    let question = form.get("question").map(|q| q.trim().to_owned()).unwrap_or_default();
    let url = format!("{base}/v1/copilot/sessions/{id}/messages");
    let result = ctx.write(&console, Method::POST, url, &json!({ "question": question })).await;
    outcome(&ctx.session, result, |v| {
        Flash::Done(format!("Answered ({} of this month's copilot requests used).", view::cell(view::at(v, "used"))))
    });
    back(&format!("/m/ai/sessions/{id}"))
}

//! The history: every call the soak's clients made, in the order they were made.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a call asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Op {
    Charge,
    Use,
    CreateOrder,
    Pay,
    Cancel,
    IssueCoupon,
    Top,
    Restock,
    ChangePrice,
    /// The post-confirmation trigger's handler, called in the runner's process (there is
    /// no sign-up route).
    SignUp,
}

impl Op {
    pub const ALL: [Op; 10] = [
        Op::Charge,
        Op::Use,
        Op::CreateOrder,
        Op::Pay,
        Op::Cancel,
        Op::IssueCoupon,
        Op::Top,
        Op::Restock,
        Op::ChangePrice,
        Op::SignUp,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Op::Charge => "charge",
            Op::Use => "use",
            Op::CreateOrder => "create-order",
            Op::Pay => "pay",
            Op::Cancel => "cancel",
            Op::IssueCoupon => "issue-coupon",
            Op::Top => "top",
            Op::Restock => "restock",
            Op::ChangePrice => "change-price",
            Op::SignUp => "sign-up",
        }
    }
}

/// One call: a request and its answer, or the lack of one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Call {
    /// The call's place in the history.
    pub id: u64,
    /// The request this call is a try of: the tries of one request (the same key, or
    /// the same body after a failure) share it.
    pub request: u64,
    /// 1 for the first try.
    pub attempt: u32,
    pub op: Op,
    /// The acting user (the token's), if any.
    pub user: Option<u64>,
    pub key: Option<String>,
    pub method: String,
    pub path: String,
    pub body: Option<Value>,
    /// Milliseconds since the soak began: the request sent, the answer read.
    pub start_ms: u64,
    pub end_ms: u64,
    /// The HTTP status; 0 when no answer came (the connection failed or was cut).
    pub status: u16,
    /// Whether a 429 or 503 said when to retry.
    pub retry_after: bool,
    /// The answer's JSON body; for no answer, `{"error": "…"}`.
    pub answer: Value,
}

impl Call {
    pub fn code(&self) -> &str {
        self.answer["code"].as_str().unwrap_or_default()
    }

    pub fn succeeded(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// A 5xx or no answer: the change may or may not have been made.
    pub fn uncertain(&self) -> bool {
        self.status == 0 || self.status >= 500
    }
}

/// The tries of one request, and what they add up to.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub tries: Vec<&'a Call>,
}

/// What a client knows of a request's effect after its last try.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Known<'a> {
    /// A try succeeded: this one (the first that did).
    Done(&'a Call),
    /// The last try was a definite refusal and none succeeded: no effect.
    Refused(&'a Call),
    /// Every try failed or went unanswered: at most one effect.
    Unknown,
}

impl<'a> Request<'a> {
    pub fn first(&self) -> &'a Call {
        self.tries[0]
    }

    pub fn known(&self) -> Known<'a> {
        if let Some(done) = self.tries.iter().find(|c| c.succeeded()) {
            return Known::Done(done);
        }
        match self.tries.last() {
            Some(last) if !last.uncertain() && self.tries.iter().all(|c| !c.uncertain()) => Known::Refused(last),
            _ => Known::Unknown,
        }
    }

    /// When its effect, if any, can have happened: from the first try's start to the
    /// end of the try that succeeded (never, for a request that may still land).
    pub fn window(&self) -> (u64, Option<u64>) {
        match self.known() {
            Known::Done(done) => (self.first().start_ms, Some(done.end_ms)),
            _ => (self.first().start_ms, None),
        }
    }
}

/// The history's calls grouped by request, in the order the requests began.
pub fn requests(calls: &[Call]) -> Vec<Request<'_>> {
    let mut by_request: std::collections::BTreeMap<u64, Vec<&Call>> = std::collections::BTreeMap::new();
    for call in calls {
        by_request.entry(call.request).or_default().push(call);
    }
    let mut requests: Vec<Request<'_>> = by_request
        .into_values()
        .map(|mut tries| {
            tries.sort_by_key(|c| c.attempt);
            Request { tries }
        })
        .collect();
    requests.sort_by_key(|r| (r.first().start_ms, r.first().id));
    requests
}

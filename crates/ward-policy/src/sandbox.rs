//! What a policy sandbox does: the requests a host sends to the process it
//! evaluates tenant policies in, the answers, and the sandbox's side of the
//! exchange, a bounded cache of compiled bundles answering one line of JSON
//! per line of JSON. The crate still opens nothing: the process, its pipes
//! and the limits the operating system puts on it belong to the host.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};

use crate::bundle::Bundle;
use crate::error::PolicyError;
use crate::policy::{Policy, PolicyDecision};

/// Source bytes of compiled bundles a sandbox keeps before it drops the
/// oldest: each tenant's active bundle stays cached without letting many
/// tenants, or many pushes, grow the sandbox without bound.
const CACHE_SOURCE_BYTES: usize = 16 * 1024 * 1024;

/// One request to a sandbox.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Parse a pushed bundle, run its `test_` rules and compile it.
    Check {
        /// `(relative path, text)` of each file.
        files: Vec<(String, String)>,
    },
    /// Decide for `input` with the bundle whose hash is `hash`. `files` may
    /// be left out while the sandbox has the bundle; it answers
    /// [`Response::UnknownBundle`] when it has not.
    Evaluate {
        /// [`Bundle::hash`] of the bundle to decide with.
        hash: String,
        /// The input document (see the crate docs).
        input: serde_json::Value,
        /// The bundle's files, when the sandbox may not have them.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        files: Option<Vec<(String, String)>>,
    },
}

/// The answer to one [`Request`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Response {
    /// The pushed bundle parses, passes every test and compiles.
    Checked {
        /// The tests that passed, as in [`TestReport::passed`](crate::TestReport).
        passed: Vec<String>,
    },
    /// The pushed bundle is refused, or the bundle to decide with does not
    /// compile or failed to decide ([`PolicyError::Evaluation`]): deny.
    Refused {
        /// Why.
        error: PolicyError,
    },
    /// The decision.
    Decided {
        /// What the policy said.
        decision: PolicyDecision,
    },
    /// The sandbox does not have the bundle: send the request again with
    /// its files.
    UnknownBundle,
}

/// The sandbox's state: compiled bundles by hash, oldest first out.
#[derive(Debug, Default)]
pub struct Sandbox {
    compiled: HashMap<String, (Result<Policy, PolicyError>, usize)>,
    // INVARIANT: holds each key of `compiled` once, in insertion order, and
    // `cached_bytes` is the sum of their sizes.
    order: VecDeque<String>,
    cached_bytes: usize,
}

impl Sandbox {
    /// Answers one request.
    pub fn handle(&mut self, request: Request) -> Response {
        match request {
            Request::Check { files } => check(files),
            Request::Evaluate { hash, input, files } => {
                if !self.compiled.contains_key(&hash) {
                    let Some(files) = files else {
                        return Response::UnknownBundle;
                    };
                    self.insert(&hash, files);
                }
                match self.compiled.get(&hash).map(|(policy, _)| policy) {
                    Some(Ok(policy)) => match policy.evaluate(&input) {
                        Ok(decision) => Response::Decided { decision },
                        Err(error) => Response::Refused { error },
                    },
                    Some(Err(error)) => Response::Refused {
                        error: error.clone(),
                    },
                    None => Response::UnknownBundle,
                }
            }
        }
    }

    fn insert(&mut self, hash: &str, files: Vec<(String, String)>) {
        let size = files.iter().map(|(p, t)| p.len() + t.len()).sum::<usize>();
        let compiled = if Bundle::hash_of(&files) == hash {
            Bundle::from_files(files).and_then(|bundle| bundle.compile())
        } else {
            Err(PolicyError::Evaluation(format!(
                "the files sent do not hash to bundle `{hash}`"
            )))
        };
        while self.cached_bytes + size > CACHE_SOURCE_BYTES {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some((_, bytes)) = self.compiled.remove(&oldest) {
                self.cached_bytes -= bytes;
            }
        }
        self.compiled.insert(hash.to_owned(), (compiled, size));
        self.order.push_back(hash.to_owned());
        self.cached_bytes += size;
    }
}

/// Answers each request line read from `requests` with one line written
/// to `answers`, until `requests` ends or `answers` fails.
pub fn serve(requests: impl BufRead, mut answers: impl Write) {
    let mut sandbox = Sandbox::default();
    for line in requests.lines() {
        let Ok(line) = line else {
            return;
        };
        let response = match serde_json::from_str::<Request>(&line) {
            Ok(request) => sandbox.handle(request),
            Err(e) => Response::Refused {
                error: PolicyError::Evaluation(format!("unreadable request: {e}")),
            },
        };
        let written = serde_json::to_writer(&mut answers, &response)
            .map_err(std::io::Error::from)
            .and_then(|()| answers.write_all(b"\n"))
            .and_then(|()| answers.flush());
        if written.is_err() {
            return;
        }
    }
}

fn check(files: Vec<(String, String)>) -> Response {
    let checked = Bundle::from_files(files).and_then(|bundle| {
        let report = bundle.run_tests()?;
        report.check()?;
        bundle.compile()?;
        Ok(report.passed)
    });
    match checked {
        Ok(passed) => Response::Checked { passed },
        Err(error) => Response::Refused { error },
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::panic,
        reason = "a test fails by panicking"
    )]

    use super::*;

    const DENY_ALL: &str = "package ward.broker\nimport rego.v1\ndeny contains {\"rule\": \"all\", \"message\": \"no\"} if true\n";

    fn files() -> Vec<(String, String)> {
        vec![("broker.rego".to_owned(), DENY_ALL.to_owned())]
    }

    #[test]
    fn a_sandbox_asks_for_the_files_once_and_then_decides_from_its_cache() {
        let mut sandbox = Sandbox::default();
        let hash = Bundle::hash_of(&files());
        let evaluate = |files| Request::Evaluate {
            hash: hash.clone(),
            input: serde_json::json!({}),
            files,
        };
        assert_eq!(sandbox.handle(evaluate(None)), Response::UnknownBundle);
        for request in [evaluate(Some(files())), evaluate(None)] {
            let Response::Decided { decision } = sandbox.handle(request) else {
                panic!("no decision");
            };
            assert!(decision.is_denied());
        }
    }

    #[test]
    fn files_that_do_not_match_the_hash_are_refused() {
        let mut sandbox = Sandbox::default();
        let response = sandbox.handle(Request::Evaluate {
            hash: "0".repeat(64),
            input: serde_json::json!({}),
            files: Some(files()),
        });
        assert!(
            matches!(response, Response::Refused { error: PolicyError::Evaluation(ref m) } if m.contains("do not hash")),
            "{response:?}"
        );
    }

    #[test]
    fn serve_answers_every_line_even_an_unreadable_one() {
        let check = serde_json::to_string(&Request::Check { files: files() }).unwrap();
        let mut out = Vec::new();
        serve(format!("{check}\nnot json\n").as_bytes(), &mut out);
        let answers: Vec<Response> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(answers.len(), 2);
        assert_eq!(answers[0], Response::Checked { passed: vec![] });
        assert!(matches!(answers[1], Response::Refused { .. }));
    }

    #[test]
    fn requests_and_responses_survive_the_wire() {
        let request = Request::Check { files: files() };
        let line = serde_json::to_string(&request).unwrap();
        assert_eq!(serde_json::from_str::<Request>(&line).unwrap(), request);
        let response = Sandbox::default().handle(request);
        let line = serde_json::to_string(&response).unwrap();
        assert_eq!(serde_json::from_str::<Response>(&line).unwrap(), response);
    }
}

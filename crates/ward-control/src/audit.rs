//! Building audit entries in request context, and recording denials.

use serde_json::Value;
use ward_model::audit::{AuditRecord, AuditResult};
use ward_model::feed::Event;

use crate::AppState;
use crate::error::{ApiError, correlation_id};
use crate::util::{now_ms, rfc3339};

/// Starts an audit entry for `action` by `actor`, stamped now with the
/// current request's correlation id.
pub fn entry(actor: &str, action: &str, target: &str) -> AuditRecord {
    AuditRecord {
        seq: 0,
        ts: rfc3339(now_ms()),
        tenant: None,
        actor: actor.to_owned(),
        action: action.to_owned(),
        target: target.to_owned(),
        result: AuditResult::Success,
        reason: String::new(),
        correlation_id: correlation_id(),
        details: "{}".to_owned(),
    }
}

/// Builder methods on a draft.
pub trait DraftExt {
    /// Sets the tenant.
    fn tenant(self, tenant: Option<&str>) -> Self;
    /// Sets the reason.
    fn reason(self, reason: impl Into<String>) -> Self;
    /// Sets the details.
    fn details(self, details: Value) -> Self;
    /// Marks it a denial with the error's code as the result reason.
    fn denied(self, error: &ApiError) -> Self;
}

impl DraftExt for AuditRecord {
    fn tenant(mut self, tenant: Option<&str>) -> Self {
        self.tenant = tenant.map(str::to_owned);
        self
    }
    fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = reason.into();
        self
    }
    fn details(mut self, details: Value) -> Self {
        self.details = details.to_string();
        self
    }
    fn denied(mut self, error: &ApiError) -> Self {
        self.result = AuditResult::Denied;
        self.reason = format!("{}: {}", error.code, error.message);
        self
    }
}

impl AppState {
    /// Records a denial durably, then returns the error to answer with.
    pub async fn deny(&self, draft: AuditRecord, error: ApiError) -> ApiError {
        let draft = draft.denied(&error);
        match self
            .store
            .write(move |ctx| {
                ctx.audit(draft);
                Ok(())
            })
            .await
        {
            Ok(()) => error,
            Err(store_error) => ApiError::from(store_error),
        }
    }
}

/// Appends a change to the feed gateways follow (`GET /v1/watch`), in the
/// transaction that makes the change; call [`AppState::published`] after
/// the write returns.
pub fn emit(ctx: &ward_store::WriteCtx<'_>, event: &Event) -> Result<i64, ward_store::StoreError> {
    ward_store::append_event(ctx.conn(), event, &rfc3339(now_ms()))
}

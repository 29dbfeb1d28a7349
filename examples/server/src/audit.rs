//! Pages of the audit log, as Core's Admin API (`GET /admin/v1/audit`) and Auth's company audit
//! (`GET /v1/companies/{c}/audit`) serve them.

use kisum_access::{ChangeRecord, CompanyId};
use kisum_store::Store;
use serde::Serialize;
use utoipa::ToSchema;

use crate::{ApiError, ApiResult};

/// A page of the audit log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// The records, in sequence order.
    pub records: Vec<ChangeRecord>,
    /// The `after` of the next page, if the page was full.
    pub next: Option<u64>,
}

/// The records after `after` (default 0: from the oldest kept), at most `limit` (1–1000, default 100), of
/// `company` or of every company. Out-of-range values are `422` on `/after` or `/limit`.
pub async fn page(
    store: &dyn Store,
    company: Option<&CompanyId>,
    after: Option<u64>,
    limit: Option<u32>,
) -> ApiResult<AuditPage> {
    let limit = limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("/limit", "a limit is 1 to 1000"));
    }
    let after = after.unwrap_or(0);
    if i64::try_from(after).is_err() {
        return Err(ApiError::invalid("/after", "a sequence is at most 2^63 - 1"));
    }
    let records = store.audit(company, after, limit).await?;
    let next = (records.len() == limit as usize).then(|| records.last().map(|r| r.seq)).flatten();
    Ok(AuditPage { records, next })
}

//! The in-memory records of a module: each owned by one company, under an id unique across companies,
//! listed in creation order. A module's handlers hold the only reference; nothing here knows about HTTP
//! or access.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use kisum_client::access::CompanyId;

/// The records of one kind.
#[derive(Debug)]
pub(crate) struct Records<T> {
    inner: RwLock<Inner<T>>,
}

#[derive(Debug)]
struct Inner<T> {
    by_id: HashMap<String, Record<T>>,
    ids: Ids,
    /// Creation order: every record gets the next number.
    seq: u64,
}

#[derive(Debug)]
struct Record<T> {
    company: CompanyId,
    seq: u64,
    value: T,
}

impl<T: Clone> Records<T> {
    /// One record per company of `companies`, with id `{company}-1`, made by `make(company, id)`.
    pub(crate) fn seeded(companies: &[CompanyId], mut make: impl FnMut(&CompanyId, String) -> T) -> Records<T> {
        let mut inner = Inner { by_id: HashMap::new(), ids: Ids::default(), seq: 0 };
        for company in companies {
            let id = inner.ids.next(company);
            let value = make(company, id.clone());
            inner.seq += 1;
            inner.by_id.insert(id, Record { company: company.clone(), seq: inner.seq, value });
        }
        Records { inner: RwLock::new(inner) }
    }

    /// The company owning record `id`, `None` when there is no such record.
    pub(crate) fn owner(&self, id: &str) -> Option<CompanyId> {
        self.read(|inner| inner.by_id.get(id).map(|r| r.company.clone()))
    }

    /// Record `id` of `company`, or of any company for `None` (a service caller, which has none).
    pub(crate) fn get(&self, company: Option<&CompanyId>, id: &str) -> Option<(CompanyId, T)> {
        self.read(|inner| {
            inner
                .by_id
                .get(id)
                .filter(|r| company.is_none_or(|c| *c == r.company))
                .map(|r| (r.company.clone(), r.value.clone()))
        })
    }

    /// The records of `company`, oldest first.
    pub(crate) fn of(&self, company: &CompanyId) -> Vec<T> {
        self.read(|inner| {
            let mut mine: Vec<&Record<T>> = inner.by_id.values().filter(|r| r.company == *company).collect();
            mine.sort_by_key(|r| r.seq);
            mine.into_iter().map(|r| r.value.clone()).collect()
        })
    }

    /// Creates a record of `company` made by `make(id)` with a fresh id, unless `check` refuses given the
    /// company's records; both run under the write lock, so that no concurrent create can slip past a
    /// check.
    pub(crate) fn create<E>(
        &self,
        company: &CompanyId,
        check: impl FnOnce(&[&T]) -> Result<(), E>,
        make: impl FnOnce(String) -> T,
    ) -> Result<T, E> {
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        let mine: Vec<&T> = inner.by_id.values().filter(|r| r.company == *company).map(|r| &r.value).collect();
        check(&mine)?;
        let id = loop {
            let id = inner.ids.next(company);
            if !inner.by_id.contains_key(&id) {
                break id;
            }
        };
        let value = make(id.clone());
        inner.seq += 1;
        let seq = inner.seq;
        inner.by_id.insert(id, Record { company: company.clone(), seq, value: value.clone() });
        Ok(value)
    }

    /// Changes record `id` of `company` (any company for `None`) with `change`, returning what it returns;
    /// `None` when there is no such record.
    pub(crate) fn update<R>(
        &self,
        company: Option<&CompanyId>,
        id: &str,
        change: impl FnOnce(&mut T) -> R,
    ) -> Option<R> {
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        inner.by_id.get_mut(id).filter(|r| company.is_none_or(|c| *c == r.company)).map(|r| change(&mut r.value))
    }

    /// Removes record `id` of `company`; whether there was one.
    pub(crate) fn remove(&self, company: &CompanyId, id: &str) -> bool {
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        match inner.by_id.get(id) {
            Some(r) if r.company == *company => inner.by_id.remove(id).is_some(),
            _ => false,
        }
    }

    fn read<R>(&self, f: impl FnOnce(&Inner<T>) -> R) -> R {
        f(&self.inner.read().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Fresh ids `{company}-{n}`, `n` counting from 1 per company. Ids of different companies never clash:
/// `n` has no `-`, so the last `-` of an id separates its company.
#[derive(Debug, Default)]
pub(crate) struct Ids {
    next: HashMap<CompanyId, u64>,
}

impl Ids {
    /// The next id of `company`.
    pub(crate) fn next(&mut self, company: &CompanyId) -> String {
        let n = self.next.entry(company.clone()).or_insert(0);
        *n += 1;
        format!("{company}-{n}")
    }
}

//! The store URL setting.

/// A store URL (`--db`): printed with its password redacted, as every setting is printed at start.
#[derive(Clone, PartialEq, Eq)]
pub struct DbUrl(pub String);

impl std::fmt::Debug for DbUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", kisum_store::redact(&self.0))
    }
}

impl std::str::FromStr for DbUrl {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<DbUrl, Self::Err> {
        Ok(DbUrl(text.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_print_without_their_password() {
        let url = DbUrl("postgres://kisum:s3cret@db/kisum".into());
        assert_eq!(format!("{url:?}"), r#""postgres://kisum:[redacted]@db/kisum""#);
    }
}

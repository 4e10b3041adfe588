//! Validation of every name and free-text field before it reaches SQL (queries are always bound,
//! never formatted; this is about clear errors and sane identifiers).

use crate::{Error, Result};

pub const MAX_NAME: usize = 64;
pub const MAX_DESCRIPTION: usize = 1000;

/// Domain and principal names: 1–64 of `a-z 0-9 . _ -`, starting with a letter or digit.
pub fn validate_name(field: &'static str, name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if name.chars().count() > MAX_NAME {
        return Err(Error::invalid(
            field,
            format!(
                "at most {MAX_NAME} characters, got {}",
                name.chars().count()
            ),
        ));
    }
    let ok_first = name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit());
    let ok_rest = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if !ok_first || !ok_rest {
        return Err(Error::invalid(
            field,
            format!(
                "`{}` must be lowercase letters, digits, '.', '_' or '-', starting with a letter or digit",
                shown(name)
            ),
        ));
    }
    Ok(())
}

pub fn validate_text(field: &'static str, text: &str, max: usize) -> Result<()> {
    if text.chars().count() > max {
        return Err(Error::invalid(
            field,
            format!("at most {max} characters, got {}", text.chars().count()),
        ));
    }
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(Error::invalid(field, "contains control characters"));
    }
    Ok(())
}

/// A name as shown in messages: cut to 80 characters so a 10,000-character input cannot flood
/// logs or responses.
pub fn shown(name: &str) -> String {
    if name.chars().count() <= 80 {
        name.to_string()
    } else {
        format!("{}…", name.chars().take(80).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(validate_name("domain", "support-kb").is_ok());
        assert!(validate_name("domain", "a.b_c-1").is_ok());
        for bad in ["", "-x", "Upper", "a b", "x'; DROP TABLE domains; --", "é"] {
            assert!(validate_name("domain", bad).is_err(), "{bad}");
        }
        let long = "a".repeat(10_000);
        let err = validate_name("domain", &long).unwrap_err().to_string();
        assert!(err.contains("at most 64") && err.len() < 200, "{err}");
        assert!(validate_text("description", "tab\tok\nline", 100).is_ok());
        assert!(validate_text("description", "bell\u{7}", 100).is_err());
    }
}

//! Sizes written in a pipeline (`max_answer_bytes`): a number of bytes, or
//! a string with a unit (`"4 MiB"`, `"512KB"`), bounded to what a `u64`
//! holds.

/// Parses a size: a number of bytes, or a string such as `"4 MiB"`,
/// `"512KB"` (units B, KB, MB, GB and KiB, MiB, GiB).
pub fn parse_size(value: &toml::Value) -> std::result::Result<u64, String> {
    let bytes = match value {
        toml::Value::Integer(n) => {
            u64::try_from(*n).map_err(|_| format!("invalid size {n}: it must be positive"))?
        }
        toml::Value::String(s) => {
            let t = s.trim();
            let split = t
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(t.len());
            let (number, unit) = t.split_at(split);
            let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
                "" | "b" => 1,
                "kb" => 1000,
                "mb" => 1000 * 1000,
                "gb" => 1000 * 1000 * 1000,
                "kib" => 1024,
                "mib" => 1024 * 1024,
                "gib" => 1024 * 1024 * 1024,
                _ => {
                    return Err(format!(
                        "invalid size {s:?}: unknown unit {:?}",
                        unit.trim()
                    ))
                }
            };
            let n: f64 = number.parse().map_err(|_| {
                format!("invalid size {s:?}: expected a number and a unit such as \"4 MiB\"")
            })?;
            let bytes = n * multiplier as f64;
            if !(bytes.is_finite() && bytes <= u64::MAX as f64) {
                return Err(format!("invalid size {s:?}: too large"));
            }
            bytes as u64
        }
        other => {
            return Err(format!(
                "invalid size {other}: expected a number of bytes or a string such as \"4 MiB\""
            ))
        }
    };
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let s = |t: &str| parse_size(&toml::Value::String(t.into()));
        assert_eq!(parse_size(&toml::Value::Integer(4096)), Ok(4096));
        assert_eq!(s("4 MiB"), Ok(4 * 1024 * 1024));
        assert_eq!(s("512KB"), Ok(512_000));
        assert_eq!(s("1.5 KiB"), Ok(1536));
        assert_eq!(s("7"), Ok(7));
        assert!(s("4 parsecs").is_err());
        assert!(s("MiB").is_err());
        assert!(s("1e400 GiB").is_err());
        assert!(s("99999999999999999999999 GiB").is_err());
        assert!(parse_size(&toml::Value::Integer(-1)).is_err());
        assert!(parse_size(&toml::Value::Float(1.0)).is_err());
    }
}
